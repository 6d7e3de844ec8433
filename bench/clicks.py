"""Click and postback throughput of a real Tracklane server, as ratios to static-redirect baselines.

The baseline is nginx answering every request with a constant 302 (when `nginx` is installed, e.g.
Debian's nginx-light), and a bare ASGI app doing the same under uvicorn (Tracklane's own server, so the
gap to it is Tracklane's work: routing, recording, committing). Every server runs as its own process on
loopback. The load generator keeps CONCURRENCY keep-alive requests in flight for DURATION seconds against
each, so the printed ratios hold on a noisy machine even when the absolute numbers do not.

    .venv/bin/python bench/clicks.py [--duration 10] [--concurrency 32] [--database-url URL]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlencode

import httpx

BASELINE_APP = textwrap.dedent(
    """
    async def app(scope, receive, send):
        if scope["type"] != "http":
            return
        await send({"type": "http.response.start", "status": 302,
                    "headers": [(b"location", b"https://shop.example/land?tid=0123456789abcdef0123456789abcdef"),
                                (b"content-length", b"0")]})
        await send({"type": "http.response.body", "body": b""})
    """
)


@dataclass
class Result:
    name: str
    requests: int
    seconds: float
    latencies_ms: list[float]
    failures: int

    @property
    def per_second(self) -> float:
        return self.requests / self.seconds

    def percentile(self, q: float) -> float:
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")

    def line(self, baseline: Result | None = None) -> str:
        ratio = f"  {self.per_second / baseline.per_second:6.2f}x baseline" if baseline else ""
        return (
            f"{self.name:<34} {self.per_second:8.0f} req/s  p50 {statistics.median(self.latencies_ms):6.1f} ms"
            f"  p99 {self.percentile(0.99):6.1f} ms  failures {self.failures}{ratio}"
        )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextmanager
def process(args: list[str], env: dict[str, str], port: int) -> Iterator[str]:
    proc = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(base + "/healthz", timeout=1)
                break
            except httpx.TransportError as error:
                if proc.poll() is not None or time.monotonic() > deadline:
                    output = proc.stderr.read().decode() if proc.stderr else ""
                    raise RuntimeError(f"server did not start: {output}") from error
                time.sleep(0.1)
        yield base
    finally:
        proc.terminate()
        proc.wait(timeout=30)


@contextmanager
def baseline_server(workdir: Path) -> Iterator[str]:
    (workdir / "baseline_app.py").write_text(BASELINE_APP)
    port = free_port()
    args = [
        sys.executable,
        "-m",
        "uvicorn",
        "baseline_app:app",
        "--port",
        str(port),
        "--log-level",
        "warning",
        "--no-access-log",
        "--app-dir",
        str(workdir),
    ]
    with process(args, dict(os.environ), port) as base:
        yield base


NGINX_CONF = """
worker_processes 1;
daemon off;
pid {dir}/nginx.pid;
error_log {dir}/nginx-error.log;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    keepalive_requests 100000000;
    client_body_temp_path {dir}/body; proxy_temp_path {dir}/proxy; fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi; scgi_temp_path {dir}/scgi;
    server {{
        listen 127.0.0.1:{port};
        location = /healthz {{ return 200; }}
        location / {{ return 302 "https://shop.example/land?tid=0123456789abcdef0123456789abcdef"; }}
    }}
}}
"""


@contextmanager
def nginx_server(workdir: Path, nginx: str) -> Iterator[str]:
    port = free_port()
    conf = workdir / "nginx.conf"
    conf.write_text(NGINX_CONF.format(dir=workdir, port=port))
    with process([nginx, "-p", str(workdir), "-c", str(conf)], dict(os.environ), port) as base:
        yield base


@contextmanager
def tracklane_server(database_url: str) -> Iterator[tuple[str, str]]:
    port = free_port()
    admin_key = "tlk_bench_" + secrets.token_urlsafe(24)
    env = {
        **os.environ,
        "TRACKLANE_DATABASE_URL": database_url,
        "TRACKLANE_ADMIN_KEY": admin_key,
        "TRACKLANE_PORT": str(port),
        "TRACKLANE_LOG_LEVEL": "WARNING",
    }
    with process([sys.executable, "-m", "tracklane", "serve"], env, port) as base:
        yield base, admin_key


def create_program(base: str, admin_key: str) -> tuple[int, int, str]:
    with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {admin_key}"}) as api:
        adv = api.post("/api/v1/advertisers", json={"name": "Bench advertiser"}).raise_for_status().json()
        offer = (
            api.post(
                "/api/v1/offers",
                json={
                    "advertiser_id": adv["id"],
                    "name": "Bench offer",
                    "destination_url": "https://shop.example/land?tid={transaction_id}&s1={sub1}",
                    "revenue": {"type": "cps", "percent": "10"},
                    "payout": {"type": "cps", "percent": "5"},
                },
            )
            .raise_for_status()
            .json()
        )
        partner = api.post("/api/v1/partners", json={"name": "Bench partner", "email": "bench@example.com"})
        return offer["id"], partner.raise_for_status().json()["id"], adv["postback_token"]


class Connection:
    """One keep-alive HTTP/1.1 connection: a load generator light enough not to be the bottleneck."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, host: str) -> None:
        self.reader, self.writer, self.host = reader, writer, host

    @classmethod
    async def open(cls, base: str) -> Connection:
        url = httpx.URL(base)
        reader, writer = await asyncio.open_connection(url.host, url.port)
        return cls(reader, writer, f"{url.host}:{url.port}")

    async def get(self, path: str) -> tuple[int, dict[str, str]]:
        self.writer.write(f"GET {path} HTTP/1.1\r\nHost: {self.host}\r\nUser-Agent: Mozilla/5.0 bench\r\n\r\n".encode())
        head = (await self.reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
        headers = {}
        for line in head[1:]:
            if ":" in line:
                name, value = line.split(":", 1)
                headers[name.strip().lower()] = value.strip()
        await self.reader.readexactly(int(headers.get("content-length", "0")))
        return int(head[0].split()[1]), headers

    def close(self) -> None:
        self.writer.close()


async def drive(
    name: str, base: str, duration: float, concurrency: int, request: Callable[[Connection, int], Awaitable[bool]]
) -> Result:
    latencies: list[float] = []
    failures = 0
    counter = iter(range(10**9))
    stop_at = time.perf_counter() + duration

    async def worker() -> None:
        nonlocal failures
        conn = await Connection.open(base)
        try:
            while time.perf_counter() < stop_at:
                started = time.perf_counter()
                ok = await request(conn, next(counter))
                latencies.append((time.perf_counter() - started) * 1000)
                failures += not ok
        finally:
            conn.close()

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return Result(name, len(latencies), time.perf_counter() - started, latencies, failures)


async def run(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        database_url = args.database_url or f"sqlite:///{workdir / 'bench.db'}"

        async def redirect(conn: Connection, n: int) -> bool:
            return (await conn.get(f"/r/1/1?sub1=s{n}"))[0] == 302

        nginx = shutil.which("nginx") or next((p for p in ("/usr/sbin/nginx",) if Path(p).exists()), None)
        baseline: Result | None = None
        if nginx:
            with nginx_server(workdir, nginx) as base:
                baseline = await drive("nginx static 302 (baseline)", base, args.duration, args.concurrency, redirect)
            print(baseline.line())
        else:
            print("nginx not found: the baseline is the bare ASGI redirect (install nginx-light for the other)")
        with baseline_server(workdir) as base:
            asgi = await drive("uvicorn bare ASGI static 302", base, args.duration, args.concurrency, redirect)
        baseline = baseline or asgi
        print(asgi.line(None if baseline is asgi else baseline))

        with tracklane_server(database_url) as (base, admin_key):
            offer_id, partner_id, token = create_program(base, admin_key)
            transaction_ids: list[str] = []

            cookie = f"tl_{offer_id}="

            async def click(conn: Connection, n: int) -> bool:
                status, headers = await conn.get(f"/r/{offer_id}/{partner_id}?sub1=s{n}")
                set_cookie = headers.get("set-cookie", "")
                if not set_cookie.startswith(cookie):
                    return False
                transaction_ids.append(set_cookie[len(cookie) :].split(";")[0])
                return status == 302

            clicks = await drive("tracking link /r (click committed)", base, args.duration, args.concurrency, click)
            print(clicks.line(baseline))

            async def postback(conn: Connection, n: int) -> bool:
                query = urlencode(
                    {
                        "transaction_id": transaction_ids[n % len(transaction_ids)],
                        "secure": token,
                        "amount": "49.90",
                        "order_id": f"order-{n}",
                    }
                )
                return (await conn.get(f"/postback?{query}"))[0] == 200

            postbacks = await drive("postback (conversion committed)", base, args.duration, args.concurrency, postback)
            print(postbacks.line(baseline))
            print(
                f"database: {database_url.split('://')[0]}, concurrency {args.concurrency}, "
                f"{args.duration:.0f} s per run; postbacks past the first per click answer 'duplicate'"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--database-url", default=None, help="default: a fresh SQLite file")
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
