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
        offer = factories.offer(api, adv["id"], revenue={"type": "cpa", "amount": "10.00"},
                                payout={"type": "cpa", "amount": "6.00"})
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
    access = api.post("/api/v1/offer-access", json={"offer_id": private["id"], "partner_id": partner["id"],
                                                   "status": "approved"})
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
        refused = (({"url": url, "partner_id": other["id"]}, 403), ({"url": url, "offer_id": private["id"]}, 404))
        for body, status in refused:
            assert client.post("/api/v1/partner-postbacks", json=body).status_code == status
    with _client(server, _key(api, role="advertiser", advertiser_id=two_tenants["advertisers"][0]["id"])) as client:
        assert client.get("/api/v1/partner-postbacks").status_code == 403
