"""Money sent as JSON numbers stays exact through every decoder: postbacks, offers, events and payouts."""

from __future__ import annotations

import httpx

from tests import factories as make

BROWSER = {"User-Agent": "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 Chrome/126.0 Safari/537.36"}


def _click(api: httpx.Client, web: httpx.Client, **offer_fields: object) -> tuple[dict[str, object], str]:
    adv, offer, partner = make.program(api, **offer_fields)
    response = web.get(f"/r/{offer['id']}/{partner['id']}", headers=BROWSER)
    assert response.status_code == 302
    return adv, response.cookies[f"tl_{offer['id']}"]


def test_a_json_number_sale_amount_is_exact_and_rounded_half_up(api: httpx.Client, web: httpx.Client) -> None:
    adv, tid = _click(api, web, revenue={"type": "cps", "percent": 100}, payout={"type": "cps", "percent": 50})
    body = b'{"transaction_id": "%s", "secure": "%s", "amount": 1.005}' % (
        tid.encode(),
        str(adv["postback_token"]).encode(),
    )
    response = web.post("/postback", content=body, headers={"Content-Type": "application/json"})
    assert response.status_code == 200, response.text
    assert (response.json()["revenue"], response.json()["payout"]) == ("1.01", "0.50")  # 0.5025 → 0.50
    conversion = api.get("/api/v1/conversions", params={"transaction_id": tid}).json()["data"][0]
    assert conversion["amount"] == "1.005"


def test_a_large_json_number_is_stored_exactly_or_refused_naming_the_field(api: httpx.Client) -> None:
    adv = make.advertiser(api)
    exact = (
        b'{"advertiser_id": %d, "name": "Big ticket", "destination_url": "https://shop.example/",'
        b' "revenue": {"type": "cpa", "amount": 123456789012.3456}, "payout": {"type": "cpa", "amount": 0.0001}}'
        % adv["id"]
    )
    created = api.post("/api/v1/offers", content=exact, headers={"Content-Type": "application/json"})
    assert created.status_code == 201, created.text
    assert created.json()["revenue"]["amount"] == "123456789012.3456"
    assert api.get(f"/api/v1/offers/{created.json()['id']}").json()["payout"]["amount"] == "0.0001"

    too_large = exact.replace(b"123456789012.3456", b"1234567890123.4567")
    refused = api.post("/api/v1/offers", content=too_large, headers={"Content-Type": "application/json"})
    assert refused.status_code == 400
    assert refused.json()["field"] == "revenue.amount"
    beyond_float = exact.replace(b"123456789012.3456", b"12345678901234567.89")
    assert (
        api.post("/api/v1/offers", content=beyond_float, headers={"Content-Type": "application/json"}).json()["field"]
        == "revenue.amount"
    )


def test_a_postback_amount_past_the_limit_is_refused_naming_amount(api: httpx.Client, web: httpx.Client) -> None:
    adv, tid = _click(api, web, revenue={"type": "cps", "percent": 10}, payout={"type": "cps", "percent": 5})
    body = b'{"transaction_id": "%s", "secure": "%s", "amount": 1234567890123.4567}' % (
        tid.encode(),
        str(adv["postback_token"]).encode(),
    )
    response = web.post("/postback", content=body, headers={"Content-Type": "application/json"})
    assert response.status_code == 400
    assert (response.json()["error"], response.json()["field"]) == ("invalid_parameter", "amount")
    assert api.get("/api/v1/conversions", params={"transaction_id": tid}).json()["data"] == []


def test_money_text_in_the_api_has_the_postback_grammar(api: httpx.Client) -> None:
    adv = make.advertiser(api)
    body = {"advertiser_id": adv["id"], "name": "Strict", "destination_url": "https://shop.example/",
            "payout": {"type": "cpa", "amount": "1.00"}}  # fmt: skip
    for text in ("1_000", "1e3", "١٢", "NaN", "12,50", "+5", " "):
        refused = api.post("/api/v1/offers", json={**body, "revenue": {"type": "cpa", "amount": text}})
        assert (refused.status_code, refused.json().get("field")) == (400, "revenue.amount"), (text, refused.text)
    for text, shown in (("12.5", "12.50"), (" 7 ", "7.00"), (".5", "0.50")):
        created = api.post("/api/v1/offers", json={**body, "revenue": {"type": "cpa", "amount": text}})
        assert created.status_code == 201, created.text
        assert created.json()["revenue"]["amount"] == shown
    assert api.get("/api/v1/offers", params={"advertiser_id": adv["id"]}).json()["data"].__len__() == 3
