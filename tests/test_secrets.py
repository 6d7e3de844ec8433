"""Secrets at rest: postback tokens, Segment webhook secrets and webhook signing secrets are never in the
database in clear (read straight from the SQLite file or the PostgreSQL tables), yet everything they
protect keeps working, across a token rotation and a restart; the key (generated beside a SQLite database
when none is set, required on PostgreSQL) is checked against the database; migration 0005 seals the clear
rows of a 0004 database by its rule."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from tests import factories
from tests.receiver import DELIVERY, Receiver, poll
from tests.servers import POSTGRES_ENV, POSTGRES_SECRETS_KEY, RunningServer, postgres_database, running_server
from tracklane.bootstrap import migrate_database, new_webhook_secret
from tracklane.settings import Settings
from tracklane.storage import migrate
from tracklane.storage.engines import create_admin_engine
from tracklane.storage.secret_box import FernetBox, SecretsKeyError
from tracklane.storage.types import UtcDateTime

BROWSER = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36"
OTHER_KEY = "a-different-secrets-key-of-forty-characters!"


def stored_text(database_url: str) -> str:
    """Everything the database holds, as text: the SQLite files' bytes, or every row of every PostgreSQL
    table."""
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite":
        assert url.database
        directory, name = Path(url.database).parent, Path(url.database).name
        files = [p for p in directory.iterdir() if p.name.startswith(name) and not p.name.endswith(".key")]
        return b"".join(p.read_bytes() for p in files).decode("latin-1")
    dsn = url.set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(dsn) as conn:
        tables = [r[0] for r in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")]
        return "\n".join(
            str(conn.execute(f"SELECT coalesce(string_agg(t::text, chr(10)), '') FROM \"{t}\" t").fetchone())
            for t in tables
        )


def assert_sealed(database_url: str, *values: str) -> None:
    text = stored_text(database_url)
    for value in values:
        assert value not in text, f"{value[:12]}... is stored in clear"
    assert "fernet:" in text


def track(message_id: str) -> dict[str, Any]:
    return {"type": "track", "event": "Viewed", "userId": "u", "messageId": message_id}


def signed(secret: str, event: dict[str, Any]) -> tuple[bytes, dict[str, str]]:
    """A Segment Webhooks (Actions) delivery: the body and its X-Signature (HMAC-SHA1 with the secret)."""
    raw = json.dumps(event).encode()
    return raw, {"X-Signature": hmac.new(secret.encode(), raw, hashlib.sha1).hexdigest(), "User-Agent": "Segment"}


def convert(visitor: httpx.Client, offer_id: int, partner_id: int, token: str) -> httpx.Response:
    tid = factories.click(visitor, offer_id, partner_id)
    return visitor.get("/postback", params={"transaction_id": tid, "secure": token})


@contextmanager
def clients(hub: RunningServer) -> Iterator[tuple[httpx.Client, httpx.Client]]:
    with (
        httpx.Client(base_url=hub.base_url, headers={"Authorization": f"Bearer {hub.admin_key}"}, timeout=30) as admin,
        httpx.Client(base_url=hub.base_url, headers={"User-Agent": BROWSER}, follow_redirects=False) as visitor,
    ):
        yield admin, visitor


def test_secrets_are_sealed_at_rest_and_everything_still_works_after_rotation_and_restart(
    database_url: str, receiver: Receiver
) -> None:
    with running_server(database_url, **DELIVERY) as hub, clients(hub) as (admin, visitor):
        hook = factories.created(admin.post("/api/v1/webhooks", json={"url": receiver.url + "/hook"}))
        advertiser, offer, partner = factories.program(admin)
        source = factories.created(admin.post("/api/v1/sources", json={"name": "S", "advertiser_id": advertiser["id"]}))
        token, segment_secret, whsec = advertiser["postback_token"], source["webhook_secret"], hook["secret"]
        assert admin.get(f"/api/v1/advertisers/{advertiser['id']}").json()["postback_token"] == token
        assert admin.get(f"/api/v1/sources/{source['id']}").json()["webhook_secret"] == segment_secret

        assert_sealed(database_url, token, segment_secret, whsec, whsec.removeprefix("whsec_"))
        assert convert(visitor, offer["id"], partner["id"], token).json()["result"] == "accepted"
        raw, headers = signed(segment_secret, track("m1"))
        assert visitor.post(f"/segment/{source['id']}", content=raw, headers=headers).json() == {"success": True}
        poll(lambda: {r.verified(whsec)["type"] for r in list(receiver.received)} >= {"advertiser.created"})

        rotated = admin.patch(f"/api/v1/advertisers/{advertiser['id']}", json={"rotate_postback_token": True}).json()
        new_token = rotated["postback_token"]
        assert new_token != token
        assert convert(visitor, offer["id"], partner["id"], token).json()["error"] == "invalid_token"
        assert convert(visitor, offer["id"], partner["id"], new_token).json()["result"] == "accepted"
        assert_sealed(database_url, token, new_token)
    if database_url.startswith("sqlite"):
        key_file = Path(str(make_url(database_url).database) + ".key")
        assert stat.S_IMODE(key_file.stat().st_mode) == 0o600 and len(key_file.read_text().strip()) >= 32

    with running_server(database_url, **DELIVERY) as hub, clients(hub) as (admin, visitor):
        assert convert(visitor, offer["id"], partner["id"], new_token).json()["result"] == "accepted"
        assert convert(visitor, offer["id"], partner["id"], token).json()["error"] == "invalid_token"
        raw, headers = signed(segment_secret, track("m2"))
        assert visitor.post(f"/segment/{source['id']}", content=raw, headers=headers).json() == {"success": True}
        assert admin.get(f"/api/v1/advertisers/{advertiser['id']}").json()["postback_token"] == new_token


def test_a_sqlite_database_keeps_its_generated_key_and_refuses_another(tmp_path: Path) -> None:
    database = tmp_path / "tracklane.db"
    settings = Settings(database_url=f"sqlite:///{database}")
    first = migrate_database(settings)
    assert migrate_database(settings).fingerprint == first.fingerprint, "the key file is reused"

    with pytest.raises(SecretsKeyError, match="is not the key this database's secrets are sealed with"):
        migrate_database(Settings(database_url=settings.database_url, secrets_key=OTHER_KEY))
    key = (tmp_path / "tracklane.db.key").read_text().strip()
    assert migrate_database(Settings(database_url=settings.database_url, secrets_key=key)).fingerprint == (
        first.fingerprint
    ), "the key file's key may be given as TRACKLANE_SECRETS_KEY instead"

    (tmp_path / "tracklane.db.key").rename(tmp_path / "elsewhere.key")
    with pytest.raises(SecretsKeyError, match=r"key file .* is missing"):
        migrate_database(settings)
    assert not (tmp_path / "tracklane.db.key").exists(), "a lost key file is never silently replaced"


@pytest.mark.postgres
def test_postgresql_needs_the_key_and_refuses_another() -> None:
    if not os.environ.get(POSTGRES_ENV):
        pytest.skip(f"PostgreSQL tests need {POSTGRES_ENV} (CI sets it)")
    with postgres_database() as url:
        with pytest.raises(SecretsKeyError, match=r"TRACKLANE_SECRETS_KEY is not set\. With PostgreSQL it is required"):
            migrate_database(Settings(database_url=url))
        migrate_database(Settings(database_url=url, secrets_key=POSTGRES_SECRETS_KEY))
        with pytest.raises(SecretsKeyError, match="is not the key"):
            migrate_database(Settings(database_url=url, secrets_key=OTHER_KEY))


_ADVERTISERS = sa.table("advertisers", sa.column("id"), sa.column("name"), sa.column("status"),
                        sa.column("postback_token"), sa.column("created_at", UtcDateTime()),
                        sa.column("updated_at", UtcDateTime()))  # fmt: skip
_SOURCES = sa.table("sources", sa.column("id"), sa.column("name"), sa.column("preset"), sa.column("write_key"),
                    sa.column("advertiser_id"), sa.column("webhook_secret"), sa.column("settings", sa.JSON()),
                    sa.column("created_at", UtcDateTime()), sa.column("updated_at", UtcDateTime()))  # fmt: skip
_ENDPOINTS = sa.table("webhook_endpoints", sa.column("id"), sa.column("url"), sa.column("status"), sa.column("secret"),
                      sa.column("previous_secret"), sa.column("previous_secret_expires_at", UtcDateTime()),
                      sa.column("created_at", UtcDateTime()), sa.column("updated_at", UtcDateTime()))  # fmt: skip


def _legacy_rows(database_url: str, box: FernetBox) -> dict[str, Any]:
    """A database at revision 0004 with rows as that release stored them: tokens and secrets in clear, one
    webhook secret sealed (with the key, as when TRACKLANE_SECRETS_KEY was set)."""
    now = datetime.now(UTC)
    stamp = {"created_at": now, "updated_at": now}
    legacy: dict[str, Any] = {
        "token": "legacy-postback-token-AAAAAAAAAAAAAAAA",
        "segment_secret": "legacy-segment-secret-" + "b" * 26,
        "whsec": new_webhook_secret(),
        "previous_whsec": new_webhook_secret(),
        "sealed_whsec": new_webhook_secret(),
    }
    engine = create_admin_engine(database_url)
    try:
        migrate.upgrade(engine, revision="0004")
        with engine.begin() as conn:
            insert = conn.execute
            legacy["advertiser"] = insert(_ADVERTISERS.insert().returning(_ADVERTISERS.c.id).values(
                name="Legacy", status="active", postback_token=legacy["token"], **stamp)).scalar_one()  # fmt: skip
            legacy["source"] = insert(_SOURCES.insert().returning(_SOURCES.c.id).values(
                name="Legacy shop", preset="default", write_key="wk_legacy", advertiser_id=legacy["advertiser"],
                webhook_secret=legacy["segment_secret"], settings={}, **stamp)).scalar_one()  # fmt: skip
            legacy["hook"] = insert(_ENDPOINTS.insert().returning(_ENDPOINTS.c.id).values(
                url="http://127.0.0.1:9/hook", status="active", secret=legacy["whsec"],
                previous_secret=legacy["previous_whsec"], previous_secret_expires_at=now + timedelta(hours=24),
                **stamp)).scalar_one()  # fmt: skip
            legacy["sealed_hook"] = insert(_ENDPOINTS.insert().returning(_ENDPOINTS.c.id).values(
                url="http://127.0.0.1:9/sealed", status="active", secret=box.seal(legacy["sealed_whsec"]),
                **stamp)).scalar_one()  # fmt: skip
    finally:
        engine.dispose()
    return legacy


@pytest.fixture
def legacy_key(database_url: str) -> str:
    """The key the upgraded process will have: the harness's on PostgreSQL; on SQLite a key file written
    beside the database before the upgrade."""
    if not database_url.startswith("sqlite"):
        return POSTGRES_SECRETS_KEY
    key = base64.urlsafe_b64encode(os.urandom(30)).decode()
    key_file = Path(str(make_url(database_url).database) + ".key")
    key_file.write_text(key + "\n")
    key_file.chmod(0o600)
    return key


def test_migration_0005_seals_every_clear_secret_of_a_0004_database_and_they_still_work(
    database_url: str, legacy_key: str, receiver: Receiver
) -> None:
    legacy = _legacy_rows(database_url, FernetBox(legacy_key))
    clear = [legacy[k] for k in ("token", "segment_secret", "whsec", "previous_whsec")]
    assert all(value in stored_text(database_url) for value in clear)
    if database_url.startswith("sqlite"):
        # Upgrade as a SQLite build without secure delete by default would (Debian's has it on): what the
        # migration replaces must still be overwritten on disk. The server then starts on the upgraded file.
        engine = create_admin_engine(database_url)
        sa.event.listen(engine, "connect", lambda connection, _: connection.execute("PRAGMA secure_delete=OFF"))
        try:
            migrate.upgrade(engine, FernetBox(legacy_key))
        finally:
            engine.dispose()
    with running_server(database_url, **DELIVERY) as hub, clients(hub) as (admin, visitor):
        assert_sealed(database_url, *clear, legacy["sealed_whsec"])

        for hook_id, path in ((legacy["hook"], "/hook"), (legacy["sealed_hook"], "/sealed")):
            assert admin.patch(f"/api/v1/webhooks/{hook_id}", json={"url": receiver.url + path}).status_code == 200
        advertiser = admin.get(f"/api/v1/advertisers/{legacy['advertiser']}").json()
        assert advertiser["postback_token"] == legacy["token"]
        offer = factories.offer(admin, legacy["advertiser"])
        partner = factories.partner(admin)
        assert convert(visitor, offer["id"], partner["id"], legacy["token"]).json()["result"] == "accepted"
        raw, headers = signed(legacy["segment_secret"], track("m1"))
        assert visitor.post(f"/segment/{legacy['source']}", content=raw, headers=headers).json() == {"success": True}

        poll(lambda: {r.target for r in receiver.received} >= {"/hook", "/sealed"})
        for request in list(receiver.received):
            if request.target == "/hook":  # signed with the current and the previous secret
                assert request.verified(legacy["whsec"]) == request.verified(legacy["previous_whsec"])
            else:
                assert request.verified(legacy["sealed_whsec"])["type"]
