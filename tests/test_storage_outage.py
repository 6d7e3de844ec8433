"""Database faults at the edge: an unreachable database is a 503 (retry) that records nothing and recovers by
itself; a taken unique key is a 409 naming the field; any other fault is a 500 logged with its request id."""

from __future__ import annotations

import logging
import os

import httpx
import psycopg
import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

from tests import factories
from tests.servers import POSTGRES_ENV, RunningServer, postgres_database, running_server


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
    with postgres_database() as url, running_server(url) as server:
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
