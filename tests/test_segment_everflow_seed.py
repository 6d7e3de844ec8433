"""Everflow's Segment destination page through a real server: the seed's example track is the mapped
advertiser event with its amount, order and adv values; the TransactionId (`context.referrer.id`) and
`context.referrer.type` are required, so a mapped track without either is refused and recorded with the
missing or bad field's path; the answer stays `200` (a client must not retry it), as the real
segment-analytics-python client sees."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests import factories
from tests.segment_support import conversions, customers, messages, source
from tests.servers import RunningServer

BROWSER = {"User-Agent": "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0"}
REQUIRED = (
    "(the everflow preset attributes a conversion only by context.referrer.id with context.referrer.type everflow)"
)


@pytest.fixture
def browser(server: RunningServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.base_url, headers=BROWSER, timeout=30, follow_redirects=False) as client:
        yield client


def seed_track(tid: str | None, message_id: str = "ef-seed") -> dict[str, Any]:
    """The seed's example call, with the click's transaction id as `EF.getAdvertiserTransactionId(7)`."""
    return {
        "context": {"referrer": {"type": "everflow", "id": tid}, "ip": "23.123.123.123"},
        "event": "Order Completed",
        "properties": {"adv1": "adv1test", "adv3": "adv3test", "total": 76.0, "orderId": "123456789"},
        "type": "track",
        "userId": "a1b2c3d4",
        "messageId": message_id,
    }


def post(web: httpx.Client, src: dict[str, Any], *batch: dict[str, Any]) -> httpx.Response:
    response = web.post("/v1/batch", json={"batch": list(batch), "writeKey": src["write_key"]})
    assert (response.status_code, response.json()) == (200, {"success": True})
    return response


def test_the_seed_example_is_the_mapped_advertiser_event(
    api: httpx.Client, web: httpx.Client, browser: httpx.Client
) -> None:
    adv, offer, partner = factories.program(api, revenue={"type": "cps", "percent": "5"})
    tid = factories.click(browser, offer["id"], partner["id"])
    # Map your events: the Segment event name to the advertiser event (here the offer's base conversion).
    src = source(api, adv["id"], "everflow", event_mapping={"Order Completed": "base"})
    assert src["effective_settings"]["require_referrer"] is True
    response = post(web, src, seed_track(tid))
    assert response.headers["x-tracklane-refused"] == "0"
    [conversion] = conversions(api, transaction_id=tid)
    assert (conversion["amount"], conversion["order_id"], conversion["revenue"], conversion["origin"]) == (
        "76.00",
        "123456789",
        "3.80",
        "segment",
    )
    assert (conversion["adv1"], conversion["adv2"], conversion["adv3"]) == ("adv1test", None, "adv3test")
    [message] = messages(api, src["id"])
    assert (message["outcome"], message["mapped"]["click_path"]) == ("conversion", "context.referrer.id")


@pytest.mark.parametrize(("context", "field", "why"), [
    ({"ip": "23.123.123.123"}, "context.referrer", "is missing (its id, with type everflow)"),
    ({"referrer": "everflow"}, "context.referrer", "must be an object"),
    ({"referrer": {"type": "everflow"}}, "context.referrer.id", "is missing"),
    ({"referrer": {"type": "everflow", "id": None}}, "context.referrer.id", "is missing"),
    ({"referrer": {"type": "everflow", "id": "  "}}, "context.referrer.id", "is empty"),
    ({"referrer": {"type": "everflow", "id": ["x"]}}, "context.referrer.id", "must be a string"),
    ({"referrer": {"id": "<tid>"}}, "context.referrer.type", "is missing (must be everflow)"),
    ({"referrer": {"id": "<tid>", "type": "tracklane"}}, "context.referrer.type", "is 'tracklane', not everflow"),
    ({"referrer": {}}, "context.referrer.type", "is missing (must be everflow); context.referrer.id: is missing"),
])  # fmt: skip
def test_a_mapped_track_without_its_transaction_id_is_refused_naming_the_field(
    api: httpx.Client, web: httpx.Client, browser: httpx.Client, context: dict[str, Any], field: str, why: str
) -> None:
    adv, offer, partner = factories.program(api)
    tid = factories.click(browser, offer["id"], partner["id"])
    src = source(api, adv["id"], "everflow", event_mapping={"Order Completed": "base"})
    track = seed_track(tid)
    track["context"] = {k: v.replace("<tid>", tid) if isinstance(v, str) else v for k, v in context.items()}
    if isinstance(referrer := context.get("referrer"), dict):
        track["context"]["referrer"] = {k: tid if v == "<tid>" else v for k, v in referrer.items()}
    response = post(web, src, track, {"type": "track", "event": "Product Viewed", "userId": "a1b2c3d4",
                                      "messageId": "not-mapped", "context": track["context"]})  # fmt: skip
    assert response.headers["x-tracklane-refused"] == "1"
    assert conversions(api, transaction_id=tid) == []
    stored = {m["message_id"]: m for m in messages(api, src["id"])}
    refused = stored["ef-seed"]
    assert refused["outcome"] == "refused" and refused["conversion_id"] is None
    assert refused["detail"] == f"invalid_parameter: {field}: {why} {REQUIRED}"
    assert stored["not-mapped"]["outcome"] != "refused"  # only a conversion needs the click


def test_the_transaction_id_is_required_even_for_a_known_customer(
    api: httpx.Client, web: httpx.Client, browser: httpx.Client
) -> None:
    """A later mapped track of the same user without the referrer is refused, not attributed to the click the
    user's first track carried."""
    adv, offer, partner = factories.program(api)
    upsell = factories.event(api, offer["id"], name="upsell")
    tid = factories.click(browser, offer["id"], partner["id"])
    src = source(api, adv["id"], "everflow", event_mapping={"Order Completed": "base", "Upsell": str(upsell["id"])})
    post(web, src, seed_track(tid))
    [person] = customers(api, source_id=src["id"])
    assert person["transaction_id"] == tid
    post(web, src, {"type": "track", "event": "Upsell", "userId": "a1b2c3d4", "messageId": "ef-upsell"})
    [refused] = messages(api, src["id"], message_id="ef-upsell")
    assert (refused["outcome"], refused["detail"]) == (
        "refused",
        f"invalid_parameter: context.referrer: is missing (its id, with type everflow) {REQUIRED}",
    )
    assert len(conversions(api, transaction_id=tid)) == 1


