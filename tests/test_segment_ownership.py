"""A Segment source belongs to one advertiser: through the real server, its messages convert, refund and link
customers only within that advertiser's clicks and conversions; another advertiser's click is answered
exactly like a click that does not exist."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from sqlalchemy import update

from tests import factories
from tests.segment_support import conversions, customers, messages, source
from tests.servers import RunningServer
from tracklane.storage.engines import create_admin_engine
from tracklane.storage.schema import sources

Shape = Callable[[str, int], list[dict[str, Any]]]


def send(web: httpx.Client, src: dict[str, Any], *batch: dict[str, Any]) -> None:
    response = web.post("/v1/batch", json={"batch": list(batch), "writeKey": src["write_key"]})
    assert (response.status_code, response.json()) == (200, {"success": True})


def _by_property(tid: str, n: int) -> list[dict[str, Any]]:
    return [
        {
            "type": "track",
            "event": "Order Completed",
            "userId": f"buyer-{n}",
            "messageId": f"prop-{n}",
            "properties": {"transaction_id": tid, "order_id": f"P-{n}", "total": "20.00"},
        }
    ]


def _by_referrer(tid: str, n: int) -> list[dict[str, Any]]:
    return [
        {
            "type": "track",
            "event": "Order Completed",
            "anonymousId": f"anon-{n}",
            "messageId": f"ref-{n}",
            "context": {"referrer": {"type": "tracklane", "id": tid}},
            "properties": {"order_id": f"R-{n}", "total": "20.00"},
        }
    ]


def _by_page_url(tid: str, n: int) -> list[dict[str, Any]]:
    """A landing page carrying `tl_tid`, then a server-side order with only the same person's id."""
    return [
        {
            "type": "page",
            "anonymousId": f"visitor-{n}",
            "messageId": f"page-{n}",
            "context": {"page": {"url": f"https://shop.example/?tl_tid={tid}"}},
        },
        {
            "type": "track",
            "event": "Order Completed",
            "anonymousId": f"visitor-{n}",
            "messageId": f"order-{n}",
            "properties": {"order_id": f"U-{n}", "total": "20.00"},
        },
    ]


def _outcomes(api: httpx.Client, src: dict[str, Any], tid: str) -> list[tuple[str, str]]:
    """(outcome, detail) of each stored message, oldest first, with the click id written as <tid>."""
    stored = sorted(messages(api, src["id"]), key=lambda m: m["id"])
    return [(m["outcome"], (m["detail"] or "").replace(tid, "<tid>")) for m in stored]


@pytest.mark.parametrize(
    "shape",
    [_by_property, _by_referrer, _by_page_url],
    ids=["transaction_id property", "referrer", "tl_tid in the page url"],
)
def test_a_source_cannot_convert_another_advertisers_click(api: httpx.Client, web: httpx.Client, shape: Shape) -> None:
    adv_a, offer_a, partner = factories.program(api)
    adv_b, offer_b, _ = factories.program(api)
    tid_a = factories.click(web, offer_a["id"], partner["id"])
    tid_b = factories.click(web, offer_b["id"], partner["id"])
    source_a = source(api, adv_a["id"])

    send(web, source_a, *shape(tid_b, 1))
    assert conversions(api, transaction_id=tid_b) == []
    foreign = _outcomes(api, source_a, tid_b)
    assert foreign[-1][0] in ("refused", "unattributed")
    assert all(c["transaction_id"] is None for c in customers(api, source_id=source_a["id"]))

    # Exactly what a click that does not exist gets.
    unknown_source = source(api, adv_a["id"])
    unknown = secrets.token_hex(16)
    send(web, unknown_source, *shape(unknown, 1))
    assert _outcomes(api, unknown_source, unknown) == foreign

    # The same message with the advertiser's own click converts; the other advertiser's source converts its own.
    send(web, source_a, *shape(tid_a, 2))
    [own] = conversions(api, transaction_id=tid_a)
    assert (own["origin"], own["advertiser_id"]) == ("segment", adv_a["id"])
    send(web, source(api, adv_b["id"]), *shape(tid_b, 3))
    [theirs] = conversions(api, transaction_id=tid_b)
    assert theirs["advertiser_id"] == adv_b["id"]


def test_the_refusal_says_the_click_is_no_click_of_the_sources_advertiser(api: httpx.Client, web: httpx.Client) -> None:
    adv_a, _, partner = factories.program(api)
    _, offer_b, _ = factories.program(api)
    tid_b = factories.click(web, offer_b["id"], partner["id"])
    source_a = source(api, adv_a["id"])
    send(web, source_a, *_by_property(tid_b, 1))
    [stored] = messages(api, source_a["id"])
    assert stored["outcome"] == "refused" and stored["conversion_id"] is None
    assert stored["detail"] == (
        f"unknown_transaction: no click of an offer of this source's advertiser has transaction_id {tid_b}"
    )


