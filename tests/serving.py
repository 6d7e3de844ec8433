"""`tracklane serve` as its own process for tests of what only a real process shows: several server
processes, signals, the log lines it writes."""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.servers import secrets_env

BROWSER = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0 Safari/537.36"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class ServeProcess:
    """`python -m tracklane serve` with settings from its environment; its standard error goes to `log`."""

    def __init__(self, database_url: str, log: Path, *args: str, **env: str) -> None:
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.admin_key = "tlk_ops_" + secrets.token_urlsafe(24)
        self.log = log
        self.args = args
        self.env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("TRACKLANE_", "PROMETHEUS_"))},
            "TRACKLANE_DATABASE_URL": database_url,
            "TRACKLANE_ADMIN_KEY": self.admin_key,
            "TRACKLANE_PORT": str(self.port),
            "TRACKLANE_LOG_LEVEL": "WARNING",
            "TRACKLANE_DELIVERY_IN_SERVE": "false",
            "TRACKLANE_DUPLICATE_CLICK_WINDOW_SECONDS": "0",  # tests repeat clicks from one client
            **secrets_env(database_url),
            **env,
        }
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 60) -> ServeProcess:
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "tracklane", "serve", *self.args],
                env=self.env,
                stdout=subprocess.DEVNULL,
                stderr=log,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout
        while True:
            try:
                if httpx.get(self.base_url + "/healthz", timeout=1).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("the server did not start:\n" + self.output()[-3000:])
            time.sleep(0.05)

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def terminate(self) -> None:
        """SIGTERM to the server process only (as an orchestrator sends it), not to its group."""
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)

    def wait(self, timeout: float) -> int:
        assert self.process is not None
        return self.process.wait(timeout=timeout)

    def children(self) -> list[int]:
        """The pids of the server processes a `--workers N` server started (not multiprocessing's helper)."""
        assert self.process is not None
        found: list[int] = []
        for task in Path(f"/proc/{self.process.pid}/task").iterdir():
            for pid in (task / "children").read_text().split():
                if b"spawn_main" in Path(f"/proc/{pid}/cmdline").read_bytes():
                    found.append(int(pid))
        return found

    def stop(self) -> None:
        """Whatever state the test left it in: SIGTERM, then SIGKILL to the whole group."""
        if self.process is None or self.process.poll() is not None:
            return
        self.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)


def metric_samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample of a Prometheus text exposition by (name, labels)."""
    samples: dict[tuple[str, frozenset[tuple[str, str]]], float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples


def sample(samples: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: Any) -> float:
    """One sample's value (0 when it is not there yet: a series is created by its first observation)."""
    return samples.get((name, frozenset((k, str(v)) for k, v in labels.items())), 0.0)
