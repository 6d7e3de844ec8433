"""Fixtures: a clean environment, a database per test on SQLite and on PostgreSQL, a real server."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.receiver import DELIVERY, Receiver, receiving
from tests.segment_support import RequestLog
from tests.servers import POSTGRES_ENV, RunningServer, postgres_database, running_server, sqlite_url

#: A loaded CI machine can take longer than httpx's 5 s to answer; the tests assert answers (speed is
#: measured in bench/), so every client of the tests waits as long as a test server's write may take.
PATIENT = httpx.Timeout(30.0)
_CALLS = (httpx.Client.__init__, httpx.AsyncClient.__init__, httpx.request, httpx.get, httpx.post, httpx.head)
for _call in _CALLS:
    assert _call.__kwdefaults__ is not None
    _call.__kwdefaults__["timeout"] = PATIENT

BROWSER_UA = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36"


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """The developer's TRACKLANE_* settings must not leak into tests."""
    for name in list(os.environ):
        if name.startswith("TRACKLANE_") and name != POSTGRES_ENV:
            monkeypatch.delenv(name)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """Each test that uses it runs twice: on a SQLite file and on a fresh PostgreSQL database."""
    if request.param == "sqlite":
        yield sqlite_url(tmp_path)
        return
    if not os.environ.get(POSTGRES_ENV):
        pytest.skip(f"PostgreSQL tests need {POSTGRES_ENV} (CI sets it)")
    with postgres_database() as url:
        yield url


@pytest.fixture
def server(database_url: str) -> Iterator[RunningServer]:
    with running_server(database_url) as running:
        yield running


@pytest.fixture
def api(server: RunningServer) -> Iterator[httpx.Client]:
    """An HTTP client with the admin key, against the real server."""
    headers = {"Authorization": f"Bearer {server.admin_key}"}
    with httpx.Client(base_url=server.base_url, headers=headers, timeout=30) as client:
        yield client


@pytest.fixture
def web(server: RunningServer) -> Iterator[httpx.Client]:
    """An anonymous HTTP client (tracking endpoints), which does not follow redirects."""
    headers = {"user-agent": BROWSER_UA}  # an HTTP library's own user agent is a bot's
    with httpx.Client(base_url=server.base_url, headers=headers, timeout=30, follow_redirects=False) as client:
        yield client


@pytest.fixture
def watched(tmp_path: Path) -> Iterator[tuple[RunningServer, RequestLog]]:
    """A server on a SQLite file with every request logged (the tests driving real clients use it)."""
    logs: list[RequestLog] = []

    def wrap(app: Any) -> RequestLog:
        logs.append(RequestLog(app))
        return logs[-1]

    with running_server(sqlite_url(tmp_path), wrap=wrap) as running:
        yield running, logs[0]


@pytest.fixture(scope="session")
def node_clients() -> Path:
    """tests/clients with its pinned Segment clients installed (`npm ci` when node_modules is missing)."""
    clients = Path(__file__).parent / "clients"
    npm = shutil.which("npm")
    assert npm and shutil.which("node"), "the Segment client tests need node and npm"
    if not (clients / "node_modules" / "analytics-node-3").is_dir():
        subprocess.run(
            [npm, "ci", "--no-audit", "--no-fund"], cwd=clients, check=True, capture_output=True, timeout=600
        )
    return clients


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """A real HTTP receiver on loopback that records every request."""
    with receiving() as running:
        yield running


@pytest.fixture
def hub(database_url: str) -> Iterator[RunningServer]:
    """A server that delivers webhooks and partner postbacks to loopback receivers, quickly."""
    with running_server(database_url, **DELIVERY) as running:
        yield running


@pytest.fixture
def admin(hub: RunningServer) -> Iterator[httpx.Client]:
    headers = {"Authorization": f"Bearer {hub.admin_key}"}
    with httpx.Client(base_url=hub.base_url, headers=headers, timeout=30) as client:
        yield client


@pytest.fixture
def visitor(hub: RunningServer) -> Iterator[httpx.Client]:
    headers = {"user-agent": BROWSER_UA}  # an HTTP library's own user agent is a bot's
    with httpx.Client(base_url=hub.base_url, headers=headers, timeout=30, follow_redirects=False) as client:
        yield client
