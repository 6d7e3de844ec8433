"""Two servers (two writers) on one database receive calls about the same new people at once (and copies of
the same batches): every message is stored once, and each person is one customer."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from tests import factories
from tests.segment_support import conversions, customers, messages, source
from tests.servers import two_servers

PEOPLE = 25


def _batches(tids: list[str]) -> list[list[dict[str, Any]]]:
    """Per person: a browser batch (page with the click, identify) and a server batch (identify again,
    order by userId), both naming the same new person."""
    batches = []
    for n, tid in enumerate(tids):
        batches.append(
            [
                {
                    "type": "page",
                    "anonymousId": f"a{n}",
                    "messageId": f"p{n}",
                    "context": {"page": {"url": f"https://shop.example/?tl_tid={tid}"}},
                },
                {"type": "identify", "anonymousId": f"a{n}", "userId": f"u{n}", "messageId": f"i{n}"},
            ]
        )
        batches.append(
            [
                {"type": "identify", "anonymousId": f"a{n}", "userId": f"u{n}", "messageId": f"j{n}"},
                {
                    "type": "track",
                    "event": "Order Completed",
                    "userId": f"u{n}",
                    "messageId": f"o{n}",
                    "properties": {"order_id": f"O{n}", "revenue": "10"},
                },
            ]
        )
    return batches


async def _send(urls: list[str], key: str, batches: list[list[dict[str, Any]]], copies: bool) -> list[httpx.Response]:
    """Batches alternate between the servers; with `copies`, each also goes to the other server at once."""
    async with httpx.AsyncClient(timeout=60) as client:
        sent = [
            client.post(f"{urls[(i + j) % 2]}/v1/batch", json={"batch": batch, "writeKey": key})
            for i, batch in enumerate(batches)
            for j in range(2 if copies else 1)
        ]
        return await asyncio.gather(*sent)


@pytest.mark.parametrize("copies", [False, True], ids=["interleaved", "duplicated"])
def test_two_servers_store_each_message_once_and_one_customer_per_person(database_url: str, copies: bool) -> None:
    with two_servers(database_url) as (first, second, api):
        adv, offer, partner = factories.program(api)
        tids = [factories.click(api, offer["id"], partner["id"]) for _ in range(PEOPLE)]
        src = source(api, adv["id"])
        responses = asyncio.run(_send([first.base_url, second.base_url], src["write_key"], _batches(tids), copies))
        assert [r.status_code for r in responses] == [200] * len(responses), [r.text for r in responses][:3]
        stored = messages(api, src["id"])
        assert len(stored) == 4 * PEOPLE == len({m["message_id"] for m in stored})
        people = customers(api, source_id=src["id"])
        assert len(people) == PEOPLE
        by_user = {p["user_id"]: p for p in people}
        assert set(by_user) == {f"u{n}" for n in range(PEOPLE)}
        assert all(by_user[f"u{n}"]["anonymous_ids"] == [f"a{n}"] for n in range(PEOPLE))
        # An order handled before its person's identify is kept as unattributed; the others convert, once.
        converted = [c for c in conversions(api, offer_id=offer["id"]) if c["origin"] == "segment"]
        assert len(converted) == len({c["transaction_id"] for c in converted})
        orders = [m for m in stored if m["type"] == "track"]
        assert sum(m["outcome"] == "conversion" for m in orders) == len(converted)
        assert all(m["outcome"] in ("conversion", "unattributed") for m in orders)


CALLS = 40


def test_two_servers_changing_one_customer_at_once_lose_none_of_its_changes(database_url: str) -> None:
    """Every call changes the same person through one server or the other: each page counts as a visit and
    each identify's trait is kept (a change made from a customer read before another server's committed
    change would undo that change)."""
    with two_servers(database_url) as (first, second, api):
        adv, _, _ = factories.program(api)
        src = source(api, adv["id"])
        known = {"type": "identify", "userId": "u", "anonymousId": "a", "messageId": "first"}
        response = httpx.post(f"{first.base_url}/v1/batch", json={"batch": [known], "writeKey": src["write_key"]})
        assert response.status_code == 200, response.text
        batches = [
            [
                {"type": "identify", "userId": "u", "messageId": f"i{n}", "traits": {f"t{n}": n}},
                {"type": "page", "anonymousId": "a", "messageId": f"p{n}"},
            ]
            for n in range(CALLS)
        ]
        responses = asyncio.run(_send([first.base_url, second.base_url], src["write_key"], batches, copies=False))
        assert [r.status_code for r in responses] == [200] * CALLS, [r.text for r in responses][:3]
        (person,) = customers(api, source_id=src["id"])
        assert person["visits"] == CALLS
        assert person["traits"] == {f"t{n}": n for n in range(CALLS)}