def test_a_refund_with_another_advertisers_order_id_rejects_nothing_of_theirs(
    api: httpx.Client, web: httpx.Client
) -> None:
    adv_a, offer_a, partner = factories.program(api)
    adv_b, offer_b, _ = factories.program(api)
    source_a, source_b = source(api, adv_a["id"]), source(api, adv_b["id"])
    order = "SAME-ORDER-1"
    for src, offer, n in ((source_b, offer_b, 1), (source_a, offer_a, 2)):
        tid = factories.click(web, offer["id"], partner["id"])
        send(
            web,
            src,
            {
                "type": "track",
                "event": "Order Completed",
                "userId": f"u{n}",
                "messageId": f"buy-{n}",
                "properties": {"transaction_id": tid, "order_id": order, "total": "30.00"},
            },
        )
    [b_conversion] = conversions(api, advertiser_id=adv_b["id"], order_id=order)
    [a_conversion] = conversions(api, advertiser_id=adv_a["id"], order_id=order)

    send(
        web,
        source_a,
        {
            "type": "track",
            "event": "Order Refunded",
            "userId": "someone",
            "messageId": "refund-1",
            "properties": {"order_id": order},
        },
    )
    assert api.get(f"/api/v1/conversions/{b_conversion['id']}").json()["status"] == "approved"
    refunded = api.get(f"/api/v1/conversions/{a_conversion['id']}").json()
    assert (refunded["status"], refunded["status_reason"]) == ("rejected", "refunded")
    [refund] = messages(api, source_a["id"], message_id="refund-1")
    assert (refund["outcome"], refund["detail"]) == ("refund", f"order {order} refunded: 1 conversion(s) rejected")


def test_a_source_without_an_advertiser_attributes_nothing_and_says_so(
    server: RunningServer, api: httpx.Client, web: httpx.Client
) -> None:
    adv, offer, partner = factories.program(api)
    tid = factories.click(web, offer["id"], partner["id"])
    src = source(api, adv["id"])
    engine = create_admin_engine(server.settings.database_url)
    with engine.begin() as conn:  # as migration 0004 leaves a source it could not assign
        conn.execute(update(sources).where(sources.c.id == src["id"]).values(advertiser_id=None))
    engine.dispose()
    assert api.get(f"/api/v1/sources/{src['id']}").json()["advertiser_id"] is None

    send(
        web,
        src,
        *_by_page_url(tid, 1),
        {
            "type": "track",
            "event": "Order Refunded",
            "anonymousId": "visitor-1",
            "messageId": "refund-1",
            "properties": {"order_id": "U-1"},
        },
    )
    assert conversions(api, transaction_id=tid) == []
    stored = {m["message_id"]: m for m in messages(api, src["id"])}
    assert stored["order-1"]["outcome"] == "unattributed"
    assert stored["refund-1"]["outcome"] == "refund"
    for name in ("page-1", "order-1", "refund-1"):
        assert "this source belongs to no advertiser" in stored[name]["detail"], stored[name]
    [person] = customers(api, source_id=src["id"])
    assert person["transaction_id"] is None

    changed = api.patch(f"/api/v1/sources/{src['id']}", json={"advertiser_id": adv["id"]})
    assert (changed.status_code, changed.json()["advertiser_id"]) == (200, adv["id"])


def test_only_offers_accepting_the_segment_method_convert_through_segment(api: httpx.Client, web: httpx.Client) -> None:
    adv, offer, partner = factories.program(api, conversion_methods=["postback"])
    assert offer["conversion_methods"] == ["postback"]
    tid = factories.click(web, offer["id"], partner["id"])
    src = source(api, adv["id"])
    send(web, src, *_by_property(tid, 1))
    assert conversions(api, transaction_id=tid) == []
    [stored] = messages(api, src["id"])
    assert stored["outcome"] == "refused"
    assert stored["detail"] == (
        f"method_not_enabled: offer #{offer['id']} does not enable the segment conversion method"
    )


def test_a_source_needs_a_known_advertiser(api: httpx.Client) -> None:
    missing = api.post("/api/v1/sources", json={"name": "Web shop"})
    assert (missing.status_code, missing.json()["error"], missing.json()["field"]) == (
        400,
        "invalid_parameter",
        "advertiser_id",
    )
    unknown = api.post("/api/v1/sources", json={"name": "Web shop", "advertiser_id": 999999})
    assert (unknown.status_code, unknown.json()["field"]) == (400, "advertiser_id")
    assert "999999" in unknown.json()["message"]
    adv = factories.advertiser(api)
    created = factories.created(api.post("/api/v1/sources", json={"name": "Web shop", "advertiser_id": adv["id"]}))
    assert created["advertiser_id"] == adv["id"] and created["write_key"] and created["webhook_secret"]
    moved = api.patch(f"/api/v1/sources/{created['id']}", json={"advertiser_id": 999999})
    assert (moved.status_code, moved.json()["field"]) == (400, "advertiser_id")
    cleared = api.patch(f"/api/v1/sources/{created['id']}", json={"advertiser_id": None})
    assert (cleared.status_code, cleared.json()["field"]) == (400, "advertiser_id")
    bad = api.post("/api/v1/sources", json={"name": "x", "advertiser_id": adv["id"], "settings": {"color": 1}})
    assert (bad.status_code, bad.json()["field"]) == (400, "settings.color")
    key = api.post("/api/v1/sources", json={"name": "x", "advertiser_id": adv["id"], "write_key": "no"})
    assert (key.status_code, key.json()["field"]) == (400, "write_key")
    assert api.get(f"/api/v1/sources/{created['id']}").json()["advertiser_id"] == adv["id"]
