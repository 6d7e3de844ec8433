"""Database faults at the edge: an unreachable database is a 503 (retry) that records nothing and recovers by
itself; a locked one is a 503 within 5 s; a taken unique key is a 409 naming the field; any other fault is a
500 logged with its request id, and no log line ever holds an SQL parameter."""

from __future__ import annotations

import logging
import os
import secrets
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import httpx
import psycopg
import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

from tests import factories
from tests.segment_support import source
from tests.servers import POSTGRES_ENV, RunningServer, postgres_database, running_server
from tracklane.storage.database import WRITE_TIMEOUT_SECONDS

BROWSER = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0 Safari/537.36"


@pytest.fixture
def server(database_url: str) -> Iterator[RunningServer]:
    """A server with the product's own write timeout, which these tests are about."""
    with running_server(database_url, write_timeout_seconds=WRITE_TIMEOUT_SECONDS) as running:
        yield running


def _admin_dsn() -> str:
    return make_url(os.environ[POSTGRES_ENV]).set(drivername="postgresql").render_as_string(hide_password=False)


def _set_connections(database: str, allowed: bool) -> None:
    with psycopg.connect(_admin_dsn(), autocommit=True) as conn:
        conn.execute(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS {str(allowed).lower()}')
        if not allowed:
            conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (database,))


def _execute(server: RunningServer, *statements: str) -> None:
    """Change the schema behind the server's back, through its own writer."""

    def run(repo: object) -> None:
        for statement in statements:
            repo.conn.execute(text(statement))  # type: ignore[attr-defined]

    server.container.db.write_now(run)


def _is_postgres(server: RunningServer) -> bool:
    return server.settings.database_url.startswith("postgres")


@pytest.mark.postgres
def test_tracking_answers_503_while_the_database_is_away_and_recovers() -> None:
    if not os.environ.get(POSTGRES_ENV):
        pytest.skip(f"needs {POSTGRES_ENV} (CI sets it)")
    with postgres_database() as url, running_server(url, write_timeout_seconds=WRITE_TIMEOUT_SECONDS) as server:
        name = make_url(url).database
        assert name is not None
        auth = {"Authorization": f"Bearer {server.admin_key}"}
        with (
            httpx.Client(base_url=server.base_url, headers=auth, timeout=30) as api,
            httpx.Client(base_url=server.base_url, timeout=30) as web,
        ):
            adv, offer, partner = factories.program(api)
            tid = factories.click(web, offer["id"], partner["id"])
            _set_connections(name, allowed=False)
            try:
                click = web.get(f"/r/{offer['id']}/{partner['id']}")
                postback = web.get("/postback", params={"transaction_id": tid, "secure": adv["postback_token"]})
                listing = api.get("/api/v1/partners")
            finally:
                _set_connections(name, allowed=True)
            for response in (click, postback, listing):
                assert response.status_code == 503, response.text
                assert response.json()["error"] == "unavailable"
                assert response.headers["retry-after"] == "5"
            assert "set-cookie" not in click.headers
            assert listing.headers["x-request-id"]
            accepted = web.get("/postback", params={"transaction_id": tid, "secure": adv["postback_token"]})
            assert accepted.json()["result"] == "accepted"
            listed = api.get("/api/v1/clicks", params={"offer_id": offer["id"]})
            assert listed.status_code == 200, listed.text
            clicks = listed.json()["data"]
            assert [c["transaction_id"] for c in clicks] == [tid]


def test_a_unique_violation_is_a_409_naming_the_column(server: RunningServer, api: httpx.Client) -> None:
    """No use case checks partner names; a unique index added behind the server's back makes the second
    partner of one name a unique violation in the driver, which reaches the edge as a conflict."""
    _execute(server, "CREATE UNIQUE INDEX uq_partners_name ON partners (name)")
    factories.partner(api, name="Same name")

    response = api.post("/api/v1/partners", json={"name": "Same name", "email": "other@example.com"})

    assert response.status_code == 409, response.text
    assert response.json() == {"error": "conflict", "message": "name: this value is already taken", "field": "name"}
    assert response.headers["x-request-id"]
    emails = [p["email"] for p in api.get("/api/v1/partners", params={"limit": 100}).json()["data"]]
    assert "other@example.com" not in emails


def test_any_other_fault_is_a_500_with_a_logged_request_id(
    server: RunningServer, api: httpx.Client, caplog: pytest.LogCaptureFixture
) -> None:
    """A trigger that refuses every new advertiser: an integrity error that is no unique violation."""
    if _is_postgres(server):
        _execute(
            server,
            "CREATE FUNCTION refuse() RETURNS trigger AS $$ BEGIN RAISE EXCEPTION 'closed'; END $$ LANGUAGE plpgsql",
            "CREATE TRIGGER refuse BEFORE INSERT ON advertisers FOR EACH ROW EXECUTE FUNCTION refuse()",
        )
    else:
        _execute(server, "CREATE TRIGGER refuse BEFORE INSERT ON advertisers BEGIN SELECT RAISE(ABORT, 'closed'); END")

    with caplog.at_level(logging.ERROR, logger="tracklane.web"):
        chosen = api.post("/api/v1/advertisers", json={"name": "A"}, headers={"X-Request-Id": "edge-7f3a.1"})
        generated = api.post("/api/v1/advertisers", json={"name": "B"}, headers={"X-Request-Id": "not sane!"})

    assert chosen.status_code == 500, chosen.text
    assert chosen.json() == {
        "error": "internal_error",
        "message": "an unexpected fault; the request may be retried",
        "request_id": "edge-7f3a.1",
    }
    assert chosen.headers["x-request-id"] == "edge-7f3a.1"
    assert generated.status_code == 500, generated.text
    request_id = generated.json()["request_id"]
    assert request_id != "not sane!" and len(request_id) == 32 and generated.headers["x-request-id"] == request_id
    logged = [r for r in caplog.records if r.name == "tracklane.web" and r.exc_info]
    assert [r.getMessage().split(")")[0] for r in logged] == [
        "unexpected error (request edge-7f3a.1",
        f"unexpected error (request {request_id}",
    ]
    assert api.get("/api/v1/advertisers").json()["data"] == []


