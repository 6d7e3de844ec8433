"""The management API: auth, resources, validation errors naming fields, pagination, reports, OpenAPI."""

from __future__ import annotations

import httpx
import pytest

from tests import factories
from tests.servers import RunningServer


def test_requests_without_a_valid_key_are_refused(server: RunningServer, web: httpx.Client) -> None:
    missing = web.get("/api/v1/offers")
    assert (missing.status_code, missing.json()["error"]) == (401, "unauthorized")
    assert missing.headers["www-authenticate"] == "Bearer"
    wrong = web.get("/api/v1/offers", headers={"Authorization": "Bearer tlk_wrong"})
    assert wrong.status_code == 401


def test_only_admin_keys_manage_the_program(api: httpx.Client, web: httpx.Client) -> None:
    partner = factories.partner(api)
    created = api.post("/api/v1/api-keys", json={"role": "partner", "partner_id": partner["id"]})
    assert created.status_code == 201
    key = created.json()["key"]
    assert key.startswith("tlk_")
    listed = api.get("/api/v1/api-keys").json()["data"]
    assert all("key" not in item for item in listed)
    for method, path in (("POST", "/api/v1/offers"), ("GET", "/api/v1/partners"), ("GET", "/api/v1/api-keys")):
        denied = web.request(method, path, json={}, headers={"Authorization": f"Bearer {key}"})
        assert (denied.status_code, denied.json()["error"]) == (403, "forbidden")
    assert api.delete(f"/api/v1/api-keys/{created.json()['id']}").status_code == 204
    assert web.get("/api/v1/offers", headers={"Authorization": f"Bearer {key}"}).status_code == 401


def test_api_key_roles_need_their_owner(api: httpx.Client) -> None:
    response = api.post("/api/v1/api-keys", json={"role": "advertiser"})
    assert (response.status_code, response.json()["field"]) == (400, "advertiser_id")
    response = api.post("/api/v1/api-keys", json={"role": "superuser"})
    assert response.json()["field"] == "role"


def test_advertiser_and_offer_shapes(api: httpx.Client) -> None:
    adv = factories.advertiser(api, name="Acme")
    assert adv["name"] == "Acme" and len(adv["postback_token"]) >= 24
    offer = factories.offer(
        api,
        adv["id"],
        revenue={"type": "cps", "percent": 12.5},
        payout={"type": "cpa", "amount": 5},
        caps=[{"metric": "clicks", "period": "week", "limit": 100, "per_partner": True}],
    )
    assert offer["revenue"] == {"type": "cps", "amount": None, "percent": "12.5"}
    assert offer["payout"] == {"type": "cpa", "amount": "5.00", "percent": None}
    assert offer["caps"][0]["metric"] == "clicks" and offer["caps"][0]["per_partner"] is True
    assert (offer["status"], offer["visibility"], offer["currency"], offer["attribution_window_days"]) == (
        "active",
        "public",
        "USD",
        30,
    )
    assert api.get(f"/api/v1/offers/{offer['id']}").json() == offer
    rotated = api.patch(f"/api/v1/advertisers/{adv['id']}", json={"rotate_postback_token": True}).json()
    assert rotated["postback_token"] != adv["postback_token"]


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": "x", "destination_url": "https://a.example/", "revenue": {"type": "cpa", "amount": "1"}}, "payout"),
        ({"destination_url": "https://a.example/"}, "name"),
        ({"destination_url": "https://a.example/?x={clickid}"}, "destination_url"),
        ({"destination_url": "javascript:alert(1)"}, "destination_url"),
        ({"revenue": {"type": "cps"}}, "revenue.percent"),
        ({"payout": {"type": "cpa", "amount": "1,5"}}, "payout.amount"),
        ({"currency": "dollars"}, "currency"),
        ({"attribution_window_days": 0}, "attribution_window_days"),
        ({"caps": [{"metric": "clicks", "period": "year", "limit": 1}]}, "caps[0].period"),
        ({"visibility": "secret"}, "visibility"),
        ({"advertiser_id": 999999}, "advertiser_id"),
    ],
)
def test_offer_validation_names_the_field_and_writes_nothing(
    api: httpx.Client, body: dict[str, object], field: str
) -> None:
    adv = factories.advertiser(api)
    full = {
        "advertiser_id": adv["id"],
        "name": "n",
        "destination_url": "https://a.example/",
        "revenue": {"type": "cpa", "amount": "1"},
        "payout": {"type": "cpa", "amount": "1"},
        **body,
    }
    if "payout" not in body and field == "payout":
        full.pop("payout")
    if field == "name":
        full.pop("name")
    response = api.post("/api/v1/offers", json=full)
    assert response.status_code == 400, response.text
    assert (response.json()["error"], response.json()["field"]) == ("invalid_parameter", field)
    assert api.get("/api/v1/offers", params={"advertiser_id": adv["id"]}).json()["data"] == []


