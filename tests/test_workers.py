"""`tracklane worker` processes against one database: a worker killed mid-delivery loses nothing, and two
workers share 1,000 deliveries with none lost and none sent twice at the same time."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import threading
from collections import Counter, defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from tests.receiver import DELIVERY, Received, Reply, always, in_turn, poll, receiving
from tests.servers import POSTGRES_ENV, RunningServer, postgres_database, running_server, secrets_env
from tracklane.storage.schema import deliveries, delivery_attempts

MESSAGES = 1000


@contextmanager
def worker(database_url: str, **settings: str) -> Iterator[subprocess.Popen[bytes]]:
    """A real `tracklane worker` process with the test's delivery settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRACKLANE_")}
    env.update({f"TRACKLANE_{k.upper()}": str(v) for k, v in {**DELIVERY, **settings}.items()})
    env.update(TRACKLANE_DATABASE_URL=database_url, TRACKLANE_LOG_LEVEL="WARNING", **secrets_env(database_url))
    process = subprocess.Popen(
        [sys.executable, "-m", "tracklane", "worker"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        yield process
    finally:
        if process.poll() is None:
            process.terminate()
        process.wait(timeout=30)


def statuses(server: RunningServer) -> Counter[str]:
    def query(repo: Any) -> Counter[str]:
        rows = repo.conn.execute(select(deliveries.c.status, func.count()).group_by(deliveries.c.status))
        return Counter(dict(rows.all()))

    return server.container.db.read_now(query)


def attempts(server: RunningServer) -> list[Any]:
    return server.container.db.read_now(
        lambda repo: list(repo.conn.execute(select(delivery_attempts)))  # type: ignore[attr-defined]
    )


def test_a_worker_killed_mid_delivery_loses_nothing(database_url: str) -> None:
    hold = threading.Event()
    lease = {"delivery_timeout_seconds": "2", "delivery_lease_seconds": "3"}
    with (
        receiving(in_turn(Reply(200, hold=hold), Reply(200))) as receiver,
        running_server(database_url, delivery_in_serve=False, **DELIVERY) as hub,
        httpx.Client(base_url=hub.base_url, headers={"Authorization": f"Bearer {hub.admin_key}"}) as admin,
    ):
        hook = admin.post("/api/v1/webhooks", json={"url": receiver.url + "/hook"}).json()
        admin.post("/api/v1/advertisers", json={"name": "Acme"})
        assert statuses(hub) == Counter({"pending": 1})

        with worker(database_url, **lease) as first:
            receiver.wait_for(1)  # the receiver holds this request open
            first.kill()
            first.wait(timeout=30)
        hold.set()
        assert statuses(hub) == Counter({"sending": 1}), "the killed worker's lease is still held"

        with worker(database_url, **lease):
            held, delivered = receiver.wait_for(2)
            poll(lambda: statuses(hub) == Counter({"succeeded": 1}))
        assert held.headers["webhook-id"] == delivered.headers["webhook-id"]
        assert delivered.verified(hook["secret"])["type"] == "advertiser.created"
        assert delivered.arrived - held.arrived >= 2.5, "nobody took the delivery before its lease expired"
        (only,) = admin.get("/api/v1/deliveries").json()["data"]
        assert (only["status"], only["attempts"]) == ("succeeded", 1)


async def _create_partners(base_url: str, admin_key: str, count: int) -> None:
    limits = httpx.Limits(max_connections=50)
    headers = {"Authorization": f"Bearer {admin_key}"}
    async with httpx.AsyncClient(base_url=base_url, headers=headers, limits=limits, timeout=60) as client:
        responses = await asyncio.gather(
            *(
                client.post("/api/v1/partners", json={"name": f"Partner {i}", "email": f"bulk{i}@example.com"})
                for i in range(count)
            )
        )
    assert all(r.status_code == 201 for r in responses)


def _never_overlapping(requests: list[Received]) -> dict[str, list[Received]]:
    by_id: dict[str, list[Received]] = defaultdict(list)
    for request in requests:
        by_id[request.headers["webhook-id"]].append(request)
    for repeated in (r for r in by_id.values() if len(r) > 1):
        spans = sorted((r.arrived, r.finished or r.arrived) for r in repeated)
        assert all(earlier[1] <= later[0] for earlier, later in pairwise(spans)), spans
    return by_id


@pytest.mark.postgres
def test_two_workers_deliver_1000_messages_none_lost_none_twice_at_once() -> None:
    if not os.environ.get(POSTGRES_ENV):
        pytest.skip(f"PostgreSQL tests need {POSTGRES_ENV} (CI sets it)")
    with (
        postgres_database() as url,
        receiving(always(200, delay=0.005)) as receiver,
        running_server(url, delivery_in_serve=False, **DELIVERY) as hub,
        httpx.Client(base_url=hub.base_url, headers={"Authorization": f"Bearer {hub.admin_key}"}) as admin,
    ):
        hook = admin.post(
            "/api/v1/webhooks", json={"url": receiver.url + "/hook", "event_types": ["partner.created"]}
        ).json()
        asyncio.run(_create_partners(hub.base_url, hub.admin_key, MESSAGES))
        assert statuses(hub) == Counter({"pending": MESSAGES})

        with worker(url, delivery_concurrency="16"), worker(url, delivery_concurrency="16"):
            receiver.wait_for(MESSAGES, timeout=180)
            poll(lambda: statuses(hub) == Counter({"succeeded": MESSAGES}), timeout=60)

        by_id = _never_overlapping(receiver.received)
        assert len(by_id) == MESSAGES
        emails = {r[0].verified(hook["secret"])["data"]["email"] for r in by_id.values()}
        assert emails == {f"bulk{i}@example.com" for i in range(MESSAGES)}
        log = attempts(hub)
        assert Counter((a.verdict, a.error_class) for a in log) == Counter({("success", None): MESSAGES}), [
            (a.error, a.latency_ms, a.created_at, a.worker) for a in log if a.error
        ][:5]
        assert len({a.worker for a in log}) == 2, "both workers took a share"
        assert len(receiver.received) == MESSAGES, "no lease expired, so no message was sent twice"


def test_a_claim_takes_at_most_its_limit_and_never_a_leased_delivery(database_url: str) -> None:
    with (
        running_server(database_url, delivery_in_serve=False, **DELIVERY) as hub,
        httpx.Client(base_url=hub.base_url, headers={"Authorization": f"Bearer {hub.admin_key}"}) as admin,
    ):
        admin.post("/api/v1/webhooks", json={"url": "https://hooks.example.com/x"})
        for i in range(40):
            admin.post("/api/v1/partners", json={"name": f"P{i}", "email": f"claim{i}@example.com"})
        now = datetime.now(UTC)

        def claim(worker_id: str) -> list[int]:
            return hub.container.db.write_now(
                lambda repo: [d.id for d in repo.claim_deliveries(worker_id, now, now + timedelta(minutes=1), 16)]
            )

        first, second, third = claim("a"), claim("b"), claim("c")
        assert (len(first), len(second), len(third)) == (16, 16, 8)
        assert len(set(first) | set(second) | set(third)) == 40
        assert claim("d") == []
        later = now + timedelta(minutes=2)  # every lease has expired: the sweeper's case
        expired = hub.container.db.write_now(
            lambda repo: [d.id for d in repo.claim_deliveries("e", later, later + timedelta(minutes=1), 100)]
        )
        assert sorted(expired) == sorted(first + second + third)
