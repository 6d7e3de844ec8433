"""Server-to-server conversions and events: every result code of the contract, money, caps, traces."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select, update

from tests import factories
from tests.servers import RunningServer
from tracklane.storage.schema import clicks, conversions


def fire(web: httpx.Client, adv: dict[str, Any], tid: str, **params: Any) -> httpx.Response:
    return web.get("/postback", params={"transaction_id": tid, "secure": adv["postback_token"], **params})


def conversion_count(server: RunningServer) -> int:
    count: int = server.container.db.read_now(
        lambda repo: repo.conn.execute(select(func.count()).select_from(conversions)).scalar_one()  # type: ignore[attr-defined]
    )
    return count


def test_result_codes(api: httpx.Client, web: httpx.Client, server: RunningServer) -> None:
    adv, offer, partner = factories.program(api)
    event = factories.event(api, offer["id"], name="purchase")
    tid = factories.click(web, offer["id"], partner["id"])

    early = fire(web, adv, tid, event_name="purchase")
    assert (early.status_code, early.json()["error"]) == (409, "no_prior_conversion")
    wrong = web.get("/postback", params={"transaction_id": tid, "secure": "nope"})
    assert (wrong.status_code, wrong.json()["error"]) == (403, "invalid_token")
    missing = web.get("/postback", params={"transaction_id": tid})
    assert missing.json()["error"] == "invalid_token" and "secure" in missing.json()["message"]
    unknown = fire(web, adv, "f" * 32)
    assert (unknown.status_code, unknown.json()["error"]) == (404, "unknown_transaction")
    other_adv = factories.advertiser(api)
    assert fire(web, other_adv, tid).json()["error"] == "invalid_token"
    bad = fire(web, adv, tid, amount="12,50")
    assert (bad.status_code, bad.json()["error"], bad.json()["field"]) == (400, "invalid_parameter", "amount")
    assert conversion_count(server) == 0

    base = fire(web, adv, tid, amount="50.00", order_id="O-1")
    assert (base.status_code, base.json()["result"], base.json()["status"]) == (200, "accepted", "approved")
    no_event = fire(web, adv, tid, event_name="Purchase")
    assert (no_event.status_code, no_event.json()["error"]) == (404, "unknown_event")
    by_id = fire(web, adv, tid, event_id=str(event["id"]))
    assert by_id.json()["result"] == "accepted" and by_id.json()["event_id"] == event["id"]
    again = fire(web, adv, tid, event_name="purchase")
    assert again.json()["result"] == "duplicate"
    assert again.json()["conversion_id"] == by_id.json()["conversion_id"]
    assert conversion_count(server) == 2


def test_outside_window(api: httpx.Client, web: httpx.Client, server: RunningServer) -> None:
    adv, offer, partner = factories.program(api, attribution_window_days=7)
    tid = factories.click(web, offer["id"], partner["id"])
    eight_days_ago = datetime.now(UTC) - timedelta(days=8)
    server.container.db.write_now(
        lambda repo: repo.conn.execute(  # type: ignore[attr-defined]
            update(clicks).where(clicks.c.transaction_id == tid).values(created_at=eight_days_ago)
        )
    )
    response = fire(web, adv, tid)
    assert (response.status_code, response.json()["error"]) == (422, "outside_window")


def test_money_types_and_partner_payout_override(api: httpx.Client, web: httpx.Client) -> None:
    adv, offer, partner = factories.program(
        api, revenue={"type": "cpa_cps", "amount": "2.00", "percent": "10"}, payout={"type": "cps", "percent": "7.5"}
    )
    vip = factories.partner(api)
    override = api.post(
        f"/api/v1/offers/{offer['id']}/partner-payouts",
        json={"partner_id": vip["id"], "payout": {"type": "cps", "percent": "12.5"}},
    )
    assert override.status_code == 201, override.text
    regular = fire(web, adv, factories.click(web, offer["id"], partner["id"]), amount="99.99").json()
    assert (regular["revenue"], regular["payout"]) == ("12.00", "7.50")
    special = fire(web, adv, factories.click(web, offer["id"], vip["id"]), amount="99.99").json()
    assert (special["revenue"], special["payout"]) == ("12.00", "12.50")
    conversion = api.get(f"/api/v1/conversions/{special['conversion_id']}").json()
    assert conversion["amount"] == "99.99"
    payout_step = next(s for s in conversion["trace"] if s["step"] == "payout")
    assert "partner payout" in payout_step["detail"] and "12.5% of 99.99" in payout_step["detail"]


def test_events_allowing_multiple_dedupe_by_order_id(api: httpx.Client, web: httpx.Client) -> None:
    adv, offer, partner = factories.program(api)
    factories.event(
        api,
        offer["id"],
        name="purchase",
        allow_multiple_per_click=True,
        revenue={"type": "cps", "percent": "30"},
        payout={"type": "cps", "percent": "20"},
    )
    tid = factories.click(web, offer["id"], partner["id"])
    assert fire(web, adv, tid).json()["result"] == "accepted"
    first = fire(web, adv, tid, event_name="purchase", amount="10", order_id="A").json()
    second = fire(web, adv, tid, event_name="purchase", amount="20", order_id="B").json()
    repeat = fire(web, adv, tid, event_name="purchase", amount="10", order_id="A").json()
    assert (first["result"], second["result"], repeat["result"]) == ("accepted", "accepted", "duplicate")
    assert repeat["conversion_id"] == first["conversion_id"]
    assert (first["revenue"], first["payout"], second["revenue"], second["payout"]) == ("3.00", "2.00", "6.00", "4.00")


def test_post_form_and_json_bodies(api: httpx.Client, web: httpx.Client) -> None:
    adv, offer, partner = factories.program(api, allow_multiple_conversions=True)
    tid = factories.click(web, offer["id"], partner["id"])
    form = web.post(
        "/postback",
        data={"transaction_id": tid, "secure": adv["postback_token"], "order_id": "F", "adv1": "a1", "amount": "5"},
    )
    body = web.post(
        "/postback",
        json={"transaction_id": tid, "secure": adv["postback_token"], "order_id": "J", "amount": 5.5, "adv5": "a5"},
    )
    assert form.json()["result"] == body.json()["result"] == "accepted"
    rows = api.get("/api/v1/conversions", params={"transaction_id": tid}).json()["data"]
    assert sorted((c["order_id"], c["amount"], c["adv1"], c["adv5"]) for c in rows) == [
        ("F", "5.00", "a1", None),
        ("J", "5.50", None, "a5"),
    ]


def test_conversion_cap_holds_the_overflow_as_pending(api: httpx.Client, web: httpx.Client) -> None:
    adv, offer, partner = factories.program(api, caps=[{"metric": "conversions", "period": "total", "limit": 2}])
    results = [fire(web, adv, factories.click(web, offer["id"], partner["id"])).json() for _ in range(4)]
    assert [r["status"] for r in results] == ["approved", "approved", "pending", "pending"]
    held = api.get(f"/api/v1/conversions/{results[3]['conversion_id']}").json()
    assert held["status_reason"] == "over_cap"


def test_per_partner_cap_counts_each_partner_separately(api: httpx.Client, web: httpx.Client) -> None:
    adv, offer, p1 = factories.program(
        api, caps=[{"metric": "conversions", "period": "day", "limit": 1, "per_partner": True}]
    )
    p2 = factories.partner(api)
    statuses = [fire(web, adv, factories.click(web, offer["id"], p["id"])).json()["status"] for p in (p1, p2, p1)]
    assert statuses == ["approved", "approved", "pending"]


def test_offer_with_manual_approval_and_status_changes(api: httpx.Client, web: httpx.Client) -> None:
    adv, offer, partner = factories.program(api, default_status="pending")
    result = fire(web, adv, factories.click(web, offer["id"], partner["id"])).json()
    assert result["status"] == "pending"
    path = f"/api/v1/conversions/{result['conversion_id']}"
    refused = api.patch(path, json={"status": "rejected"})
    assert (refused.status_code, refused.json()["field"]) == (400, "reason")
    rejected = api.patch(path, json={"status": "rejected", "reason": "fraud: duplicate IP"})
    assert rejected.status_code == 200
    assert (rejected.json()["status"], rejected.json()["status_reason"]) == ("rejected", "fraud: duplicate IP")
    assert rejected.json()["trace"][-1]["step"] == "status_change"
    assert "fraud: duplicate IP" in rejected.json()["trace"][-1]["detail"]
    approved = api.patch(path, json={"status": "approved"}).json()
    assert approved["status"] == "approved"


def test_conversion_on_a_rejected_click_is_recorded_rejected(api: httpx.Client, web: httpx.Client) -> None:
    adv, offer, partner = factories.program(api, fallback_url="https://fallback.example/")
    api.patch(f"/api/v1/offers/{offer['id']}", json={"status": "paused"})
    tid = factories.click(web, offer["id"], partner["id"])
    result = fire(web, adv, tid).json()
    assert (result["result"], result["status"]) == ("accepted", "rejected")
    assert api.get(f"/api/v1/conversions/{result['conversion_id']}").json()["status_reason"] == "click_offer_paused"


def test_currency_must_match_the_offer(api: httpx.Client, web: httpx.Client) -> None:
    adv, offer, partner = factories.program(api, currency="EUR")
    tid = factories.click(web, offer["id"], partner["id"])
    assert fire(web, adv, tid, currency="USD").json()["field"] == "currency"
    assert fire(web, adv, tid, currency="eur").json()["currency"] == "EUR"


def test_trace_explains_every_decision(api: httpx.Client, web: httpx.Client) -> None:
    adv, offer, partner = factories.program(api)
    tid = factories.click(web, offer["id"], partner["id"])
    cid = fire(web, adv, tid, amount="1").json()["conversion_id"]
    trace = api.get(f"/api/v1/conversions/{cid}").json()["trace"]
    assert [step["step"] for step in trace] == [
        "token",
        "click",
        "method",
        "event",
        "window",
        "duplicate_check",
        "revenue",
        "payout",
        "status",
    ]
    assert all(isinstance(step["detail"], str) and step["detail"] for step in trace)
    sides = {step["step"]: step.get("side") for step in trace}
    assert (sides.pop("revenue"), sides.pop("payout")) == ("revenue", "payout")
    assert set(sides.values()) == {None}  # every other decision is common to both sides


@pytest.mark.parametrize("method", ["GET", "POST"])
def test_unknown_transaction_ids_of_any_shape(api: httpx.Client, web: httpx.Client, method: str) -> None:
    adv = factories.advertiser(api)
    params = {"transaction_id": "not-a-click", "secure": adv["postback_token"]}
    response = web.request(method, "/postback", params=params)
    assert (response.status_code, response.json()["error"]) == (404, "unknown_transaction")


def test_a_method_the_offer_does_not_enable_is_refused_naming_it(
    api: httpx.Client, web: httpx.Client, server: RunningServer
) -> None:
    adv, offer, partner = factories.program(api, conversion_methods=["pixel"])
    tid = factories.click(web, offer["id"], partner["id"])
    refused = fire(web, adv, tid, amount="10.00")
    assert refused.status_code == 400, refused.text
    assert refused.json()["error"] == "method_not_enabled"
    assert "postback" in refused.json()["message"]
    wrong_token = web.get("/postback", params={"transaction_id": tid, "secure": "nope"})
    assert wrong_token.json()["error"] == "invalid_token"  # the token is checked first: nothing is revealed
    assert conversion_count(server) == 0
    enabled = api.patch(f"/api/v1/offers/{offer['id']}", json={"conversion_methods": ["pixel", "postback"]})
    assert enabled.status_code == 200, enabled.text
    assert fire(web, adv, tid).json()["result"] == "accepted"
