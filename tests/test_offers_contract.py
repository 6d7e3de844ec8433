"""Offers through the real server: money exact from JSON numbers, errors naming their field path, unknown
fields refused, and each role's own view of an offer and its events."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests import factories
from tests.servers import RunningServer

BROWSER = {"User-Agent": "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 Chrome/126.0 Safari/537.36"}
JSON = {"Content-Type": "application/json"}


def _keys(value: Any) -> set[str]:
    """Every key of a JSON value, however deep."""
    if isinstance(value, dict):
        return set(value) | {k for v in value.values() for k in _keys(v)}
    if isinstance(value, list):
        return {k for v in value for k in _keys(v)}
    return set()


def _client(server: RunningServer, api: httpx.Client, **owner: Any) -> httpx.Client:
    created = api.post("/api/v1/api-keys", json=owner)
    assert created.status_code == 201, created.text
    return httpx.Client(base_url=server.base_url, headers={"Authorization": f"Bearer {created.json()['key']}"},
                        timeout=30)  # fmt: skip


def _refused(response: httpx.Response, field: str) -> str:
    assert response.status_code == 400, response.text
    assert (response.json()["error"], response.json()["field"]) == ("invalid_parameter", field), response.text
    message: str = response.json()["message"]
    return message


def test_money_from_json_numbers_stays_exact_up_to_the_limit(api: httpx.Client, web: httpx.Client) -> None:
    adv, offer, partner = factories.program(api, revenue={"type": "cps", "percent": 100},
                                            payout={"type": "cps", "percent": 50})  # fmt: skip
    assert offer["revenue"] == {"type": "cps", "amount": None, "percent": "100"}
    click = web.get(f"/r/{offer['id']}/{partner['id']}", headers=BROWSER)
    tid = click.cookies[f"tl_{offer['id']}"]
    sale = b'{"transaction_id": "%s", "secure": "%s", "amount": 1.005}' % (tid.encode(), adv["postback_token"].encode())
    converted = web.post("/postback", content=sale, headers=JSON)
    assert converted.status_code == 200, converted.text
    assert converted.json()["revenue"] == "1.01"  # 100% of 1.005, half-up

    events = f"/api/v1/offers/{offer['id']}/events"
    largest = b'{"name": "big", "revenue": {"type": "fixed", "amount": 999999999999.9999},' \
              b' "payout": {"type": "fixed", "amount": 0.0001}}'  # fmt: skip
    created = api.post(events, content=largest, headers=JSON)
    assert created.status_code == 201, created.text
    assert (created.json()["revenue"]["amount"], created.json()["payout"]["amount"]) == ("999999999999.9999", "0.0001")
    (stored,) = api.get(events).json()["data"]
    assert (stored["revenue"]["amount"], stored["payout"]["amount"]) == ("999999999999.9999", "0.0001")

    too_large = b'{"name": "bigger", "revenue": {"type": "fixed", "amount": 1234567890123.4567},' \
                b' "payout": {"type": "fixed", "amount": 1}}'  # fmt: skip
    assert "too large" in _refused(api.post(events, content=too_large, headers=JSON), "revenue.amount")
    too_precise = too_large.replace(b"1234567890123.4567", b"1.23456")
    _refused(api.post(events, content=too_precise, headers=JSON), "revenue.amount")
    payout_too_large = b'{"partner_id": %d, "payout": {"type": "cpa", "amount": 1e13}}' % partner["id"]
    _refused(api.post(f"/api/v1/offers/{offer['id']}/partner-payouts", content=payout_too_large, headers=JSON),
             "payout.amount")  # fmt: skip
    assert [e["name"] for e in api.get(events).json()["data"]] == ["big"]


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (
            {
                "caps": [
                    {"metric": "clicks", "period": "day", "limit": 1},
                    {"metric": "clicks", "period": "week", "limit": -1},
                ]
            },
            "caps[1].limit",
        ),
        (
            {
                "caps": [
                    {"metric": "clicks", "period": "day", "limit": 1},
                    {"metric": "clicks", "period": "week", "limit": 2**63},
                ]
            },
            "caps[1].limit",
        ),
        ({"caps": [{"metric": "clicks", "period": "day", "limit": 1}] * 2}, "caps"),
        ({"revenue": {"type": "cps", "percent": 100.5}}, "revenue.percent"),
        ({"revenue": {"type": "cpa", "amount": "1", "percent": "5"}}, "revenue.percent"),
        ({"revenue": {"type": "cpa", "amount": "5", "colour": "red"}}, "revenue.colour"),
        ({"colour": "red"}, "colour"),
        ({"conversion_methods": []}, "conversion_methods"),
        ({"conversion_methods": ["carrier pigeon"]}, "conversion_methods[0]"),
        ({"default_status": "rejected"}, "default_status"),
        ({"fallback_url": "https://fallback.example/{nope}"}, "fallback_url"),
    ],
)
def test_offer_errors_name_the_field_path(api: httpx.Client, change: dict[str, Any], field: str) -> None:
    adv = factories.advertiser(api)
    body = {
        "advertiser_id": adv["id"],
        "name": "n",
        "destination_url": "https://a.example/",
        "revenue": {"type": "cpa", "amount": "1"},
        "payout": {"type": "cpa", "amount": "1"},
        **change,
    }
    _refused(api.post("/api/v1/offers", json=body), field)
    assert api.get("/api/v1/offers", params={"advertiser_id": adv["id"]}).json()["data"] == []


def test_changes_name_their_field_and_apply_only_what_was_sent(api: httpx.Client) -> None:
    _, offer, partner = factories.program(api, fallback_url="https://fallback.example/",
                                          caps=[{"metric": "clicks", "period": "day", "limit": 10}])  # fmt: skip
    assert offer["conversion_methods"] == ["postback", "pixel", "sdk", "segment", "api"]
    assert offer["share_amount_with_partners"] is False
    url = f"/api/v1/offers/{offer['id']}"
    assert "cannot be changed" in _refused(api.patch(url, json={"advertiser_id": offer["advertiser_id"]}),
                                           "advertiser_id")  # fmt: skip
    _refused(api.patch(url, json={"name": None}), "name")
    _refused(api.patch(url, json={"attribution_window_days": 366}), "attribution_window_days")
    changed = api.patch(url, json={
        "fallback_url": None, "conversion_methods": ["pixel", "postback", "pixel"], "share_amount_with_partners": True,
        "caps": [{"metric": "clicks", "period": "day", "limit": 10}, {"metric": "conversions", "period": "total",
                                                                      "limit": 2**63 - 1}],
    })  # fmt: skip
    assert changed.status_code == 200, changed.text
    data = changed.json()
    assert (data["fallback_url"], data["conversion_methods"], data["share_amount_with_partners"]) == (
        None,
        ["postback", "pixel"],
        True,
    )
    assert data["caps"][0]["id"] == offer["caps"][0]["id"] and data["caps"][1]["limit"] == 2**63 - 1
    assert (data["name"], data["revenue"], data["payout"]) == (offer["name"], offer["revenue"], offer["payout"])
    assert api.patch("/api/v1/offers/999999", json={"status": "paused"}).status_code == 404

    event = factories.event(api, offer["id"])
    _refused(api.patch(f"{url}/events/{event['id']}", json={"payout": {"type": "cpa"}}), "payout.amount")
    _refused(api.post(f"{url}/events", json={"name": "x", "revenue": {"type": "cpc", "amount": 1}}), "payout")
    _refused(api.post("/api/v1/offer-access", json={"offer_id": offer["id"], "partner_id": partner["id"],
                                                    "status": "maybe"}), "status")  # fmt: skip
    _refused(api.post(f"{url}/partner-payouts", json={"partner_id": partner["id"], "event_id": 999999,
                                                      "payout": {"type": "cpa", "amount": 1}}), "event_id")  # fmt: skip
    access = factories.created(
        api.post(
            "/api/v1/offer-access",
            json={"offer_id": offer["id"], "partner_id": partner["id"], "status": "rejected", "reason": "brand safety"},
        )
    )
    approved = api.patch(f"/api/v1/offer-access/{access['id']}", json={"status": "approved"}).json()
    assert (approved["status"], approved["reason"]) == ("approved", "brand safety")
    cleared = api.patch(f"/api/v1/offer-access/{access['id']}", json={"reason": None}).json()
    assert (cleared["status"], cleared["reason"]) == ("approved", None)
    listed = api.get("/api/v1/offer-access", params={"offer_id": offer["id"], "status": "approved"}).json()["data"]
    assert [a["id"] for a in listed] == [access["id"]]
    assert (
        api.get("/api/v1/offers", params={"status": "paused", "advertiser_id": offer["advertiser_id"]}).json()["data"]
        == []
    )
    _refused(api.get("/api/v1/offers", params={"status": "sleeping"}), "status")


def test_each_role_sees_its_own_view_of_an_offer_and_its_events(server: RunningServer, api: httpx.Client) -> None:
    adv = factories.advertiser(api)
    offer = factories.offer(api, adv["id"], fallback_url="https://fallback.example/",
                            revenue={"type": "cpa", "amount": "10.00"},
                            payout={"type": "cpa", "amount": "6.00"})  # fmt: skip
    event = factories.event(api, offer["id"], revenue={"type": "fixed", "amount": "3.00"},
                            payout={"type": "fixed", "amount": "1.00"})  # fmt: skip
    special, plain = factories.partner(api), factories.partner(api)
    payouts = f"/api/v1/offers/{offer['id']}/partner-payouts"
    for event_id, amount in ((None, "7.50"), (event["id"], "2.25")):
        set_payout = api.post(payouts, json={"partner_id": special["id"], "event_id": event_id,
                                             "payout": {"type": "cpa", "amount": amount}})  # fmt: skip
        assert set_payout.status_code == 201, set_payout.text
    url = f"/api/v1/offers/{offer['id']}"

    admin_view = api.get(url).json()
    assert {"revenue", "payout", "destination_url", "fallback_url", "conversion_methods",
            "share_amount_with_partners"} <= set(admin_view)  # fmt: skip
    assert admin_view["payout"]["amount"] == "6.00" and "tracking_url" not in admin_view

    with _client(server, api, role="partner", partner_id=special["id"]) as partner:
        seen = partner.get(url).json()
        assert not _keys(seen) & {"revenue", "destination_url", "fallback_url"}
        assert seen["payout"] == {"type": "cpa", "amount": "7.50", "percent": None}
        assert seen["tracking_url"].endswith(f"/r/{offer['id']}/{special['id']}")
        (listed,) = [o for o in partner.get("/api/v1/offers").json()["data"] if o["id"] == offer["id"]]
        assert listed == seen
        (seen_event,) = partner.get(f"{url}/events").json()["data"]
        assert "revenue" not in seen_event and seen_event["payout"]["amount"] == "2.25"
        assert partner.patch(url, json={"status": "paused"}).status_code == 403
    with _client(server, api, role="partner", partner_id=plain["id"]) as partner:
        assert partner.get(url).json()["payout"]["amount"] == "6.00"
        assert partner.get(f"{url}/events").json()["data"][0]["payout"]["amount"] == "1.00"

    with _client(server, api, role="advertiser", advertiser_id=adv["id"]) as advertiser:
        answers = [advertiser.get(url).json(), advertiser.get("/api/v1/offers").json(),
                   advertiser.get(f"{url}/events").json()]  # fmt: skip
        assert all("payout" not in _keys(answer) for answer in answers), answers
        assert answers[0]["revenue"]["amount"] == "10.00" and answers[0]["fallback_url"] == "https://fallback.example/"
        assert answers[2]["data"][0]["revenue"]["amount"] == "3.00"
        for refused in (advertiser.get(payouts), advertiser.patch(url, json={"status": "paused"})):
            assert refused.status_code == 403


def test_an_offer_the_caller_may_not_see_is_not_found(server: RunningServer, api: httpx.Client) -> None:
    mine, theirs = factories.advertiser(api), factories.advertiser(api)
    private = factories.offer(api, theirs["id"], visibility="private")
    partner = factories.partner(api)
    url = f"/api/v1/offers/{private['id']}"
    with _client(server, api, role="advertiser", advertiser_id=mine["id"]) as advertiser, \
            _client(server, api, role="partner", partner_id=partner["id"]) as partner_key:  # fmt: skip
        for client in (advertiser, partner_key):
            for path in (url, f"{url}/events", "/api/v1/offers/999999", "/api/v1/offers/999999/events"):
                response = client.get(path)
                assert (response.status_code, response.json()["error"]) == (404, "not_found"), path
            assert private["id"] not in {o["id"] for o in client.get("/api/v1/offers").json()["data"]}
    other = factories.offer(api, mine["id"])
    payout = factories.created(
        api.post(
            f"{url}/partner-payouts", json={"partner_id": partner["id"], "payout": {"type": "cpa", "amount": "1.00"}}
        )
    )
    assert api.delete(f"/api/v1/offers/{other['id']}/partner-payouts/{payout['id']}").status_code == 404
    assert api.delete(f"{url}/partner-payouts/{payout['id']}").status_code == 204
