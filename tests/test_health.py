"""The process's health as operators see it: `/healthz` (up), `/readyz` (database, migrations, writer)
failing while the database is away and recovering after, JSON log lines carrying the request id, and a
graceful stop on SIGTERM under load that keeps every click it acknowledged."""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from tests import factories
from tests.servers import POSTGRES_ENV, RunningServer, running_server, sqlite_url
from tests.serving import BROWSER, ServeProcess
from tracklane.storage.engines import normalise_url
from tracklane.storage.migrate import HEAD_REVISION


def _is_postgres(url: str) -> bool:
    return url.startswith("postgres")


def poll(check: Callable[[], bool], timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "not in time"
        time.sleep(0.1)


def readiness(base_url: str) -> tuple[int, dict[str, Any], float]:
    started = time.monotonic()
    response = httpx.get(base_url + "/readyz", timeout=30)
    return response.status_code, response.json(), time.monotonic() - started


def test_healthz_is_up_and_readyz_is_ready(server: RunningServer) -> None:
    health = httpx.get(server.base_url + "/healthz")
    assert (health.status_code, health.json()) == (200, {"status": "ok"})
    assert len(health.headers["x-request-id"]) == 32
    status, body, _ = readiness(server.base_url)
    checks = {"database": "ok", "migrations": "ok", "writer": "ok"}
    assert (status, body) == (200, {"status": "ready", "checks": checks})


@contextmanager
def _database_away(url: str) -> Iterator[None]:
    """PostgreSQL: the database refuses connections and its sessions are ended. SQLite: another connection
    holds the write lock (readers still read: WAL)."""
    if _is_postgres(url):
        admin = make_url(os.environ[POSTGRES_ENV]).set(drivername="postgresql").render_as_string(hide_password=False)
        name = make_url(url).database

        def allow(allowed: bool) -> None:
            with psycopg.connect(admin, autocommit=True) as conn:
                conn.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS {str(allowed).lower()}')
                if not allowed:
                    conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (name,))

        allow(False)
        try:
            yield
        finally:
            allow(True)
        return
    path = make_url(url).database
    assert path is not None
    conn = sqlite3.connect(path, isolation_level=None, timeout=10)
    try:
        conn.execute("BEGIN IMMEDIATE")
        yield
        conn.rollback()
    finally:
        conn.close()


def test_readyz_fails_while_the_database_is_away_and_recovers_after(database_url: str) -> None:
    with running_server(database_url, readiness_timeout_seconds=1.5) as server:
        assert readiness(server.base_url)[0] == 200
        with _database_away(database_url):
            status, body, seconds = readiness(server.base_url)
            assert httpx.get(server.base_url + "/healthz").status_code == 200  # up, only not ready
        assert status == 503, body
        assert seconds < 5
        assert body["status"] == "unavailable"
        assert "writer" in body["failed"] and body["checks"]["writer"] != "ok"
        if _is_postgres(database_url):
            assert "database" in body["failed"] and body["checks"]["migrations"].startswith("unknown")
        else:
            assert body["failed"] == ["writer"] and body["checks"]["database"] == "ok"
        assert "127.0.0.1" not in json.dumps(body)  # reasons, not the driver's messages
        poll(lambda: readiness(server.base_url)[0] == 200)


def test_readyz_names_a_schema_behind_this_release(server: RunningServer) -> None:
    head = HEAD_REVISION

    def set_revision(revision: str) -> Callable[[Any], None]:
        return lambda repo: repo.conn.execute(text("UPDATE alembic_version SET version_num = :r"), {"r": revision})

    server.container.db.write_now(set_revision("0001"))
    try:
        status, body, _ = readiness(server.base_url)
    finally:
        server.container.db.write_now(set_revision(str(head)))
    assert (status, body["failed"]) == (503, ["migrations"])
    assert body["checks"]["migrations"] == f"the schema is at 0001, this release needs {head}: run tracklane migrate"
    assert readiness(server.base_url)[0] == 200


def test_json_log_lines_parse_and_carry_the_request_id(tmp_path: Path) -> None:
    server = ServeProcess(
        sqlite_url(tmp_path), tmp_path / "serve.log", TRACKLANE_LOG_FORMAT="json", TRACKLANE_LOG_LEVEL="INFO"
    )
    try:
        server.start()
        auth = {"Authorization": f"Bearer {server.admin_key}"}
        with httpx.Client(base_url=server.base_url, headers=auth, timeout=30) as api:
            _, offer, partner = factories.program(api)
        with httpx.Client(base_url=server.base_url, headers={"User-Agent": BROWSER}, timeout=30) as web:
            tid = factories.click(web, offer["id"], partner["id"])
            chosen = web.get("/postback", params={"transaction_id": tid, "secure": "wrong"},
                             headers={"X-Request-Id": "edge-7f3a.42"})  # fmt: skip
            generated = web.get("/postback", params={"transaction_id": tid, "secure": "wrong"},
                                headers={"X-Request-Id": "not sane!"})  # fmt: skip
        assert chosen.status_code == generated.status_code == 403
        assert chosen.headers["x-request-id"] == "edge-7f3a.42"
        own = generated.headers["x-request-id"]
        assert own != "not sane!" and len(own) == 32
        server.terminate()
        assert server.wait(timeout=60) == 0
    finally:
        server.stop()
    lines = [json.loads(line) for line in server.output().splitlines() if line.strip()]  # every line is JSON
    assert lines and all({"time", "level", "logger", "message"} <= set(line) for line in lines)
    refused = [line for line in lines if line["message"].startswith("postback refused: invalid_token")]
    assert [(line["request_id"], line["level"], line["logger"]) for line in refused] == [
        ("edge-7f3a.42", "INFO", "tracklane.tracking"),
        (own, "INFO", "tracklane.tracking"),
    ]
    assert any("request_id" not in line for line in lines)  # lines outside a request carry none
    assert lines[0]["time"].endswith("+00:00")


