"""Engage audiences through a real server: an identify sets or clears an audience only by Engage's own
markers (`context.personas` with `computation_class: audience` and `computation_key`, or the `Audience
Entered` / `Audience Exited` tracks) or by the source's declared `audiences`; any other boolean trait stays
a trait. A message Engage computed is no page load and no conversion."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests import factories
from tests.segment_support import conversions, customers, messages, source
from tests.servers import RunningServer

BROWSER = {"User-Agent": "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0"}


def engage(key: str) -> dict[str, Any]:
    """The context Engage sends with an audience's identify (segment-protocol.md §3.4)."""
    return {"personas": {"computation_class": "audience", "computation_key": key, "computation_id": "aud_1",
                         "space_id": "spa_1", "namespace": "spa_1"}}  # fmt: skip


def send(web: httpx.Client, src: dict[str, Any], *batch: dict[str, Any]) -> None:
    response = web.post("/v1/batch", json={"batch": list(batch), "writeKey": src["write_key"]})
    assert (response.status_code, response.json()) == (200, {"success": True})


def person(api: httpx.Client, src: dict[str, Any]) -> dict[str, Any]:
    [found] = customers(api, source_id=src["id"])
    return found


def test_a_boolean_trait_is_a_trait(api: httpx.Client, web: httpx.Client) -> None:
    adv = factories.advertiser(api)
    src = source(api, adv["id"])
    send(web, src, {"type": "identify", "userId": "ann", "messageId": "i-1",
                    "traits": {"newsletter": True, "verified": False, "plan": "pro"}})  # fmt: skip
    ann = person(api, src)
    assert (ann["audiences"], ann["traits"]) == ([], {"newsletter": True, "verified": False, "plan": "pro"})


def test_an_engage_audience_enters_and_leaves(api: httpx.Client, web: httpx.Client) -> None:
    """Everflow's page: "Engage sends an Identify call with the property order_completed_last_30days: true",
    then false when the user no longer qualifies."""
    adv = factories.advertiser(api)
    src = source(api, adv["id"], "everflow")
    key = "order_completed_last_30days"
    send(web, src, {"type": "identify", "userId": "ann", "messageId": "i-1", "context": engage(key),
                    "traits": {key: True, "verified": False}})  # fmt: skip
    ann = person(api, src)
    assert (ann["audiences"], ann["traits"]) == ([key], {"verified": False})
    send(web, src, {"type": "identify", "userId": "ann", "messageId": "i-2", "context": engage(key),
                    "traits": {key: False}})  # fmt: skip
    assert person(api, src)["audiences"] == []
    send(web, src,
         {"type": "track", "event": "Audience Entered", "userId": "ann", "messageId": "t-1", "context": engage("vip"),
          "properties": {"audience_key": "vip", "vip": True}},
         {"type": "track", "event": "Audience Exited", "userId": "ann", "messageId": "t-2", "context": engage("x_y"),
          "properties": {"audience_key": "x_y"}})  # fmt: skip
    ann = person(api, src)
    assert (ann["audiences"], ann["traits"]) == (["vip"], {"verified": False})


def test_declared_audiences(api: httpx.Client, web: httpx.Client) -> None:
    adv = factories.advertiser(api)
    src = source(api, adv["id"], "tractionboard", audiences=["repeat_buyers"])
    assert src["effective_settings"]["audiences"] == ["repeat_buyers"]
    send(web, src, {"type": "identify", "userId": "bob", "messageId": "i-1",
                    "traits": {"repeat_buyers": True, "newsletter": True, "verified": False}})  # fmt: skip
    bob = person(api, src)
    assert (bob["audiences"], bob["traits"]) == (["repeat_buyers"], {"newsletter": True, "verified": False})
    send(web, src, {"type": "identify", "userId": "bob", "messageId": "i-2", "traits": {"repeat_buyers": "yes"}})
    bob = person(api, src)  # not true or false: a trait
    assert (bob["audiences"], bob["traits"]["repeat_buyers"]) == (["repeat_buyers"], "yes")


@pytest.fixture
def browser(server: RunningServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.base_url, headers=BROWSER, timeout=30, follow_redirects=False) as client:
        yield client


def test_an_engage_message_is_not_user_behaviour(api: httpx.Client, web: httpx.Client, browser: httpx.Client) -> None:
    """Under impact.com with identify calls as paid page loads, a user's identify is a page load; Engage's
    identify for the same user (its audience sync) is not, nor is a track Engage sends."""
    adv, offer, partner = factories.program(api)
    tid = factories.click(browser, offer["id"], partner["id"])
    src = source(api, adv["id"], "impact", enable_identify_events=True, page_load_event="base")
    landing = {"page": {"url": f"https://shop.example/?im_ref={tid}"}}
    send(web, src,
         {"type": "identify", "userId": "customer-0042", "messageId": "user", "context": landing,
          "traits": {"plan": "pro"}},
         {"type": "identify", "userId": "customer-0042", "messageId": "engage", "context": {**landing, **engage("vip")},
          "traits": {"vip": True}},
         {"type": "track", "event": "Order Completed", "userId": "customer-0042", "messageId": "journey",
          "context": engage("winback"), "properties": {"revenue": "10"}})  # fmt: skip
    [conversion] = conversions(api, transaction_id=tid)
    stored = {m["message_id"]: m for m in messages(api, src["id"])}
    assert stored["user"]["conversion_id"] == conversion["id"]
    assert stored["user"]["mapped"]["summary"] == "identify: page load → base conversion"
    assert (stored["engage"]["outcome"], stored["engage"]["conversion_id"]) == ("customer", None)
    assert stored["engage"]["mapped"]["summary"] == "identify"
    assert stored["journey"]["conversion_id"] is None
    assert stored["journey"]["mapped"]["summary"] == "track 'Order Completed': computed by Engage, not user behaviour"
    customer = person(api, src)
    assert (customer["audiences"], customer["traits"], customer["transaction_id"]) == (["vip"], {"plan": "pro"}, tid)


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_the_real_python_client_sends_engage_context(server: RunningServer, api: httpx.Client) -> None:
    from segment.analytics import Client, request

    adv = factories.advertiser(api)
    src = source(api, adv["id"])
    errors: list[Any] = []
    client = Client(src["write_key"], host=server.base_url, sync_mode=True, on_error=lambda e, b: errors.append(e))
    client.identify(user_id="cy", traits={"first_time_shopper": True, "newsletter": True},
                    context=engage("first_time_shopper"))  # fmt: skip
    client.identify(user_id="cy", traits={"big_spender": True})
    request._session.close()
    assert errors == []
    cy = person(api, src)
    assert (cy["audiences"], cy["traits"]) == (["first_time_shopper"], {"newsletter": True, "big_spender": True})
