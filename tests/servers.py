"""Real Tracklane servers on loopback for tests: uvicorn in a thread (with the connection timeouts of
`tracklane serve`), on SQLite or PostgreSQL."""

from __future__ import annotations

import os
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import psycopg
import uvicorn
from sqlalchemy.engine import make_url

from tracklane.bootstrap import Container, create_app
from tracklane.cli import connection_timeouts
from tracklane.settings import Settings
from tracklane.web.connections import guarded_protocol

POSTGRES_ENV = "TRACKLANE_TEST_POSTGRES_URL"
#: PostgreSQL needs TRACKLANE_SECRETS_KEY (a SQLite server keeps a generated key beside its database file).
POSTGRES_SECRETS_KEY = "tracklane-tests-only-secrets-key-0123456789"
#: How long a test server's writes may wait for their commit (the tests assert answers; speed is in bench/).
PATIENT_WRITE_SECONDS = 30.0


def secrets_env(database_url: str) -> dict[str, str]:
    """The environment a `tracklane` process of the tests needs for its secrets key on this database."""
    return {} if database_url.startswith("sqlite") else {"TRACKLANE_SECRETS_KEY": POSTGRES_SECRETS_KEY}


@dataclass
class RunningServer:
    base_url: str
    admin_key: str
    settings: Settings
    server: uvicorn.Server

    @property
    def container(self) -> Container:
        """What the app built at start-up: the services, with the database and settings behind them."""
        app: Any = self.server.config.app
        while not hasattr(app, "state"):
            app = app.app
        container = app.state.services
        assert isinstance(container, Container)
        return container


@contextmanager
def postgres_database() -> Iterator[str]:
    """A fresh, empty PostgreSQL database on the test server, dropped afterwards."""
    admin_url = os.environ[POSTGRES_ENV]
    name = "tl_test_" + secrets.token_hex(6)
    dsn = make_url(admin_url).set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def sqlite_url(directory: Path) -> str:
    return f"sqlite:///{directory / 'tracklane.db'}"


@contextmanager
def running_server(
    database_url: str, wrap: Callable[[Any], Any] | None = None, **settings_overrides: object
) -> Iterator[RunningServer]:
    """Serve the whole app on 127.0.0.1 on a free port until the block ends; `wrap` puts an ASGI middleware
    in front of it (tests use it to watch requests or to fail them the way a proxy or network would)."""
    admin_key = "tlk_test_" + secrets.token_urlsafe(24)
    settings_overrides.setdefault("idle_timeout_seconds", 60)  # test clients keep connections between steps
    settings_overrides.setdefault("duplicate_click_window_seconds", 0)  # tests repeat clicks from one client
    # A loaded CI machine can take longer than the product's 4 s to commit; the tests of that timeout set it.
    settings_overrides.setdefault("write_timeout_seconds", PATIENT_WRITE_SECONDS)
    if not database_url.startswith("sqlite"):
        settings_overrides.setdefault("secrets_key", POSTGRES_SECRETS_KEY)
    settings = Settings(database_url=database_url, admin_key=admin_key, port=8080, **settings_overrides)  # type: ignore[arg-type]
    app = create_app(settings)
    config = uvicorn.Config(
        wrap(app) if wrap else app,
        host="127.0.0.1",
        port=0,
        log_level="warning",
        lifespan="on",
        proxy_headers=False,
        http=guarded_protocol(connection_timeouts(settings)),
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the test server did not start")
        time.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield RunningServer(f"http://127.0.0.1:{port}", admin_key, settings, server)
    finally:
        server.should_exit = True
        thread.join(timeout=30)


@contextmanager
def two_servers(database_url: str) -> Iterator[tuple[RunningServer, RunningServer, httpx.Client]]:
    """Two servers (two writers) on one database, and an admin client of the first. Their writers are
    patient: what the tests of several servers check is that nothing is doubled or lost, not how fast a
    loaded machine is."""
    with (
        running_server(database_url) as first,
        running_server(database_url) as second,
        httpx.Client(
            base_url=first.base_url, headers={"Authorization": f"Bearer {first.admin_key}"}, timeout=30
        ) as api,
    ):
        yield first, second, api