def _stored_clicks(database_url: str) -> set[str]:
    engine = create_engine(normalise_url(database_url))
    try:
        with engine.connect() as conn:
            return {row[0] for row in conn.execute(text("SELECT transaction_id FROM clicks"))}
    finally:
        engine.dispose()


async def _clicking(base_url: str, link: str, until: float) -> tuple[set[str], int]:
    """Clicks from 16 clients until the server is gone (or `until`): the acknowledged transaction ids, and
    how many requests got no answer."""
    acknowledged: set[str] = set()
    failures = 0
    cookie = "tl_" + link.split("/")[2] + "="
    limits = httpx.Limits(max_connections=16, max_keepalive_connections=16)
    async with httpx.AsyncClient(base_url=base_url, headers={"User-Agent": BROWSER}, limits=limits, timeout=30) as c:

        async def client() -> None:
            nonlocal failures
            while time.monotonic() < until:
                try:
                    response = await c.get(link)
                except httpx.TransportError:
                    failures += 1
                    if failures > 200:
                        return
                    await asyncio.sleep(0.02)
                    continue
                set_cookie = response.headers.get("set-cookie", "")
                if response.status_code == 302 and set_cookie.startswith(cookie):
                    acknowledged.add(set_cookie[len(cookie) :].split(";")[0])

        await asyncio.gather(*(client() for _ in range(16)))
    return acknowledged, failures


@pytest.mark.timeout(240)
def test_sigterm_under_load_keeps_every_acknowledged_click(database_url: str, tmp_path: Path) -> None:
    server = ServeProcess(database_url, tmp_path / "serve.log")
    try:
        server.start()
        with httpx.Client(base_url=server.base_url, headers={"Authorization": f"Bearer {server.admin_key}"}) as api:
            _, offer, partner = factories.program(api)
        link = f"/r/{offer['id']}/{partner['id']}"

        async def load_then_sigterm() -> tuple[set[str], int]:
            load = asyncio.create_task(_clicking(server.base_url, link, time.monotonic() + 30))
            await asyncio.sleep(1.5)
            server.terminate()
            return await load

        acknowledged, failures = asyncio.run(load_then_sigterm())
        assert server.wait(timeout=60) == 0, server.output()[-3000:]
    finally:
        server.stop()
    assert acknowledged and failures, (len(acknowledged), failures)  # load before, refusals after the signal
    missing = acknowledged - _stored_clicks(database_url)
    assert not missing, f"{len(missing)} of {len(acknowledged)} acknowledged clicks are not stored"


@pytest.mark.timeout(120)
def test_sigterm_lets_the_requests_in_flight_finish(tmp_path: Path) -> None:
    """Clicks wait for the writer (another connection holds SQLite's write lock) when SIGTERM comes: the
    server stops accepting at once, and once the lock is gone those clicks are committed and answered 302
    before it exits."""
    url = sqlite_url(tmp_path)
    server = ServeProcess(
        url, tmp_path / "serve.log", TRACKLANE_DATABASE_LOCK_TIMEOUT_SECONDS="10", TRACKLANE_WRITE_TIMEOUT_SECONDS="20"
    )
    try:
        server.start()
        with httpx.Client(base_url=server.base_url, headers={"Authorization": f"Bearer {server.admin_key}"}) as api:
            _, offer, partner = factories.program(api)
        answers: list[httpx.Response] = []

        def click() -> None:
            with httpx.Client(base_url=server.base_url, headers={"User-Agent": BROWSER}, timeout=60) as web:
                answers.append(web.get(f"/r/{offer['id']}/{partner['id']}"))

        with _database_away(url):
            threads = [threading.Thread(target=click) for _ in range(6)]
            for thread in threads:
                thread.start()
            time.sleep(1.5)  # the clicks are in, waiting for the lock
            assert not answers
            server.terminate()
            time.sleep(0.5)
            with pytest.raises(httpx.ConnectError):  # no longer accepting
                httpx.get(server.base_url + "/healthz", timeout=5)
            assert not answers and server.process is not None and server.process.poll() is None
        for thread in threads:
            thread.join(60)
        assert server.wait(timeout=60) == 0, server.output()[-3000:]
    finally:
        server.stop()
    assert [response.status_code for response in answers] == [302] * 6
    tids = {response.cookies[f"tl_{offer['id']}"] for response in answers}
    assert len(tids) == 6 and tids <= _stored_clicks(url)
