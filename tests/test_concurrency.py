"""Under concurrent load, every acknowledged click and conversion is stored, duplicates never are, and
caps are exact, even with two server instances (two writers) sharing one database."""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from typing import Any

import httpx
from sqlalchemy import func, select

from tests import factories
from tests.conftest import BROWSER_UA
from tests.servers import RunningServer, running_server
from tracklane.storage.schema import clicks, conversions

CLICKS = 200
#: The write timeout of these servers: what is tested is that nothing is lost or doubled, not how fast, and a
#: loaded machine may take longer than the default 4 s to commit a burst (its writes would answer 503).
PATIENT = 30.0


def stored(server: RunningServer) -> tuple[set[str], Counter[str]]:
    def query(repo: Any) -> tuple[set[str], Counter[str]]:
        tids = set(repo.conn.execute(select(clicks.c.transaction_id)).scalars())
        per_click = Counter(repo.conn.execute(select(conversions.c.transaction_id)).scalars())
        return tids, per_click

    return server.container.db.read_now(query)


#: 2 * CLICKS postbacks are in flight at once, spread over this many clients: one httpx pool holding
#: hundreds of connections spends seconds of CPU matching requests to connections.
CLIENTS = 40


async def _burst(base_urls: list[str], offer_id: int, partner_id: int, token: str) -> tuple[list[str], list[dict]]:
    async with contextlib.AsyncExitStack() as stack:
        limits = httpx.Limits(max_connections=2 * CLICKS // CLIENTS)
        clients = [
            await stack.enter_async_context(
                httpx.AsyncClient(timeout=60, limits=limits, headers={"User-Agent": BROWSER_UA})
            )
            for _ in range(CLIENTS)
        ]
        clicks_sent = [
            clients[i % CLIENTS].get(
                f"{base_urls[i % len(base_urls)]}/clk", params={"offer_id": offer_id, "partner_id": partner_id}
            )
            for i in range(CLICKS)
        ]
        click_responses = await asyncio.gather(*clicks_sent)
        assert all(r.status_code == 200 for r in click_responses)
        tids = [r.json()["transaction_id"] for r in click_responses]
        # Each click is converted twice at once, through different servers when there are two.
        postbacks = [
            clients[(2 * i + j) % CLIENTS].get(
                f"{base_urls[(i + j) % len(base_urls)]}/postback",
                params={"transaction_id": tid, "secure": token, "amount": "10.00"},
            )
            for i, tid in enumerate(tids)
            for j in range(2)
        ]
        responses = await asyncio.gather(*postbacks)
        assert all(r.status_code == 200 for r in responses), [r.text for r in responses if r.status_code != 200][:3]
        return tids, [r.json() for r in responses]


def _burst_from_another_process(
    base_urls: list[str], offer_id: int, partner_id: int, token: str
) -> tuple[list[str], list[dict]]:
    """Run `_burst` in a process of its own: 400 client connections in this process would take the
    interpreter lock from the server under test (its writer thread then waits for it after each database
    round trip), which measures the test client, not the server. A deployed server has its process to itself."""
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as child:
        return child.submit(_burst_sync, base_urls, offer_id, partner_id, token).result(timeout=120)


def _burst_sync(base_urls: list[str], offer_id: int, partner_id: int, token: str) -> tuple[list[str], list[dict]]:
    return asyncio.run(_burst(base_urls, offer_id, partner_id, token))


def _check(server: RunningServer, tids: list[str], results: list[dict[str, Any]]) -> Counter[str]:
    stored_tids, per_click = stored(server)
    assert len(set(tids)) == CLICKS
    assert set(tids) <= stored_tids, "an acknowledged click is missing"
    assert all(per_click[tid] == 1 for tid in tids), "a click has no conversion or a duplicate one"
    by_tid: dict[str, list[dict[str, Any]]] = {}
    for result in results:
        by_tid.setdefault(result["transaction_id"], []).append(result)
    for pair in by_tid.values():
        assert sorted(r["result"] for r in pair) == ["accepted", "duplicate"]
        assert pair[0]["conversion_id"] == pair[1]["conversion_id"]
    return Counter(r["status"] for r in results if r["result"] == "accepted")


def test_concurrent_clicks_and_postbacks_lose_nothing_and_never_double(database_url: str) -> None:
    with (
        running_server(database_url, write_timeout_seconds=PATIENT) as server,
        httpx.Client(base_url=server.base_url, headers={"Authorization": f"Bearer {server.admin_key}"}) as api,
    ):
        adv, offer, partner = factories.program(api, caps=[{"metric": "conversions", "period": "total", "limit": 100}])
        tids, results = _burst_from_another_process(
            [server.base_url], offer["id"], partner["id"], adv["postback_token"]
        )
        statuses = _check(server, tids, results)
    assert statuses == Counter({"approved": 100, "pending": CLICKS - 100})


def test_two_servers_on_one_database_keep_caps_and_dedup_exact(database_url: str) -> None:
    with (
        running_server(database_url, write_timeout_seconds=PATIENT) as first,
        running_server(database_url, write_timeout_seconds=PATIENT) as second,
        httpx.Client(base_url=first.base_url, headers={"Authorization": f"Bearer {first.admin_key}"}) as api,
    ):
        adv, offer, partner = factories.program(api, caps=[{"metric": "conversions", "period": "day", "limit": 77}])
        tids, results = _burst_from_another_process(
            [first.base_url, second.base_url], offer["id"], partner["id"], adv["postback_token"]
        )
        statuses = _check(first, tids, results)
        assert statuses == Counter({"approved": 77, "pending": CLICKS - 77})
        assert (
            first.container.db.read_now(
                lambda repo: repo.conn.execute(select(func.count()).select_from(conversions)).scalar_one()  # type: ignore[attr-defined]
            )
            == CLICKS
        )