def test_every_error_answer_carries_a_request_id(api: httpx.Client, web: httpx.Client) -> None:
    for response in (
        api.get("/api/v1/partners/999999"),
        web.get("/api/v1/partners"),
        api.get("/api/v1/nowhere"),
        api.post("/api/v1/partners", content=b"{", headers={"X-Request-Id": "mine"}),
    ):
        assert response.status_code in (400, 401, 404), response.text
        assert response.headers["x-request-id"], response.request.url
    assert response.headers["x-request-id"] == "mine"


@contextmanager
def _locked(server: RunningServer) -> Iterator[None]:
    """Another connection holds the write lock (SQLite) or exclusive table locks (PostgreSQL) meanwhile."""
    url = make_url(server.settings.database_url)
    if _is_postgres(server):
        dsn = url.set(drivername="postgresql").render_as_string(hide_password=False)
        with psycopg.connect(dsn) as conn:
            conn.execute("LOCK TABLE clicks, partners, segment_messages IN ACCESS EXCLUSIVE MODE")
            yield
            conn.rollback()
        return
    assert url.database is not None
    conn = sqlite3.connect(url.database, isolation_level=None, timeout=10)
    try:
        conn.execute("BEGIN IMMEDIATE")
        yield
        conn.rollback()
    finally:
        conn.close()


def test_a_locked_database_is_answered_503_within_5_seconds(server: RunningServer, api: httpx.Client) -> None:
    """Writes (a click, a postback, an API create, a Segment batch) and, on PostgreSQL, reads of a locked
    table: each answered 503 with Retry-After within 5 s, then served again once the lock is gone."""
    adv, offer, partner = factories.program(api)
    with httpx.Client(base_url=server.base_url, headers={"User-Agent": BROWSER}) as web:
        tid = factories.click(web, offer["id"], partner["id"])
    write_key = source(api, adv["id"])["write_key"]
    auth = {"Authorization": f"Bearer {server.admin_key}"}
    requests: dict[str, Callable[[httpx.Client], httpx.Response]] = {
        "click": lambda c: c.get(f"/r/{offer['id']}/{partner['id']}", headers={"User-Agent": BROWSER}),
        "postback": lambda c: c.get("/postback", params={"transaction_id": tid, "secure": adv["postback_token"]}),
        "create": lambda c: c.post("/api/v1/partners", json={"name": "P", "email": "p@example.com"}, headers=auth),
        "segment": lambda c: c.post(
            "/v1/batch", json={"writeKey": write_key, "batch": [{"type": "track", "event": "E", "userId": "u"}]}
        ),
        "read": lambda c: c.get("/api/v1/clicks", headers=auth),
    }
    answers: dict[str, tuple[httpx.Response, float]] = {}

    def send(name: str) -> None:
        with httpx.Client(base_url=server.base_url, timeout=30) as client:
            started = time.monotonic()
            response = requests[name](client)
            answers[name] = (response, time.monotonic() - started)

    with _locked(server):
        threads = [threading.Thread(target=send, args=(name,)) for name in requests]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)

    for name, (response, seconds) in answers.items():
        assert seconds < 5, (name, seconds)
        if name == "read" and not _is_postgres(server):  # WAL: SQLite's readers are not blocked by a writer
            assert response.status_code == 200, response.text
            continue
        assert response.status_code == 503, (name, response.text)
        assert response.headers["retry-after"], name
    assert set(answers) == set(requests)
    with httpx.Client(base_url=server.base_url) as client:
        assert requests["click"](client).status_code == 302
    assert [p["email"] for p in api.get("/api/v1/partners").json()["data"]] == [partner["email"]]


def test_a_failed_insert_logs_no_sql_parameter(
    server: RunningServer, api: httpx.Client, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The advertiser's postback token is a parameter of its insert: the fault is logged, its values are not."""
    token, name = "secret-" + secrets.token_hex(12), "Name " + secrets.token_hex(6)
    monkeypatch.setattr(server.container.catalog, "_new_secret", lambda: token)
    if _is_postgres(server):
        _execute(
            server,
            "CREATE FUNCTION refuse() RETURNS trigger AS $$ BEGIN RAISE EXCEPTION 'closed'; END $$ LANGUAGE plpgsql",
            "CREATE TRIGGER refuse BEFORE INSERT ON advertisers FOR EACH ROW EXECUTE FUNCTION refuse()",
        )
    else:
        _execute(server, "CREATE TRIGGER refuse BEFORE INSERT ON advertisers BEGIN SELECT RAISE(ABORT, 'closed'); END")

    with caplog.at_level(logging.DEBUG):
        response = api.post("/api/v1/advertisers", json={"name": name})

    assert response.status_code == 500, response.text
    logged = "\n".join(logging.Formatter().format(record) for record in caplog.records)
    assert "INSERT INTO advertisers" in logged and "hide_parameters" in logged  # the fault is there, its values not
    assert token not in logged and name not in logged and "[parameters:" not in logged