def test_an_unknown_transaction_id_is_refused_like_any_unknown_click(api: httpx.Client, web: httpx.Client) -> None:
    adv = factories.advertiser(api)
    src = source(api, adv["id"], "everflow", event_mapping={"Order Completed": "base"})
    post(web, src, seed_track("f" * 32))
    [refused] = messages(api, src["id"])
    assert (refused["outcome"], refused["detail"]) == (
        "refused",
        f"unknown_transaction: no click of an offer of this source's advertiser has transaction_id {'f' * 32}",
    )


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_the_real_python_client_gets_200_and_the_refusal_is_recorded(
    server: RunningServer, api: httpx.Client, browser: httpx.Client
) -> None:
    from segment.analytics import Client, request

    adv, offer, partner = factories.program(api)
    tid = factories.click(browser, offer["id"], partner["id"])
    src = source(api, adv["id"], "everflow", event_mapping={"Order Completed": "base"})
    errors: list[Any] = []
    client = Client(src["write_key"], host=server.base_url, sync_mode=True, max_retries=0,
                    on_error=lambda e, b: errors.append(e))  # fmt: skip
    seed = seed_track(tid)
    client.track(user_id="a1b2c3d4", event="Order Completed", properties=seed["properties"],
                 context={"referrer": {"type": "everflow"}, "ip": "23.123.123.123"}, message_id="no-id")  # fmt: skip
    client.track(user_id="a1b2c3d4", event="Order Completed", properties=seed["properties"],
                 context=seed["context"], message_id="with-id")  # fmt: skip
    request._session.close()
    assert errors == []
    stored = {m["message_id"]: m for m in messages(api, src["id"])}
    assert stored["no-id"]["outcome"] == "refused"
    assert stored["no-id"]["detail"].startswith("invalid_parameter: context.referrer.id: is missing")
    assert stored["with-id"]["outcome"] == "conversion"
    [conversion] = conversions(api, transaction_id=tid)
    assert (conversion["amount"], conversion["order_id"]) == ("76.00", "123456789")
