"""Integr8's events page (the seed) through a real server: events after the initial conversion, by `event_id`
or exact `event_name`, never without a conversion, and never on a base conversion rejected as fraud (by
postback and by Segment alike, one rule in the conversion service); once or many times per click; and the
event-specific postback URL of each offer and event, through the API (the admin's with the advertiser's
token, the advertiser's with a placeholder) and the console alike."""

from __future__ import annotations

import html
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests import factories
from tests.console import person, signed_in
from tests.segment_support import conversions, messages, source
from tests.servers import RunningServer, running_server
from tracklane.domain.model import Role

BROWSER = {
    "User-Agent": "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36"
}
PUBLIC_URL = "https://track.network.example"


@pytest.fixture
def browser(server: RunningServer) -> Iterator[httpx.Client]:
    """A visitor with a real browser's User-Agent (tracking flags other clients as bots)."""
    with httpx.Client(base_url=server.base_url, headers=BROWSER, timeout=30, follow_redirects=False) as client:
        yield client


def postback(web: httpx.Client, tid: str, token: str, **params: str) -> httpx.Response:
    return web.get("/postback", params={"transaction_id": tid, "secure": token, **params})


def reject(api: httpx.Client, conversion_id: int, reason: str = "fraud: stolen card") -> None:
    changed = api.patch(f"/api/v1/conversions/{conversion_id}", json={"status": "rejected", "reason": reason})
    assert changed.status_code == 200 and changed.json()["status"] == "rejected", changed.text


def events_of(api: httpx.Client, tid: str) -> list[dict[str, Any]]:
    return [c for c in api.get("/api/v1/conversions", params={"transaction_id": tid}).json()["data"] if c["event_id"]]


def test_events_need_a_conversion_first_and_name_the_event_exactly(api: httpx.Client, browser: httpx.Client) -> None:
    adv, offer, partner = factories.program(api)
    event = factories.event(api, offer["id"], name="purchase")
    tid = factories.click(browser, offer["id"], partner["id"])
    token = adv["postback_token"]

    early = postback(browser, tid, token, event_id=str(event["id"]))
    assert (early.status_code, early.json()["error"]) == (409, "no_prior_conversion")
    assert postback(browser, tid, token).json()["result"] == "accepted"
    wrong_case = postback(browser, tid, token, event_name="Purchase")
    assert (wrong_case.status_code, wrong_case.json()["error"]) == (404, "unknown_event")
    by_both = postback(browser, tid, token, event_id=str(event["id"]), event_name="purchase", amount="40.00")
    assert (by_both.status_code, by_both.json()["result"]) == (200, "accepted")
    again = postback(browser, tid, token, event_name="purchase")
    assert again.json()["result"] == "duplicate", "one per click unless the event allows multiple"
    assert [e["event_id"] for e in events_of(api, tid)] == [event["id"]]


def test_an_event_after_a_base_conversion_rejected_as_fraud_is_refused_and_never_paid(
    api: httpx.Client, browser: httpx.Client
) -> None:
    adv, offer, partner = factories.program(api)
    event = factories.event(api, offer["id"], name="purchase", allow_multiple_per_click=True)
    tid = factories.click(browser, offer["id"], partner["id"])
    token = adv["postback_token"]
    base = postback(browser, tid, token, amount="99.00").json()
    first = postback(browser, tid, token, event_name="purchase", order_id="E-1")
    assert first.json()["result"] == "accepted"
    reject(api, base["conversion_id"])

    for params in (
        {"event_name": "purchase"},
        {"event_id": str(event["id"])},
        {"event_id": str(event["id"]), "order_id": "E-2"},
    ):
        refused = postback(browser, tid, token, **params)
        assert refused.status_code == 409, refused.text
        assert refused.json()["error"] == "base_conversion_rejected" and "rejected" in refused.json()["message"]
    assert [e["order_id"] for e in events_of(api, tid)] == ["E-1"], "a refused event records nothing"
    recorded = api.get("/api/v1/conversions", params={"transaction_id": tid}).json()["data"]
    paid = [c["payout"] for c in recorded if c["status"] != "rejected"]
    assert paid == ["1.00"], "only the event recorded before the rejection is payable"

    approved = api.patch(f"/api/v1/conversions/{base['conversion_id']}", json={"status": "approved"})
    assert approved.status_code == 200
    assert postback(browser, tid, token, event_name="purchase", order_id="E-3").json()["result"] == "accepted"


