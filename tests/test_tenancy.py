"""Advertiser and partner keys: only their own rows, and only their side's money, through the real API."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests import factories
from tests.servers import RunningServer


def _client(server: RunningServer, key: str) -> httpx.Client:
    return httpx.Client(base_url=server.base_url, headers={"Authorization": f"Bearer {key}"}, timeout=30)


def _key(api: httpx.Client, **owner: Any) -> str:
    created = api.post("/api/v1/api-keys", json=owner)
    assert created.status_code == 201, created.text
    key: str = created.json()["key"]
    return key


@pytest.fixture
def two_tenants(api: httpx.Client, web: httpx.Client) -> dict[str, Any]:
    """Two advertisers with an offer each, two partners, one converted click per partner on each offer."""
    world: dict[str, Any] = {"advertisers": [], "offers": [], "partners": [factories.partner(api) for _ in range(2)]}
    for _ in range(2):
        adv = factories.advertiser(api)
        offer = factories.offer(
            api, adv["id"], revenue={"type": "cpa", "amount": "10.00"}, payout={"type": "cpa", "amount": "6.00"}
        )
        world["advertisers"].append(adv)
        world["offers"].append(offer)
        for partner in world["partners"]:
            tid = factories.click(web, offer["id"], partner["id"])
            answer = web.get("/postback", params={"transaction_id": tid, "secure": adv["postback_token"]})
            assert answer.json()["result"] == "accepted"
    return world


def test_an_advertiser_key_sees_its_own_offers_and_conversions_with_revenue_only(
    server: RunningServer, api: httpx.Client, two_tenants: dict[str, Any]
) -> None:
    adv, other = two_tenants["advertisers"]
    offer, other_offer = two_tenants["offers"]
    with _client(server, _key(api, role="advertiser", advertiser_id=adv["id"])) as client:
        assert [o["id"] for o in client.get("/api/v1/offers").json()["data"]] == [offer["id"]]
        assert client.get(f"/api/v1/offers/{other_offer['id']}").status_code == 404
        conversions = client.get("/api/v1/conversions").json()["data"]
        assert {c["advertiser_id"] for c in conversions} == {adv["id"]} and len(conversions) == 2
        assert all(c["revenue"] == "10.00" and "payout" not in c and "profit" not in c for c in conversions)
        theirs = api.get("/api/v1/conversions", params={"advertiser_id": other["id"]}).json()["data"][0]
        assert client.get(f"/api/v1/conversions/{theirs['id']}").status_code == 404
        refused = client.get("/api/v1/conversions", params={"advertiser_id": other["id"]})
        assert (refused.status_code, refused.json()["error"]) == (403, "forbidden")
        report = client.get("/api/v1/reports", params={"group_by": "offer"}).json()
        assert [row["offer"] for row in report["rows"]] == [offer["id"]]
        assert report["totals"]["revenue"] == "20.00" and "payout" not in report["totals"]
        mine = conversions[0]["id"]
        rejected = client.patch(f"/api/v1/conversions/{mine}", json={"status": "rejected", "reason": "fraud"})
        assert (rejected.status_code, rejected.json()["status"]) == (200, "rejected")
        assert client.patch(f"/api/v1/conversions/{theirs['id']}", json={"status": "rejected"}).status_code == 404
        assert client.post("/api/v1/offers", json={}).status_code == 403


def test_a_partner_key_sees_its_own_traffic_and_payout_only(
    server: RunningServer, api: httpx.Client, two_tenants: dict[str, Any]
) -> None:
    partner, other = two_tenants["partners"]
    private = factories.offer(api, two_tenants["advertisers"][0]["id"], visibility="private")
    with _client(server, _key(api, role="partner", partner_id=partner["id"])) as client:
        offers = client.get("/api/v1/offers").json()["data"]
        assert {o["id"] for o in offers} == {o["id"] for o in two_tenants["offers"]}
        first = next(o for o in offers if o["id"] == two_tenants["offers"][0]["id"])
        assert first["tracking_url"].endswith(f"/r/{first['id']}/{partner['id']}")
        assert "revenue" not in first and "destination_url" not in first and first["payout"]["amount"] == "6.00"
        assert client.get(f"/api/v1/offers/{private['id']}").status_code == 404
        conversions = client.get("/api/v1/conversions").json()["data"]
        assert {c["partner_id"] for c in conversions} == {partner["id"]} and len(conversions) == 2
        assert all(c["payout"] == "6.00" and "revenue" not in c and "trace" not in c for c in conversions)
        clicks = client.get("/api/v1/clicks").json()["data"]
        assert {c["partner_id"] for c in clicks} == {partner["id"]}
        their_click = api.get("/api/v1/clicks", params={"partner_id": other["id"]}).json()["data"][0]
        assert client.get(f"/api/v1/clicks/{their_click['transaction_id']}").status_code == 404
        totals = client.get("/api/v1/reports", params={"group_by": "partner"}).json()["totals"]
        assert totals["payout"] == "12.00" and "revenue" not in totals and "profit" not in totals
        changed = client.patch(f"/api/v1/conversions/{conversions[0]['id']}", json={"status": "approved"})
        assert changed.status_code == 403
    access = api.post(
        "/api/v1/offer-access", json={"offer_id": private["id"], "partner_id": partner["id"], "status": "approved"}
    )
    assert access.status_code == 201, access.text
    with _client(server, _key(api, role="partner", partner_id=partner["id"])) as client:
        assert client.get(f"/api/v1/offers/{private['id']}").status_code == 200


def test_a_partner_key_manages_its_own_postbacks_only(
    server: RunningServer, api: httpx.Client, two_tenants: dict[str, Any]
) -> None:
    partner, other = two_tenants["partners"]
    url = "https://partner.example/pb?tid={transaction_id}&p={payout}"
    theirs = factories.created(api.post("/api/v1/partner-postbacks", json={"partner_id": other["id"], "url": url}))
    private = factories.offer(api, two_tenants["advertisers"][0]["id"], visibility="private")
    with _client(server, _key(api, role="partner", partner_id=partner["id"])) as client:
        mine = factories.created(client.post("/api/v1/partner-postbacks", json={"url": url}))
        assert mine["partner_id"] == partner["id"]
        assert [p["id"] for p in client.get("/api/v1/partner-postbacks").json()["data"]] == [mine["id"]]
        assert client.get(f"/api/v1/partner-postbacks/{theirs['id']}").status_code == 404
        assert client.patch(f"/api/v1/partner-postbacks/{theirs['id']}", json={"method": "POST"}).status_code == 404
        updated = client.patch(f"/api/v1/partner-postbacks/{mine['id']}", json={"method": "POST"})
        assert (updated.status_code, updated.json()["method"]) == (200, "POST")
        assert client.post("/api/v1/partner-postbacks", json={"url": url, "partner_id": other["id"]}).status_code == 403
        # an offer the partner may not see is answered exactly like an offer that does not exist
        hidden = client.post("/api/v1/partner-postbacks", json={"url": url, "offer_id": private["id"]})
        missing = client.post("/api/v1/partner-postbacks", json={"url": url, "offer_id": 987654321})
        assert hidden.status_code == missing.status_code and hidden.status_code >= 400
        assert hidden.json()["error"] == missing.json()["error"]
    with _client(server, _key(api, role="advertiser", advertiser_id=two_tenants["advertisers"][0]["id"])) as client:
        assert client.get("/api/v1/partner-postbacks").status_code == 403


def _words(value: Any) -> set[str]:
    """Every key of a JSON value, at any depth."""
    if isinstance(value, dict):
        return set(value) | {k for v in value.values() for k in _words(v)}
    if isinstance(value, list):
        return {k for v in value for k in _words(v)}
    return set()


def test_an_advertisers_conversion_and_its_trace_name_no_payout(
    server: RunningServer, api: httpx.Client, web: httpx.Client
) -> None:
    adv, offer, partner = factories.program(
        api, revenue={"type": "cps", "percent": "10"}, payout={"type": "cps", "percent": "7.5"}
    )
    override = api.post(
        f"/api/v1/offers/{offer['id']}/partner-payouts",
        json={"partner_id": partner["id"], "payout": {"type": "cps", "percent": "8.5"}},
    )
    assert override.status_code == 201, override.text
    tid = factories.click(web, offer["id"], partner["id"])
    cid = web.get("/postback", params={"transaction_id": tid, "secure": adv["postback_token"],
                                       "amount": "100.00", "adv2": "campaign-7"}).json()["conversion_id"]  # fmt: skip
    full = api.get(f"/api/v1/conversions/{cid}").json()
    assert any(step["step"] == "payout" and "partner payout" in step["detail"] for step in full["trace"])
    with _client(server, _key(api, role="advertiser", advertiser_id=adv["id"])) as client:
        held = client.patch(f"/api/v1/conversions/{cid}", json={"status": "pending", "reason": "checking the order"})
        assert held.status_code == 200, held.text
        for answer in (
            held,
            client.get(f"/api/v1/conversions/{cid}"),
            client.get("/api/v1/conversions", params={"transaction_id": tid}),
        ):
            assert answer.status_code == 200, answer.text
            assert "payout" not in answer.text and "8.50" not in answer.text and "profit" not in answer.text
        conversion = held.json()
        assert (conversion["revenue"], conversion["amount"], conversion["adv2"]) == ("10.00", "100.00", "campaign-7")
        assert [s["step"] for s in conversion["trace"]] == [
            "token",
            "click",
            "method",
            "event",
            "window",
            "duplicate_check",
            "revenue",
            "status",
            "status_change",
        ]
        assert conversion["trace"][-1]["detail"].endswith("checking the order")


def test_a_partners_conversion_has_its_payout_and_the_amount_only_where_the_offer_shares_it(
    server: RunningServer, api: httpx.Client, web: httpx.Client
) -> None:
    adv, private_amount, partner = factories.program(api)
    shared_amount = factories.offer(api, adv["id"], share_amount_with_partners=True)
    assert shared_amount["share_amount_with_partners"] is True
    for offer in (private_amount, shared_amount):
        tid = factories.click(web, offer["id"], partner["id"])
        answer = web.get("/postback", params={"transaction_id": tid, "secure": adv["postback_token"],
                                              "amount": "80.00", "adv1": "secret"})  # fmt: skip
        assert answer.json()["result"] == "accepted", answer.text
    with _client(server, _key(api, role="partner", partner_id=partner["id"])) as client:
        listed = client.get("/api/v1/conversions")
        assert listed.status_code == 200 and "secret" not in listed.text
        by_offer = {c["offer_id"]: c for c in listed.json()["data"]}
        for conversion in by_offer.values():
            assert not _words(conversion) & {"revenue", "revenue_type", "profit", "trace", "adv1", "adv2", "adv3",
                                             "adv4", "adv5"}  # fmt: skip
            assert (conversion["payout"], conversion["payout_type"]) == ("6.00", "cpa")
        assert "amount" not in by_offer[private_amount["id"]]
        assert by_offer[shared_amount["id"]]["amount"] == "80.00"
        one = client.get(f"/api/v1/conversions/{by_offer[shared_amount['id']]['id']}").json()
        assert one == by_offer[shared_amount["id"]]


def test_another_tenants_conversion_is_not_found_on_every_verb(
    server: RunningServer, api: httpx.Client, two_tenants: dict[str, Any]
) -> None:
    adv, other = two_tenants["advertisers"]
    partner, other_partner = two_tenants["partners"]
    theirs = api.get("/api/v1/conversions", params={"advertiser_id": other["id"]}).json()["data"][0]["id"]
    missing = 987654321
    change = {"status": "approved"}
    with _client(server, _key(api, role="advertiser", advertiser_id=adv["id"])) as client:
        for conversion_id in (theirs, missing):
            for answer in (
                client.get(f"/api/v1/conversions/{conversion_id}"),
                client.patch(f"/api/v1/conversions/{conversion_id}", json=change),
                client.patch(f"/api/v1/conversions/{conversion_id}", json={"status": "rejected"}),
            ):
                assert (answer.status_code, answer.json()["error"]) == (404, "not_found"), answer.text
                assert answer.json()["message"] == f"conversion {conversion_id} does not exist"
    mine = api.get("/api/v1/conversions", params={"partner_id": partner["id"]}).json()["data"][0]["id"]
    theirs = api.get("/api/v1/conversions", params={"partner_id": other_partner["id"]}).json()["data"][0]["id"]
    with _client(server, _key(api, role="partner", partner_id=partner["id"])) as client:
        assert client.get(f"/api/v1/conversions/{theirs}").status_code == 404
        for conversion_id in (mine, theirs, missing):  # a partner changes no status: the same answer for all
            answer = client.patch(f"/api/v1/conversions/{conversion_id}", json=change)
            assert (answer.status_code, answer.json()["error"]) == (403, "forbidden")
        refused = client.get("/api/v1/clicks", params={"partner_id": other_partner["id"]})
        assert (refused.status_code, refused.json()["error"]) == (403, "forbidden")
    assert api.get(f"/api/v1/conversions/{theirs}").json()["status"] == "approved"


def test_each_role_sees_its_own_side_of_clicks_and_reports(
    server: RunningServer, api: httpx.Client, web: httpx.Client
) -> None:
    adv, offer, partner = factories.program(
        api, revenue={"type": "cpc", "amount": "0.40"}, payout={"type": "cpc", "amount": "0.25"}
    )
    tid = factories.click(web, offer["id"], partner["id"])
    admin_click = api.get(f"/api/v1/clicks/{tid}").json()
    assert (admin_click["revenue"], admin_click["payout"]) == ("0.40", "0.25")
    admin_report = api.get("/api/v1/reports", params={"group_by": "offer,day", "offer_id": offer["id"]}).json()
    assert {"revenue", "payout", "profit", "epc", "sale_amount"} <= set(admin_report["totals"])
    with _client(server, _key(api, role="advertiser", advertiser_id=adv["id"])) as client:
        click = client.get(f"/api/v1/clicks/{tid}").json()
        assert click["revenue"] == "0.40" and "payout" not in click
        report = client.get("/api/v1/reports", params={"group_by": "offer,day"}).json()
        [row] = report["rows"]
        assert (row["offer"], row["revenue"], row["clicks"]) == (offer["id"], "0.40", 1)
        assert not _words(report) & {"payout", "pending_payout", "profit", "epc"}
    with _client(server, _key(api, role="partner", partner_id=partner["id"])) as client:
        click = client.get(f"/api/v1/clicks/{tid}").json()
        assert click["payout"] == "0.25" and "revenue" not in click
        assert [c["transaction_id"] for c in client.get("/api/v1/clicks").json()["data"]] == [tid]
        report = client.get("/api/v1/reports", params={"group_by": "partner"}).json()
        assert report["totals"]["payout"] == "0.25" and report["totals"]["epc"] == "0.25"
        assert report["rows"][0]["partner"] == partner["id"] and "offer" not in report["rows"][0]
        assert not _words(report) & {"revenue", "pending_revenue", "profit", "sale_amount"}


def test_api_keys_name_the_missing_or_extra_owner(api: httpx.Client) -> None:
    partner = factories.partner(api)
    cases = [
        ({"role": "advertiser"}, "advertiser_id"),
        ({"role": "admin", "partner_id": partner["id"]}, "partner_id"),
        ({"role": "partner", "partner_id": 987654321}, "partner_id"),
        ({"role": "owner"}, "role"),
    ]
    for body, field in cases:
        answer = api.post("/api/v1/api-keys", json=body)
        assert (answer.status_code, answer.json()["field"]) == (400, field), answer.text
    issued = factories.created(api.post("/api/v1/api-keys", json={"role": "partner", "partner_id": partner["id"]}))
    assert issued["key"].startswith(issued["prefix"]) and issued["partner_id"] == partner["id"]
    listed = api.get("/api/v1/api-keys").json()["data"]
    assert issued["id"] in {k["id"] for k in listed} and not any("key" in k for k in listed)
    assert api.delete(f"/api/v1/api-keys/{issued['id']}").status_code == 204
    assert api.delete(f"/api/v1/api-keys/{issued['id']}").status_code == 404
