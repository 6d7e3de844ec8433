"""Delivery throughput of the outbox and `tracklane worker` processes: webhooks and partner postbacks to a
local receiver, per worker, beside a baseline measured in the same run.

The receiver is nginx (one worker process, answering `200 ok` to every request) when it is installed
(Debian: `apt-get install nginx-light`), else a uvicorn process doing the same. The baseline sends the same
number of signed Standard Webhooks POSTs straight from one process with aiohttp (the worker's own HTTP
client) at the same concurrency: no database, no outbox. Each measured run queues MESSAGES deliveries in
the outbox, then starts N `tracklane worker` processes and times until every one of them has succeeded:

- webhooks: one `advertiser.created` per advertiser created through the catalogue (the real emission path),
  to one endpoint, each signed with its secret;
- partner postbacks: one `GET` per delivery of a partner's postback (queued as a conversion's would be),
  each to its own URL.

Prints deliveries/s per run and per worker, timed from the first delivery seen to succeed (and, apart,
from the workers' start, which adds about a second of imports), and the ratio to the baseline.

    .venv/bin/python bench/deliveries.py [--messages 10000] [--workers 1,2] [--concurrency 32] [--database-url URL]

A PostgreSQL URL names an empty database, or one only these benchmarks have used (the endpoints they made
are disabled after each run).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import aiohttp
from sqlalchemy import func, select
from standardwebhooks.webhooks import Webhook

from tracklane.bootstrap import Container, build, new_webhook_secret
from tracklane.domain.delivery import DeliveryKind, DeliveryStatus
from tracklane.domain.model import PartnerStatus, Role
from tracklane.domain.tenancy import Scope
from tracklane.domain.webhooks import EndpointStatus
from tracklane.resources.advertisers import AdvertiserCreate
from tracklane.resources.partner_postbacks import PartnerPostbackCreate
from tracklane.resources.partners import PartnerCreate
from tracklane.resources.webhooks import WebhookCreate, WebhookUpdate
from tracklane.services.ports import NewDelivery, Repository
from tracklane.settings import Settings
from tracklane.storage.schema import deliveries

NGINX_CONF = """
worker_processes 1;
pid {dir}/receiver.pid;
error_log {dir}/receiver-error.log;
events {{ worker_connections 4096; }}
http {{
  access_log off;
  client_body_temp_path {dir}/body;
  server {{ listen 127.0.0.1:{port}; location / {{ return 200 "ok"; }} }}
}}
"""

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
def receiver(directory: Path) -> Iterator[tuple[str, str]]:
    """A local receiver answering 200 to everything: its URL and what it is (nginx, else uvicorn)."""
    port = free_port()
    nginx = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)
    if nginx is not None:
        (directory / "receiver.conf").write_text(NGINX_CONF.format(dir=directory, port=port))
        command, kind = (
            [nginx, "-p", str(directory), "-c", str(directory / "receiver.conf"), "-g", "daemon off;"],
            "nginx",
        )
    else:
        (directory / "receiver_app.py").write_text(RECEIVER_APP)
        command = [sys.executable, "-m", "uvicorn", "receiver_app:app", "--port", str(port), "--log-level", "warning",
                   "--no-access-log"]  # fmt: skip
        kind = "uvicorn"
    process = subprocess.Popen(command, cwd=directory, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.05)
        yield f"http://127.0.0.1:{port}", kind
    finally:
        process.terminate()
        process.wait(timeout=30)


async def direct(url: str, messages: int, concurrency: int) -> float:
    """The baseline: sign and POST every message from one process with aiohttp; seconds taken."""
    secret = new_webhook_secret()
    body = '{"type":"advertiser.created","timestamp":"2026-01-01T00:00:00Z","data":{"id":1}}'
    limit = asyncio.Semaphore(concurrency)
    async with aiohttp.ClientSession() as client:

        async def one(i: int) -> None:
            async with limit:
                now = datetime.now(UTC)
                headers = {
                    "webhook-id": f"msg_{i}",
                    "webhook-timestamp": str(int(now.timestamp())),
                    "webhook-signature": Webhook(secret).sign(f"msg_{i}", now, body),
                    "content-type": "application/json",
                }
                async with client.post(url, data=body.encode(), headers=headers) as response:
                    await response.read()
                    assert response.status == 200

        started = time.monotonic()
        await asyncio.gather(*(one(i) for i in range(messages)))
        return time.monotonic() - started


def queue_webhooks(container: Container, url: str, messages: int) -> Callable[[], None]:
    """An endpoint for `advertiser.created`, then `messages` advertisers (each emits one); returns what
    disables the endpoint after the run (so that the next run's advertisers are not sent to it too)."""

    async def queue() -> int:
        hook = await container.webhooks.create(WebhookCreate(url=f"{url}/hook", event_types=["advertiser.created"]))
        for start in range(0, messages, 200):
            names = [f"A{i}" for i in range(start, min(messages, start + 200))]
            await asyncio.gather(*(container.catalog.create_advertiser(AdvertiserCreate(name=n)) for n in names))
        return hook.endpoint.id

    endpoint_id = asyncio.run(queue())

    def disable() -> None:
        asyncio.run(container.webhooks.update(endpoint_id, WebhookUpdate(status=EndpointStatus.DISABLED)))

    return disable


def queue_postbacks(container: Container, url: str, messages: int) -> Callable[[], None]:
    """A partner with a postback, then `messages` of its deliveries, each with its own URL."""

    async def postback() -> int:
        partner = await container.catalog.create_partner(
            PartnerCreate(name="Bench partner", email=f"bench-{time.time_ns()}@partner.example"), PartnerStatus.ACTIVE
        )
        body = PartnerPostbackCreate(url=f"{url}/postback?tid={{transaction_id}}", partner_id=partner.id)
        return (await container.partner_postbacks.create(Scope(Role.ADMIN), body)).id

    postback_id, now = asyncio.run(postback()), datetime.now(UTC)
    for start in range(0, messages, 1000):

        def work(repo: Repository, start: int = start) -> None:
            for i in range(start, min(messages, start + 1000)):
                repo.insert_delivery(NewDelivery(
                    kind=DeliveryKind.POSTBACK, event_type="conversion.registered", method="GET", body=None,
                    status=DeliveryStatus.PENDING, next_attempt_at=now, created_at=now, postback_id=postback_id,
                    url=f"{url}/postback?tid={i:032x}", dedup_key=f"bench:{postback_id}:{i}",
                ))  # fmt: skip

        container.db.write_now(work)
    return lambda: None  # each run has its own partner and postback


def deliver(
    database_url: str, expected: int, workers: int, concurrency: int, succeeded: Callable[[], int]
) -> tuple[float, float, int]:
    """Start `workers` `tracklane worker` processes and wait until `expected` deliveries have succeeded: the
    seconds from the start, the seconds from the first success seen, and how many had succeeded then."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRACKLANE_")}
    env.update(
        TRACKLANE_DATABASE_URL=database_url,
        TRACKLANE_SECRETS_KEY=SECRETS_KEY,
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
        first, at_first = succeeded(), 0.0
        while (done := succeeded()) == first:
            time.sleep(0.005)
        at_first, first = time.monotonic(), done
        while succeeded() < expected:
            time.sleep(0.02)
        ended = time.monotonic()
        return ended - started, ended - at_first, expected - first
    finally:
        for process in processes:
            process.terminate()
            process.wait(timeout=30)


#: The database's secrets key: the environment's when set (bench/run shares its database and key), else fixed.
SECRETS_KEY = os.environ.get("TRACKLANE_SECRETS_KEY") or "bench-secrets-key-of-32-characters!!"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=10_000)
    parser.add_argument("--workers", default="1,2", help="worker counts to run, comma-separated")
    parser.add_argument("--concurrency", type=int, default=32, help="requests each worker sends at once")
    parser.add_argument("--database-url", default=None, help="default: a SQLite file in a temporary directory")
    args = parser.parse_args()
    counts = [int(n) for n in args.workers.split(",")]
    with tempfile.TemporaryDirectory() as directory, receiver(Path(directory)) as (url, kind):
        database_url = args.database_url or f"sqlite:///{Path(directory) / 'bench.db'}"
        settings = Settings(database_url=database_url, delivery_in_serve=False,  # type: ignore[call-arg]
                            allow_private_destinations="127.0.0.1/32", secrets_key=SECRETS_KEY)  # fmt: skip
        container = build(settings)

        last_id = 0  # the runs count their own deliveries: an index range, however many an earlier run left

        def succeeded() -> int:
            count = (
                select(func.count())
                .select_from(deliveries)
                .where(deliveries.c.id > last_id, deliveries.c.status == "succeeded")
            )
            return int(container.db.read_now(lambda repo: repo.conn.execute(count).scalar_one()))  # type: ignore[attr-defined]

        try:
            baseline = args.messages / asyncio.run(direct(f"{url}/hook", args.messages, args.concurrency))
            print(f"receiver: {kind}; database: {database_url.split(':')[0]}; {args.messages:,} deliveries a run, "
                  f"{args.concurrency} at once per worker")  # fmt: skip
            print(f"{'baseline: direct signed POSTs, one process':<44} {baseline:8,.0f} /s")
            for name, queue in (("webhooks", queue_webhooks), ("partner postbacks", queue_postbacks)):
                for workers in counts:
                    newest = select(func.coalesce(func.max(deliveries.c.id), 0))
                    last_id = int(container.db.read_now(lambda repo: repo.conn.execute(newest).scalar_one()))  # type: ignore[attr-defined]  # noqa: B023
                    before = succeeded()
                    finish = queue(container, url, args.messages)
                    total, steady, counted = deliver(
                        database_url, before + args.messages, workers, args.concurrency, succeeded
                    )
                    finish()
                    rate = counted / steady
                    print(f"{f'{name}, {workers} worker(s)':<44} {rate:8,.0f} /s  {rate / workers:8,.0f} /s a worker"
                          f"  {rate / baseline:5.2f}x the baseline"
                          f"  ({args.messages / total:,.0f} /s with start-up)")  # fmt: skip
        finally:
            container.close()


if __name__ == "__main__":
    main()