def test_one_base_conversion_that_still_counts_lets_events_in(api: httpx.Client, browser: httpx.Client) -> None:
    """With several base conversions per click (one per order), an event needs one not rejected; a pending one
    (held for review) counts."""
    adv, offer, partner = factories.program(api, allow_multiple_conversions=True, default_status="pending")
    factories.event(api, offer["id"], name="renewal", allow_multiple_per_click=True)
    tid = factories.click(browser, offer["id"], partner["id"])
    token = adv["postback_token"]
    orders = [postback(browser, tid, token, order_id=f"O-{n}").json() for n in (1, 2)]
    assert {o["status"] for o in orders} == {"pending"}
    reject(api, orders[0]["conversion_id"])
    assert postback(browser, tid, token, event_name="renewal", order_id="R-1").json()["result"] == "accepted"
    reject(api, orders[1]["conversion_id"])
    refused = postback(browser, tid, token, event_name="renewal", order_id="R-2")
    assert (refused.status_code, refused.json()["error"]) == (409, "base_conversion_rejected")
    assert [e["order_id"] for e in events_of(api, tid)] == ["R-1"]


def test_a_segment_event_after_a_rejected_base_conversion_is_refused_too(
    api: httpx.Client, browser: httpx.Client
) -> None:
    adv, offer, partner = factories.program(api)
    factories.event(api, offer["id"], name="Subscription Renewed")
    tid = factories.click(browser, offer["id"], partner["id"])
    src = source(api, adv["id"])

    def track(event: str, message_id: str) -> None:
        body = {"type": "track", "event": event, "userId": "u-1", "messageId": message_id,
                "properties": {"transaction_id": tid, "revenue": 30}, "writeKey": src["write_key"]}  # fmt: skip
        answer = browser.post("/v1/track", json=body)
        assert (answer.status_code, answer.json()) == (200, {"success": True}), answer.text

    track("Order Completed", "m-1")
    (base,) = conversions(api, transaction_id=tid)
    assert base["origin"] == "segment" and base["event_id"] is None
    reject(api, base["id"])
    track("Subscription Renewed", "m-2")
    (stored,) = messages(api, src["id"], message_id="m-2")
    assert stored["outcome"] == "refused" and stored["detail"].startswith("base_conversion_rejected:"), stored
    assert [c["id"] for c in conversions(api, transaction_id=tid)] == [base["id"]]


@pytest.fixture
def published(database_url: str) -> Iterator[RunningServer]:
    """A server whose configured public base URL is not its own address (as behind a proxy)."""
    with running_server(database_url, public_url=PUBLIC_URL) as running:
        yield running


def test_each_offer_event_has_its_postback_url_through_the_api_and_the_console(published: RunningServer) -> None:
    admin_headers = {"Authorization": f"Bearer {published.admin_key}"}
    with (
        httpx.Client(base_url=published.base_url, headers=admin_headers, timeout=30) as api,
        httpx.Client(base_url=published.base_url, headers=BROWSER, timeout=30, follow_redirects=False) as web,
    ):
        adv, offer, partner = factories.program(api)
        token = adv["postback_token"]
        created = factories.event(api, offer["id"], name="purchase")
        expected = f"{PUBLIC_URL}/postback?transaction_id=TRANSACTION_ID&secure={token}&event_id={created['id']}"
        assert created["postback_url"] == expected
        changed = api.patch(f"/api/v1/offers/{offer['id']}/events/{created['id']}", json={"name": "first purchase"})
        assert changed.json()["postback_url"] == expected
        (listed,) = api.get(f"/api/v1/offers/{offer['id']}/events").json()["data"]
        assert listed["postback_url"] == expected

        def key(role: str, **owner: int) -> dict[str, str]:
            issued = factories.created(api.post("/api/v1/api-keys", json={"role": role, **owner}))
            return {"Authorization": f"Bearer {issued['key']}"}

        (seen,) = api.get(f"/api/v1/offers/{offer['id']}/events", headers=key("advertiser", advertiser_id=adv["id"])
                          ).json()["data"]  # fmt: skip
        assert seen["postback_url"] == expected.replace(token, "POSTBACK_TOKEN")
        assert token not in str(seen)
        (partner_seen,) = api.get(f"/api/v1/offers/{offer['id']}/events",
                                  headers=key("partner", partner_id=partner["id"])).json()["data"]  # fmt: skip
        assert "postback_url" not in partner_seen and "revenue" not in partner_seen

        # The advertiser's server fires it, with the click's transaction id and the sale amount appended.
        factories.event(api, offer["id"], name="upsell")
        tid = factories.click(web, offer["id"], partner["id"])
        assert web.get("/postback", params={"transaction_id": tid, "secure": token}).json()["result"] == "accepted"
        fired = web.get(expected.replace(PUBLIC_URL, "").replace("TRANSACTION_ID", tid) + "&amount=25.00")
        assert (fired.status_code, fired.json()["result"]) == (200, "accepted"), fired.text
        (event,) = events_of(api, tid)
        assert (event["event_id"], event["event_name"], event["amount"]) == (created["id"], "first purchase", "25.00")

        with signed_in(published, person(published, Role.ADMIN)) as console:
            page = console.get(f"/ui/offers/{offer['id']}").text
        assert html.escape(expected) in page, "the console shows the same event postback URL"
