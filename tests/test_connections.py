"""Connection timeouts and memory under hostile clients, through real servers: the test server for the
timeouts themselves, and `tracklane serve` in its own process for what it costs the process (open files,
resident memory), read from /proc."""

from __future__ import annotations

import contextlib
import logging
import os
import resource
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.raw_http import closed_within, connect, head, read_answer
from tests.servers import RunningServer, running_server, sqlite_url
from tests.test_cli import clean_env, free_port

HEAD = 0.5
BODY = 1.0
IDLE = 0.5
MARGIN = 1.5


@pytest.fixture(scope="module")
def quick(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    """A test server with short timeouts."""
    timeouts = {"header_timeout_seconds": HEAD, "body_timeout_seconds": BODY, "idle_timeout_seconds": IDLE}
    with running_server(sqlite_url(tmp_path_factory.mktemp("connections")), **timeouts) as running:
        yield running


def _open_connections(server: RunningServer) -> int:
    return len(server.server.server_state.connections)


def _wait_until(condition: object, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if callable(condition) and condition():
            return True
        time.sleep(0.05)
    return False


def test_a_connection_that_sends_nothing_is_closed_after_the_idle_timeout(quick: RunningServer) -> None:
    sockets = [connect(quick.base_url) for _ in range(50)]
    try:
        started = time.monotonic()
        assert all(closed_within(sock, IDLE + MARGIN) for sock in sockets)
        assert time.monotonic() - started < IDLE + MARGIN
    finally:
        for sock in sockets:
            sock.close()


def test_a_kept_alive_connection_serves_requests_then_closes_when_idle(quick: RunningServer) -> None:
    with connect(quick.base_url) as sock:
        for _ in range(3):
            sock.sendall(head("GET", "/healthz"))
            assert read_answer(sock).status == 200
            time.sleep(IDLE / 3)  # each pause is shorter than the idle timeout
        assert closed_within(sock, IDLE + MARGIN)


def test_a_slow_head_is_answered_408_and_closed(quick: RunningServer) -> None:
    sockets = [connect(quick.base_url) for _ in range(50)]
    try:
        for sock in sockets:
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        started = time.monotonic()
        while time.monotonic() - started < HEAD + MARGIN:
            for sock in sockets:
                with contextlib.suppress(OSError):
                    sock.sendall(b"X")  # one byte of a header at a time, never finished
            time.sleep(0.05)
            if _open_connections(quick) == 0:
                break
        assert _open_connections(quick) == 0
        answer = sockets[0].recv(65536)
        assert answer.startswith(b"HTTP/1.1 408 ")
    finally:
        for sock in sockets:
            sock.close()


def test_a_trickling_body_is_answered_408_and_closed(quick: RunningServer, caplog: pytest.LogCaptureFixture) -> None:
    with connect(quick.base_url) as sock:
        sock.sendall(head("POST", "/postback", {"Content-Type": "application/json", "Content-Length": "1000"}))
        sock.sendall(b'{"transaction_id": ')
        answer = read_answer(sock, timeout=BODY + MARGIN)
        assert answer.status == 408
        assert closed_within(sock, MARGIN)
    with httpx.Client(base_url=quick.base_url) as client:
        assert client.get("/healthz").status_code == 200
    # the handler that waited for the body saw a disconnect: no fault, nothing logged as an error
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []


def test_a_head_over_64_kb_is_refused_with_431(quick: RunningServer) -> None:
    with connect(quick.base_url) as sock:
        sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        try:
            for _ in range(20):
                sock.sendall(b"X-Padding: " + b"p" * 8000 + b"\r\n")
        except OSError:
            pass
        assert read_answer(sock, timeout=5).status == 431


@dataclass
class ServeProcess:
    base_url: str
    pid: int

    def status(self, field: str) -> int:
        """A /proc/<pid>/status value in kB (VmRSS, VmHWM)."""
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
        raise KeyError(field)

    def open_files(self) -> int:
        return len(os.listdir(f"/proc/{self.pid}/fd"))


@pytest.fixture(scope="module")
def serve(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServeProcess]:
    """`tracklane serve` in its own process, with 1 s head and idle timeouts."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < 4096 <= hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (4096, hard))
    directory = tmp_path_factory.mktemp("serve")
    port = free_port()
    env = clean_env(
        TRACKLANE_DATABASE_URL=sqlite_url(directory),
        TRACKLANE_PORT=str(port),
        TRACKLANE_HEADER_TIMEOUT_SECONDS="1",
        TRACKLANE_IDLE_TIMEOUT_SECONDS="1",
        TRACKLANE_BODY_TIMEOUT_SECONDS="2",
        TRACKLANE_DELIVERY_IN_SERVE="false",
    )
    process = subprocess.Popen([sys.executable, "-m", "tracklane", "serve"], cwd=directory, env=env)
    base_url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{base_url}/healthz").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert process.poll() is None and time.monotonic() < deadline, "tracklane serve did not start"
            time.sleep(0.1)
        yield ServeProcess(base_url, process.pid)
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_slow_and_idle_connections_cost_serve_no_open_files_past_the_timeouts(serve: ServeProcess) -> None:
    before = serve.open_files()
    slow = [connect(serve.base_url) for _ in range(1000)]
    idle = [connect(serve.base_url) for _ in range(500)]
    try:
        for sock in slow:
            sock.sendall(b"POST /postback HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
        opened = time.monotonic()
        assert _wait_until(lambda: serve.open_files() >= before + 1400, 5)
        during = serve.open_files()
        assert _wait_until(lambda: serve.open_files() <= before + 5, 1 + 1 + 5)
        closed_after = time.monotonic() - opened
    finally:
        for sock in slow + idle:
            sock.close()
    print(f"open files: {before} before, {during} with 1,500 connections, back in {closed_after:.1f} s")
    assert closed_after < 1 + 5


def _flood(base_url: str, size: int, chunked: bool) -> None:
    """POST `size` bytes of JSON body to /postback (as fast as the server reads it), until it stops reading."""
    block = b" " * (1024 * 1024)
    framing = {"Transfer-Encoding": "chunked"} if chunked else {"Content-Length": str(size)}
    headers = {"Content-Type": "application/json", **framing}
    with connect(base_url, timeout=30) as sock:
        sock.sendall(head("POST", "/postback", headers))
        try:
            for _ in range(size // len(block)):
                sock.sendall(b"%x\r\n%s\r\n" % (len(block), block) if chunked else block)
            sock.sendall(b"0\r\n\r\n" if chunked else b"")
        except (TimeoutError, BrokenPipeError, ConnectionResetError):
            pass


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_three_concurrent_200_mb_bodies_leave_serve_under_200_mb(serve: ServeProcess, chunked: bool) -> None:
    rss_before = serve.status("VmRSS")
    threads = [threading.Thread(target=_flood, args=(serve.base_url, 200 * 1024 * 1024, chunked)) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    peak = serve.status("VmHWM")
    print(f"serve RSS: {rss_before // 1024} MB before, peak {peak // 1024} MB ({'chunked' if chunked else 'declared'})")
    assert peak < 200 * 1024
    assert httpx.get(f"{serve.base_url}/healthz").status_code == 200
