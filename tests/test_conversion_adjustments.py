"""Adjusting a conversion's money through a real server: a partial refund recomputes the money priced on the
sale amount, an order update or a set revenue or payout moves only what it names, each change leaves its
audit steps (who, why, before, after) on the side whose money it is about, reports follow at once, and
`conversion.updated` is delivered, verified with `standardwebhooks`. Refusals name their field and change
nothing; a partner never adjusts, an advertiser never sets a payout."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests import factories
from tests.conftest import BROWSER_UA
from tests.receiver import Receiver
from tests.servers import RunningServer

#: 2.00 + 10 % of the sale for the network, 5 % of the sale for the partner.
SALE_PRICED = {"revenue": {"type": "cpa_cps", "amount": "2.00", "percent": "10"},
               "payout": {"type": "cps", "percent": "5"}}  # fmt: skip


@pytest.fixture
def admin(hub: RunningServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=hub.base_url, headers={"Authorization": f"Bearer {hub.admin_key}"}) as client:
        yield client


@pytest.fixture
def visitor(hub: RunningServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=hub.base_url, headers={"User-Agent": BROWSER_UA}) as client:
        yield client


def converted(admin: httpx.Client, visitor: httpx.Client, amount: str = "30.00", **offer: Any) -> dict[str, Any]:
    """An approved conversion of a new program: the conversion, with its advertiser and partner."""
    adv, made, partner = factories.program(admin, **offer)
    tid = factories.click(visitor, made["id"], partner["id"])
    answer = visitor.get("/postback", params={"transaction_id": tid, "secure": adv["postback_token"],
                                              "amount": amount})  # fmt: skip
    assert answer.status_code == 200, answer.text
    conversion = admin.get(f"/api/v1/conversions/{answer.json()['conversion_id']}").json()
    return {**conversion, "_advertiser": adv, "_partner": partner}


def key_for(admin: httpx.Client, role: str, **owner: int) -> httpx.Client:
    key = factories.created(admin.post("/api/v1/api-keys", json={"role": role, **owner}))["key"]
    return httpx.Client(base_url=str(admin.base_url), headers={"Authorization": f"Bearer {key}"})


def adjusted(client: httpx.Client, conversion_id: int, **body: Any) -> dict[str, Any]:
    response = client.patch(f"/api/v1/conversions/{conversion_id}", json=body)
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    return answer


def test_a_partial_refund_recomputes_the_sale_priced_money_and_leaves_its_audit_steps(
    admin: httpx.Client, visitor: httpx.Client, receiver: Receiver
) -> None:
    hook = factories.created(admin.post("/api/v1/webhooks", json={
        "url": receiver.url + "/hook", "event_types": ["conversion.updated"]}))  # fmt: skip
    conversion = converted(admin, visitor, **SALE_PRICED)
    assert (conversion["status"], conversion["amount"], conversion["revenue"], conversion["payout"]) == (
        "approved", "30.00", "5.00", "1.50")  # fmt: skip

    after = adjusted(admin, conversion["id"], refund="10.00", reason="ITEM_RETURNED: one of three items")
    assert (after["status"], after["amount"], after["revenue"], after["payout"]) == (
        "approved", "20.00", "4.00", "1.00"), "a partial refund keeps the conversion and scales its money"  # fmt: skip
    audit = [(s["step"], s["outcome"], s["detail"], s.get("side")) for s in after["trace"][-4:]]
    actor = "api key #1 (admin)"
    assert audit == [
        ("adjustment", "money", f"by {actor}: ITEM_RETURNED: one of three items", None),
        ("amount", "20.00", "sale amount 30.00 -> 20.00 (refund of 10.00)", "revenue"),
        ("revenue", "4.00", "adjusted 5.00 -> 4.00", "revenue"),
        ("payout", "1.00", "adjusted 1.50 -> 1.00", "payout"),
    ]
    assert all(s.get("at") for s in after["trace"][-4:]), "each audit step says when"

    totals = admin.get("/api/v1/reports", params={"group_by": "offer"}).json()["totals"]
    assert (totals["revenue"], totals["payout"]) == ("4.00", "1.00"), "reports follow the adjustment"

    (request,) = receiver.wait_for(1)
    payload = request.verified(hook["secret"])
    assert payload["type"] == "conversion.updated"
    assert (payload["data"]["revenue"], payload["data"]["payout"], payload["data"]["amount"]) == (
        "4.00", "1.00", "20.00")  # fmt: skip


def test_each_role_sees_its_own_side_of_an_adjustment(admin: httpx.Client, visitor: httpx.Client) -> None:
    conversion = converted(admin, visitor, **SALE_PRICED)
    adv, partner = conversion["_advertiser"], conversion["_partner"]
    with key_for(admin, "advertiser", advertiser_id=adv["id"]) as advertiser:
        seen = adjusted(advertiser, conversion["id"], amount="50.00", reason="ORDER_UPDATE: upgraded plan")
        assert (seen["amount"], seen["revenue"]) == ("50.00", "7.00") and "payout" not in seen
        steps = [s["step"] for s in seen["trace"]]
        assert steps[-3:] == ["adjustment", "amount", "revenue"], "the payout step is the admin's alone"
        assert "payout" not in steps
        refused = advertiser.patch(f"/api/v1/conversions/{conversion['id']}",
                                   json={"payout": "0.10", "reason": "we think less"})  # fmt: skip
        assert (refused.status_code, refused.json()["error"]) == (403, "forbidden"), refused.text
        assert "payout" in refused.json()["message"]
    with key_for(admin, "partner", partner_id=partner["id"]) as partner_key:
        mine = partner_key.get(f"/api/v1/conversions/{conversion['id']}").json()
        assert mine["payout"] == "2.50" and "revenue" not in mine and "trace" not in mine
        refused = partner_key.patch(f"/api/v1/conversions/{conversion['id']}", json={"payout": "9.00", "reason": "x"})
        assert refused.status_code == 403, refused.text
    assert admin.get(f"/api/v1/conversions/{conversion['id']}").json()["payout"] == "2.50"


def test_revenue_or_payout_set_alone_moves_only_that_side(admin: httpx.Client, visitor: httpx.Client) -> None:
    conversion = converted(admin, visitor)  # flat: 10.00 revenue, 6.00 payout
    after = adjusted(admin, conversion["id"], revenue="7.50", reason="ORDER_UPDATE: price match")
    assert (after["revenue"], after["payout"], after["amount"]) == ("7.50", "6.00", "30.00")
    refunded = adjusted(admin, conversion["id"], refund="30.00", reason="ITEM_RETURNED")
    assert (refunded["amount"], refunded["revenue"], refunded["payout"]) == ("0.00", "7.50", "6.00"), (
        "flat money does not depend on the sale amount")  # fmt: skip
    both = adjusted(admin, conversion["id"], status="rejected", payout="0", reason="CONS_FRAUD: chargeback")
    assert (both["status"], both["status_reason"], both["payout"]) == ("rejected", "CONS_FRAUD: chargeback", "0.00")
    assert [s["step"] for s in both["trace"][-3:]] == ["adjustment", "payout", "status_change"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"refund": "30.01", "reason": "r"}, "refund"),
        ({"refund": "0", "reason": "r"}, "refund"),
        ({"refund": "5.00", "amount": "20.00", "reason": "r"}, "refund"),
        ({"revenue": "5.00"}, "reason"),
        ({"revenue": "-1.00", "reason": "r"}, "revenue"),
        ({"payout": "1.005", "reason": "r"}, "payout"),
        ({"amount": "ten", "reason": "r"}, "amount"),
        ({"reason": "nothing to change"}, "status"),
        ({"revenue": "5.00", "reason": "r", "currency": "EUR"}, "currency"),
    ],
)
def test_a_bad_adjustment_is_refused_naming_the_field_and_changes_nothing(
    admin: httpx.Client, visitor: httpx.Client, body: dict[str, Any], field: str
) -> None:
    conversion = converted(admin, visitor, **SALE_PRICED)
    response = admin.patch(f"/api/v1/conversions/{conversion['id']}", json=body)
    assert response.status_code == 400, response.text
    assert field in response.json()["message"], response.json()
    after = admin.get(f"/api/v1/conversions/{conversion['id']}").json()
    assert {k: after[k] for k in ("amount", "revenue", "payout", "status", "trace", "updated_at")} == {
        k: conversion[k] for k in ("amount", "revenue", "payout", "status", "trace", "updated_at")}  # fmt: skip


def test_rejecting_an_approved_conversion_reverses_it_with_its_reason_code(
    admin: httpx.Client, visitor: httpx.Client
) -> None:
    conversion = converted(admin, visitor, **SALE_PRICED)
    factories.event(admin, conversion["offer_id"], name="upsell")
    after = adjusted(admin, conversion["id"], status="rejected", reason_code="ITEM_RETURNED", reason="whole order")
    assert (after["status"], after["status_reason"]) == ("rejected", "ITEM_RETURNED: whole order")
    step = after["trace"][-1]
    assert (step["step"], step["outcome"]) == ("status_change", "rejected")
    assert step["detail"].startswith("approved -> rejected (reversed) by api key #"), step
    upsell = visitor.get("/postback", params={"transaction_id": conversion["transaction_id"], "event_name": "upsell",
                                              "secure": conversion["_advertiser"]["postback_token"]})  # fmt: skip
    assert (upsell.status_code, upsell.json()["error"]) == (409, "base_conversion_rejected"), upsell.text

    other = converted(admin, visitor)
    coded = adjusted(admin, other["id"], status="rejected", reason_code="CONS_FRAUD")
    assert coded["status_reason"] == "CONS_FRAUD", "a code alone is a reason"
    refused = admin.patch(f"/api/v1/conversions/{other['id']}", json={"status": "approved", "reason_code": "OOPS"})
    assert refused.status_code == 400 and "reason_code" in refused.json()["message"], refused.text
    assert admin.get(f"/api/v1/conversions/{other['id']}").json()["status"] == "rejected", "nothing changed"


def test_a_refund_of_the_whole_sale_amount_reverses_the_conversion(admin: httpx.Client, visitor: httpx.Client) -> None:
    conversion = converted(admin, visitor, **SALE_PRICED)
    after = adjusted(admin, conversion["id"], refund="30.00", reason_code="ITEM_RETURNED")
    money = (after["status"], after["status_reason"], after["amount"], after["revenue"], after["payout"])
    assert money == ("rejected", "ITEM_RETURNED", "0.00", "2.00", "0.00"), money
    steps = [(s["step"], s["outcome"]) for s in after["trace"][-5:]]
    assert steps[1:] == [("amount", "0.00"), ("revenue", "2.00"), ("payout", "0.00"), ("status_change", "rejected")]
    assert steps[0][0] == "adjustment", steps
    report = admin.get("/api/v1/reports", params={"group_by": "offer", "offer_id": conversion["offer_id"]}).json()
    (row,) = report["rows"]
    assert (row["conversions"], row["revenue"], row["payout"]) == (0, "0.00", "0.00"), row
    updated = adjusted(admin, conversion["id"], amount="0", reason="ORDER_UPDATE: still nothing")
    assert updated["status"] == "rejected", "a rejected conversion stays as it is"
