"""When the database cannot be reached, tracking answers 503 (retry) and records nothing; it recovers by itself."""

from __future__ import annotations

import os

import httpx
import psycopg
import pytest
from sqlalchemy.engine import make_url

from tests import factories
from tests.servers import POSTGRES_ENV, postgres_database, running_server

pytestmark = pytest.mark.postgres


def _admin_dsn() -> str:
    return make_url(os.environ[POSTGRES_ENV]).set(drivername="postgresql").render_as_string(hide_password=False)


def _set_connections(database: str, allowed: bool) -> None:
    with psycopg.connect(_admin_dsn(), autocommit=True) as conn:
        conn.execute(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS {str(allowed).lower()}')
        if not allowed:
            conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (database,))


def test_tracking_answers_503_while_the_database_is_away_and_recovers() -> None:
    if not os.environ.get(POSTGRES_ENV):
        pytest.skip(f"needs {POSTGRES_ENV} (CI sets it)")
    with postgres_database() as url, running_server(url) as server:
        name = make_url(url).database
        assert name is not None
        auth = {"Authorization": f"Bearer {server.admin_key}"}
        with httpx.Client(base_url=server.base_url, headers=auth, timeout=30) as api, \
                httpx.Client(base_url=server.base_url, timeout=30) as web:
            adv, offer, partner = factories.program(api)
            tid = factories.click(web, offer["id"], partner["id"])
            _set_connections(name, allowed=False)
            try:
                click = web.get(f"/r/{offer['id']}/{partner['id']}")
                postback = web.get("/postback", params={"transaction_id": tid, "secure": adv["postback_token"]})
            finally:
                _set_connections(name, allowed=True)
            for response in (click, postback):
                assert response.status_code == 503, response.text
                assert response.json()["error"] == "unavailable"
                assert response.headers["retry-after"] == "5"
            assert "set-cookie" not in click.headers
            accepted = web.get("/postback", params={"transaction_id": tid, "secure": adv["postback_token"]})
            assert accepted.json()["result"] == "accepted"
            listed = api.get("/api/v1/clicks", params={"offer_id": offer["id"]})
            assert listed.status_code == 200, listed.text
            clicks = listed.json()["data"]
            assert [c["transaction_id"] for c in clicks] == [tid]
