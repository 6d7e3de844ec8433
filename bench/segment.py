"""Segment intake throughput of a real Tracklane server, as ratios to a static baseline that only reads the
body and answers `200 {"success": true}`.

Both servers run as separate uvicorn processes on loopback. The load generator keeps CONCURRENCY requests
in flight for DURATION seconds: batches of BATCH track calls from analytics-python-like clients (new
people, new messageIds), then single `/v1/track` calls, each message committed before the answer.

    .venv/bin/python bench/segment.py [--duration 10] [--concurrency 16] [--batch 50] [--database-url URL]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import textwrap
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).parent))
from clicks import Connection, Result, drive, free_port, process, tracklane_server

BASELINE_APP = textwrap.dedent(
    """
    async def app(scope, receive, send):
        if scope["type"] != "http":
            return
        while (await receive()).get("more_body"):
            pass
        body = b'{"success": true}'
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"application/json"),
                                (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})
    """
)


class PostConnection(Connection):
    async def post(self, path: str, body: bytes) -> int:
        self.writer.write(
            f"POST {path} HTTP/1.1\r\nHost: {self.host}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n".encode()
            + body
        )
        head = (await self.reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
        length = next((int(line.split(":", 1)[1]) for line in head if line.lower().startswith("content-length")), 0)
        await self.reader.readexactly(length)
        return int(head[0].split()[1])


def batch_body(write_key: str, size: int) -> bytes:
    messages = [
        {
            "type": "track",
            "event": "Product Viewed",
            "userId": f"user-{uuid.uuid4().hex[:12]}",
            "messageId": str(uuid.uuid4()),
            "timestamp": "2026-11-23T10:00:00.000+00:00",
            "properties": {"product_id": "p-1", "price": 19.99, "currency": "USD"},
            "context": {"library": {"name": "analytics-python", "version": "2.3.4"}},
        }
        for _ in range(size)
    ]
    return json.dumps({"batch": messages, "sentAt": "2026-11-23T10:00:00.5+00:00", "writeKey": write_key}).encode()


@contextmanager
def baseline_server(workdir: Path) -> Iterator[str]:
    (workdir / "segment_baseline_app.py").write_text(BASELINE_APP)
    port = free_port()
    args = [
        sys.executable,
        "-m",
        "uvicorn",
        "segment_baseline_app:app",
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


async def measure(name: str, base: str, args: argparse.Namespace, size: int, write_key: str) -> Result:
    connections: dict[int, PostConnection] = {}

    async def send(conn: Connection, n: int) -> bool:
        if id(conn) not in connections:
            connections[id(conn)] = PostConnection(conn.reader, conn.writer, conn.host)
        path = "/v1/batch" if size > 1 else "/v1/track"
        body = (
            batch_body(write_key, size)
            if size > 1
            else json.dumps({**json.loads(batch_body(write_key, 1))["batch"][0], "writeKey": write_key}).encode()
        )
        return await connections[id(conn)].post(path, body) == 200

    return await drive(name, base, args.duration, args.concurrency, send)


def messages_line(result: Result, size: int, baseline: Result | None) -> str:
    rate = result.per_second * size
    ratio = f"  {result.per_second / baseline.per_second:6.2f}x baseline" if baseline else ""
    return f"{result.line()}  = {rate:8.0f} messages/s{ratio}"


async def run(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        database_url = args.database_url or f"sqlite:///{workdir / 'bench.db'}"
        with baseline_server(workdir) as base:
            baselines = {
                size: await measure(f"baseline, {size}-message requests", base, args, size, "wk")
                for size in (args.batch, 1)
            }
        for size, result in baselines.items():
            print(messages_line(result, size, None))
        with tracklane_server(database_url) as (base, admin_key):
            with httpx.Client(base_url=base, headers={"Authorization": f"Bearer {admin_key}"}) as api:
                advertiser = api.post("/api/v1/advertisers", json={"name": "Bench"}).raise_for_status().json()
                source = {"name": "Bench", "advertiser_id": advertiser["id"]}  # every source is an advertiser's
                write_key = api.post("/api/v1/sources", json=source).raise_for_status().json()["write_key"]
            for size in (args.batch, 1):
                route = f"/v1/batch of {size}" if size > 1 else "/v1/track"
                result = await measure(f"Tracklane {route} (committed)", base, args, size, write_key)
                print(messages_line(result, size, baselines[size]))
        print(
            f"database: {database_url.split('://')[0]}, concurrency {args.concurrency}, {args.duration:.0f} s per run"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--batch", type=int, default=50)
    parser.add_argument("--database-url", default=None, help="default: a fresh SQLite file")
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