def test_malformed_json_is_a_400(api: httpx.Client) -> None:
    response = api.post("/api/v1/advertisers", content=b"{not json", headers={"content-type": "application/json"})
    assert (response.status_code, response.json()["field"]) == (400, "body")


def test_partner_signup_verdict_and_duplicate_email(api: httpx.Client, web: httpx.Client) -> None:
    signup = web.post("/api/v1/partner-signups", json={"name": "Blog", "email": "Blog@Example.com"}).json()
    assert (signup["status"], signup["email"]) == ("pending", "blog@example.com")
    again = web.post("/api/v1/partner-signups", json={"name": "Blog", "email": "blog@example.com"})
    assert (again.status_code, again.json()["error"]) == (409, "conflict")
    rejected = api.post(f"/api/v1/partners/{signup['id']}/verdict", json={"verdict": "rejected", "reason": "no site"})
    assert (rejected.json()["status"], rejected.json()["status_reason"]) == ("rejected", "no site")
    assert api.get(f"/api/v1/partners/{signup['id']}").json()["status_reason"] == "no site", "the reason is kept"
    verdict = api.post(f"/api/v1/partners/{signup['id']}/verdict", json={"verdict": "approved"})
    assert (verdict.json()["status"], verdict.json()["status_reason"]) == ("active", None), "approval clears it"
    blocked = api.patch(f"/api/v1/partners/{signup['id']}", json={"status": "blocked", "status_reason": "fraud"})
    assert (blocked.json()["status"], blocked.json()["status_reason"]) == ("blocked", "fraud")
    renamed = api.patch(f"/api/v1/partners/{signup['id']}", json={"name": "Blog two"})
    assert renamed.json()["status_reason"] == "fraud", "a change of something else keeps it"
    bad = api.post(f"/api/v1/partners/{signup['id']}/verdict", json={"verdict": "maybe"})
    assert bad.json()["field"] == "verdict"
    assert api.get("/api/v1/partners/999999").status_code == 404


def test_offer_events_are_unique_by_name(api: httpx.Client) -> None:
    _, offer, _ = factories.program(api)
    event = factories.event(api, offer["id"], name="purchase")
    assert event["allow_multiple_per_click"] is False
    clash = api.post(
        f"/api/v1/offers/{offer['id']}/events",
        json={"name": "purchase", "revenue": {"type": "cpa", "amount": 1}, "payout": {"type": "cpa", "amount": 1}},
    )
    assert clash.status_code == 409
    updated = api.patch(f"/api/v1/offers/{offer['id']}/events/{event['id']}", json={"allow_multiple_per_click": True})
    assert updated.json()["allow_multiple_per_click"] is True
    listed = api.get(f"/api/v1/offers/{offer['id']}/events").json()["data"]
    assert [e["name"] for e in listed] == ["purchase"]


