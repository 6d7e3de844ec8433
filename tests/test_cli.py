"""The command line as users run it: the demo server prints links that work; bad settings are named."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRACKLANE_")}
    return {**env, **extra}


def test_demo_prints_links_that_track_and_convert(tmp_path: Path) -> None:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "tracklane", "demo", "--port", str(port)],
        cwd=tmp_path,
        env=clean_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        output = _read_until(process, "set its password at")
        assert (tmp_path / "tracklane.db").exists()
        link = re.search(r"(http://127\.0\.0\.1:\d+/r/\d+/\d+\?sub1=demo)", output)
        postback = re.search(r"(http://\S+/postback\?transaction_id=TID&secure=\S+&amount=120\.00&order_id=A1)", output)
        assert link and postback, output
        _wait_for(f"http://127.0.0.1:{port}/healthz")
        response = httpx.get(link.group(1))
        assert response.status_code == 302
        tid = re.search(r"tid=([0-9a-f]{32})", response.headers["location"])
        assert tid
        result = httpx.get(postback.group(1).replace("TID", tid.group(1))).json()
        assert (result["result"], result["revenue"], result["payout"]) == ("accepted", "12.00", "8.00")
        accept = re.search(r"set its password at (http://\S+/ui/accept\?token=\S+)", output)
        assert accept, output
        page = httpx.get(accept.group(1))
        assert page.status_code == 200 and "admin@demo.test" in page.text  # the console's admin can sign in
    finally:
        process.terminate()
        process.wait(timeout=30)
        if process.stdout is not None:
            process.stdout.close()


def test_bad_settings_are_named_and_exit_2(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "tracklane", "migrate"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env=clean_env(TRACKLANE_DATABASE_URL="mysql://nope", TRACKLANE_ADMIN_KEY="short"),
        timeout=60,
    )
    assert result.returncode == 2
    assert "TRACKLANE_DATABASE_URL" in result.stderr
    assert "TRACKLANE_ADMIN_KEY" in result.stderr


def test_api_keys_create_prints_a_working_key(tmp_path: Path) -> None:
    env = clean_env(TRACKLANE_DATABASE_URL=f"sqlite:///{tmp_path / 'k.db'}")
    result = subprocess.run(
        [sys.executable, "-m", "tracklane", "api-keys", "create", "--role", "admin"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    key = result.stdout.strip()
    assert key.startswith("tlk_")
    from tests.servers import running_server

    with running_server(env["TRACKLANE_DATABASE_URL"]) as server:
        response = httpx.get(f"{server.base_url}/api/v1/offers", headers={"Authorization": f"Bearer {key}"})
        assert response.status_code == 200


def _read_until(process: subprocess.Popen[str], marker: str, timeout: float = 60) -> str:
    assert process.stdout is not None
    lines: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line and process.poll() is not None:
            break
        lines.append(line)
        if marker in line:
            return "".join(lines)
    raise AssertionError("never printed " + marker + ":\n" + "".join(lines))


def _wait_for(url: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url).status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.1)
    raise AssertionError(f"{url} never answered")
