"""Webhook delivery throughput of the outbox and `tracklane worker` processes, as a ratio to a baseline.

The receiver is a separate uvicorn process answering 200 at once. The baseline signs and POSTs the same
number of Standard Webhooks messages straight from one process with the same concurrency (no database,
no outbox). The measured run queues the messages in the outbox (one `advertiser.created` per
advertiser), then starts WORKERS `tracklane worker` processes and times until every delivery has
succeeded. Both use the same machine in the same run, so the ratio holds even where absolute numbers
do not.

    .venv/bin/python bench/deliveries.py [--messages 2000] [--workers 2] [--concurrency 32] [--database-url URL]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import httpx
from sqlalchemy import func, select
from standardwebhooks.webhooks import Webhook

from tracklane.bootstrap import build, new_webhook_secret
from tracklane.resources.advertisers import AdvertiserCreate
from tracklane.resources.webhooks import WebhookCreate
from tracklane.settings import Settings
from tracklane.storage.schema import deliveries

RECEIVER_APP = textwrap.dedent(
    """
    async def app(scope, receive, send):
        if scope["type"] != "http":
            return
        more = True
        while more:
            message = await receive()
            more = message.get("more_body", False)
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]})
        await send({"type": "http.response.body", "body": b"ok"})
    """
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextmanager
def receiver(directory: Path) -> Iterator[str]:
    (directory / "receiver_app.py").write_text(RECEIVER_APP)
    port = free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "receiver_app:app",
            "--port",
            str(port),
            "--log-level",
            "warning",
            "--no-access-log",
        ],
        cwd=directory,
    )
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                httpx.post(f"http://127.0.0.1:{port}/", content=b"{}")
                break
            except httpx.TransportError:
                time.sleep(0.05)
        yield f"http://127.0.0.1:{port}/hook"
    finally:
        process.terminate()
        process.wait(timeout=30)


async def direct(url: str, messages: int, concurrency: int) -> float:
    """The baseline: sign and POST every message from one process; seconds taken."""
    secret = new_webhook_secret()
    body = '{"type":"advertiser.created","timestamp":"2026-01-01T00:00:00Z","data":{"id":1}}'
    limit = asyncio.Semaphore(concurrency)
    async with httpx.AsyncClient(limits=httpx.Limits(max_connections=concurrency)) as client:

        async def one(i: int) -> None:
            async with limit:
                now = datetime.now(UTC)
                headers = {
                    "webhook-id": f"msg_{i}",
                    "webhook-timestamp": str(int(now.timestamp())),
                    "webhook-signature": Webhook(secret).sign(f"msg_{i}", now, body),
                    "content-type": "application/json",
                }
                response = await client.post(url, content=body.encode(), headers=headers)
                assert response.status_code == 200

        started = time.monotonic()
        await asyncio.gather(*(one(i) for i in range(messages)))
        return time.monotonic() - started


def outbox(url: str, database_url: str, messages: int, workers: int, concurrency: int) -> float:
    """The measured run: queue in the outbox, deliver with `tracklane worker` processes; seconds taken."""
    settings = Settings(  # type: ignore[call-arg]
        database_url=database_url, delivery_in_serve=False, allow_private_destinations="127.0.0.1/32"
    )
    container = build(settings)
    try:

        async def queue() -> None:
            await container.webhooks.create(WebhookCreate(url=url, event_types=["advertiser.created"]))
            for start in range(0, messages, 200):
                await asyncio.gather(
                    *(
                        container.catalog.create_advertiser(AdvertiserCreate(name=f"A{i}"))
                        for i in range(start, min(messages, start + 200))
                    )
                )

        asyncio.run(queue())

        def succeeded() -> int:
            return int(
                container.db.read_now(
                    lambda repo: repo.conn.execute(  # type: ignore[attr-defined]
                        select(func.count()).select_from(deliveries).where(deliveries.c.status == "succeeded")
                    ).scalar_one()
                )
            )

        env = {k: v for k, v in os.environ.items() if not k.startswith("TRACKLANE_")}
        env.update(
            TRACKLANE_DATABASE_URL=database_url,
            TRACKLANE_ALLOW_PRIVATE_DESTINATIONS="127.0.0.1/32",
            TRACKLANE_DELIVERY_CONCURRENCY=str(concurrency),
            TRACKLANE_DELIVERY_POLL_SECONDS="0.05",
            TRACKLANE_LOG_LEVEL="WARNING",
        )
        started = time.monotonic()
        processes = [
            subprocess.Popen([sys.executable, "-m", "tracklane", "worker"], env=env, stderr=subprocess.DEVNULL)
            for _ in range(workers)
        ]
        try:
            while succeeded() < messages:
                time.sleep(0.05)
            return time.monotonic() - started
        finally:
            for process in processes:
                process.terminate()
                process.wait(timeout=30)
    finally:
        container.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--database-url", default=None, help="default: a SQLite file in a temporary directory")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as directory, receiver(Path(directory)) as url:
        database_url = args.database_url or f"sqlite:///{Path(directory) / 'bench.db'}"
        baseline = direct(url, args.messages, args.concurrency * args.workers)
        baseline_seconds = asyncio.run(baseline)
        outbox_seconds = outbox(url, database_url, args.messages, args.workers, args.concurrency)
    base_rate, rate = args.messages / baseline_seconds, args.messages / outbox_seconds
    print(
        f"messages: {args.messages}, workers: {args.workers} x {args.concurrency} concurrent, "
        f"database: {database_url.split(':')[0]}"
    )
    print(f"direct signed POSTs (baseline): {base_rate:8.0f} msg/s")
    print(f"outbox + tracklane worker:      {rate:8.0f} msg/s   (includes worker start-up)")
    print(f"ratio outbox / baseline:        {rate / base_rate:8.2f}")


if __name__ == "__main__":
    main()