def test_lists_are_paginated_by_cursor(api: httpx.Client) -> None:
    created = [factories.advertiser(api)["id"] for _ in range(5)]
    seen: list[int] = []
    cursor = None
    while True:
        params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = api.get("/api/v1/advertisers", params=params).json()
        seen += [a["id"] for a in page["data"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert sorted(seen) == sorted(created)
    assert api.get("/api/v1/advertisers", params={"cursor": "abc"}).json()["field"] == "cursor"


def test_lists_filter_by_time_range(api: httpx.Client) -> None:
    factories.advertiser(api)
    assert api.get("/api/v1/advertisers", params={"from": "2999-01-01"}).json()["data"] == []
    assert api.get("/api/v1/advertisers", params={"to": "2999-01-01T00:00:00Z"}).json()["data"] != []
    assert api.get("/api/v1/advertisers", params={"from": "yesterday"}).json()["field"] == "from"


def test_report_groups_clicks_and_conversions(api: httpx.Client, web: httpx.Client) -> None:
    adv, offer, p1 = factories.program(api)
    p2 = factories.partner(api)
    for partner, sub in ((p1, "a"), (p1, "b"), (p2, "a")):
        factories.click(web, offer["id"], partner["id"], sub1=sub)
    tid = factories.click(web, offer["id"], p2["id"], sub1="b")
    web.get("/postback", params={"transaction_id": tid, "secure": adv["postback_token"], "amount": "30"})
    report = api.get("/api/v1/reports", params={"group_by": "partner,sub1", "offer_id": offer["id"]}).json()
    rows = {(r["partner"], r["sub1"]): r for r in report["rows"]}
    assert set(rows) == {(p1["id"], "a"), (p1["id"], "b"), (p2["id"], "a"), (p2["id"], "b")}
    converted = rows[(p2["id"], "b")]
    assert (converted["clicks"], converted["conversions"], converted["revenue"], converted["payout"]) == (
        1,
        1,
        "10.00",
        "6.00",
    )
    assert converted["cvr"] == "100.00"
    totals = report["totals"]
    assert (totals["clicks"], totals["conversions"], totals["profit"], totals["cvr"], totals["epc"]) == (
        4,
        1,
        "4.00",
        "25.00",
        "1.50",
    )
    assert api.get("/api/v1/reports", params={"group_by": "colour"}).json()["field"] == "group_by"


def test_openapi_document_and_offline_docs(server: RunningServer, web: httpx.Client) -> None:
    document = web.get("/api/openapi.json").json()
    assert document["openapi"].startswith("3.1")
    paths = document["paths"]
    for path in (
        "/api/v1/advertisers",
        "/api/v1/offers",
        "/api/v1/offers/{offer_id}/events",
        "/api/v1/partners",
        "/api/v1/offer-access",
        "/api/v1/api-keys",
        "/api/v1/conversions",
        "/api/v1/reports",
        "/api/v1/clicks/{transaction_id}",
        "/api/v1/partner-signups",
        "/api/v1/webhooks",
        "/api/v1/webhooks/{endpoint_id}/rotate-secret",
        "/api/v1/partner-postbacks",
        "/api/v1/deliveries",
        "/api/v1/deliveries/{delivery_id}/resend",
        "/api/v1/deliveries/replay",
    ):
        assert path in paths, path
    offer_body = paths["/api/v1/offers"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    offer_schema = document["components"]["schemas"][offer_body["$ref"].rsplit("/", 1)[-1]]
    assert {"advertiser_id", "name", "destination_url", "revenue", "payout"} <= set(offer_schema["required"])
    docs = web.get("/api/docs")
    assert docs.status_code == 200 and "/api/docs/assets/swagger-ui-bundle.js" in docs.text
    assert web.get("/api/docs/assets/swagger-ui-bundle.js").status_code == 200


def test_clicks_are_listed_newest_first_with_filters(api: httpx.Client, web: httpx.Client) -> None:
    _, offer, partner = factories.program(api, currency="EUR", payout={"type": "cpc", "amount": "0.25"})
    other = factories.partner(api)
    mine = [factories.click(web, offer["id"], partner["id"], sub1=f"s{i}") for i in range(3)]
    theirs = factories.click(web, offer["id"], other["id"])
    web.get(f"/r/{offer['id']}/999999")  # unknown partner: recorded, rejected

    listed = api.get("/api/v1/clicks", params={"offer_id": offer["id"], "partner_id": partner["id"]}).json()
    assert [c["transaction_id"] for c in listed["data"]] == mine[::-1]
    assert {(c["payout"], c["verdict"]) for c in listed["data"]} == {("0.25", "accepted")}
    by_sub = api.get("/api/v1/clicks", params={"offer_id": offer["id"], "sub1": "s1"}).json()["data"]
    assert [c["transaction_id"] for c in by_sub] == [mine[1]]
    rejected = api.get("/api/v1/clicks", params={"offer_id": offer["id"], "verdict": "rejected"}).json()["data"]
    assert [c["reject_reason"] for c in rejected] == ["unknown_partner"]
    everything = api.get("/api/v1/clicks", params={"offer_id": offer["id"], "limit": 4}).json()
    assert len(everything["data"]) == 4 and everything["next_cursor"] is not None
    assert theirs in {c["transaction_id"] for c in everything["data"]}
    assert api.get("/api/v1/clicks", params={"verdict": "maybe"}).json()["field"] == "verdict"
