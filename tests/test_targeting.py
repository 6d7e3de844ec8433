"""Offer targeting, bots, duplicate clicks and status gates, through a real server on SQLite (and PostgreSQL)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests import factories
from tests.servers import RunningServer, running_server

CHROME = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36"
)
FIREFOX = "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:125.0) Gecko/20100101 Firefox/125.0"
IPHONE = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/17.4 Mobile/15E148 Safari/604.1"
)
ANDROID = (
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 "
    "Mobile Safari/537.36"
)
TOOLS = {
    "curl": "curl/8.5.0",
    "wget": "Wget/1.21.4",
    "python-requests": "python-requests/2.31.0",
    "go": "Go-http-client/1.1",
    "okhttp": "okhttp/4.12.0",
    "headless-chrome": "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "HeadlessChrome/120.0.6099.28 Safari/537.36",
    "googlebot": "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
}


@pytest.fixture
def tracked(database_url: str) -> Iterator[RunningServer]:
    """A server that reads the visitor's country from `X-Country` and flags repeats within 60 s."""
    with running_server(database_url, country_header="X-Country", duplicate_click_window_seconds=60) as running:
        yield running


@pytest.fixture
def admin_api(tracked: RunningServer) -> Iterator[httpx.Client]:
    headers = {"Authorization": f"Bearer {tracked.admin_key}"}
    with httpx.Client(base_url=tracked.base_url, headers=headers, timeout=30) as client:
        yield client


@pytest.fixture
def browser(tracked: RunningServer) -> Iterator[httpx.Client]:
    """A tracking client; each request names its own user agent."""
    with httpx.Client(base_url=tracked.base_url, timeout=30, follow_redirects=False) as client:
        yield client


def visit(web: httpx.Client, offer: dict[str, Any], partner: dict[str, Any], agent: str = CHROME,
          headers: dict[str, str] | None = None, **params: str) -> tuple[httpx.Response, str | None]:  # fmt: skip
    response = web.get(f"/r/{offer['id']}/{partner['id']}", params=params,
                       headers={"user-agent": agent, **(headers or {})})  # fmt: skip
    assert response.status_code == 302, response.text
    return response, response.cookies.get(f"tl_{offer['id']}")


def clicked(api: httpx.Client, tid: str | None) -> dict[str, Any]:
    assert tid is not None
    response = api.get(f"/api/v1/clicks/{tid}")
    assert response.status_code == 200, response.text
    click: dict[str, Any] = response.json()
    return click


def totals(api: httpx.Client, offer_id: int) -> dict[str, Any]:
    response = api.get("/api/v1/reports", params={"group_by": "offer", "offer_id": offer_id})
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()["totals"]
    return result


FALLBACK = "https://fallback.example/?t={transaction_id}"


def targeted(api: httpx.Client, targeting: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    _, offer, partner = factories.program(api, fallback_url=FALLBACK, targeting=targeting)
    return offer, partner


# bots


def test_tools_headless_browsers_and_crawlers_are_recorded_as_bots_and_never_billed(
    admin_api: httpx.Client, browser: httpx.Client
) -> None:
    _, offer, partner = factories.program(admin_api, revenue={"type": "cpc", "amount": "0.50"},
                                          payout={"type": "cpc", "amount": "0.20"})  # fmt: skip
    for name, agent in TOOLS.items():
        response, tid = visit(browser, offer, partner, agent)
        assert response.headers["location"].startswith("https://shop.example/land"), name
        click = clicked(admin_api, tid)
        assert (click["is_bot"], click["device_type"], click["revenue"]) == (True, "bot", "0.00"), (name, click)
    people = {CHROME: "desktop", FIREFOX: "desktop", IPHONE: "mobile", ANDROID: "mobile"}
    for agent, kind in people.items():
        click = clicked(admin_api, visit(browser, offer, partner, agent)[1])
        assert (click["is_bot"], click["device_type"], click["revenue"]) == (False, kind, "0.50"), agent
    shown = totals(admin_api, offer["id"])
    assert (shown["gross_clicks"], shown["clicks"], shown["bot_clicks"]) == (len(TOOLS) + 4, 4, len(TOOLS))
    assert shown["revenue"] == "2.00"


def test_head_answers_like_get_and_records_nothing(admin_api: httpx.Client, browser: httpx.Client) -> None:
    offer, partner = targeted(admin_api, {"countries": ["DE"]})
    inside = browser.head(f"/r/{offer['id']}/{partner['id']}", headers={"user-agent": CHROME, "x-country": "de"})
    outside = browser.head(f"/r/{offer['id']}/{partner['id']}", headers={"user-agent": CHROME, "x-country": "FR"})
    assert (inside.status_code, outside.status_code) == (302, 302)
    assert inside.headers["location"].startswith("https://shop.example/land")
    assert outside.headers["location"] == "https://fallback.example/?t="
    assert "set-cookie" not in inside.headers and "set-cookie" not in outside.headers
    assert totals(admin_api, offer["id"]).get("gross_clicks", 0) == 0


# targeting


def test_country_targeting_reads_the_trusted_header_and_refuses_unknown_countries(
    admin_api: httpx.Client, browser: httpx.Client
) -> None:
    offer, partner = targeted(admin_api, {"countries": ["us", "DE"]})
    assert offer["targeting"]["countries"] == ["US", "DE"]
    response, tid = visit(browser, offer, partner, headers={"x-country": "de"})
    assert response.headers["location"].startswith("https://shop.example/land")
    assert (clicked(admin_api, tid)["verdict"], clicked(admin_api, tid)["country"]) == ("accepted", "DE")
    for headers in ({"x-country": "FR"}, {}, {"x-country": "not a country"}):
        response, tid = visit(browser, offer, partner, headers=headers)
        assert response.headers["location"] == f"https://fallback.example/?t={tid}", headers
        click = clicked(admin_api, tid)
        assert (click["verdict"], click["reject_reason"]) == ("rejected", "targeting:country"), headers
    shown = totals(admin_api, offer["id"])
    assert (shown["gross_clicks"], shown["clicks"], shown["rejected_clicks"]) == (4, 1, 3)


def test_device_and_os_and_browser_targeting_use_the_parsed_user_agent(
    admin_api: httpx.Client, browser: httpx.Client
) -> None:
    offer, partner = targeted(admin_api, {"device_types": ["mobile"], "operating_systems": ["iOS"]})
    assert clicked(admin_api, visit(browser, offer, partner, IPHONE)[1])["verdict"] == "accepted"
    assert clicked(admin_api, visit(browser, offer, partner, ANDROID)[1])["reject_reason"] == "targeting:os"
    assert clicked(admin_api, visit(browser, offer, partner, CHROME)[1])["reject_reason"] == "targeting:device_type"
    firefox_only, partner = targeted(admin_api, {"browsers": ["firefox"]})
    assert clicked(admin_api, visit(browser, firefox_only, partner, FIREFOX)[1])["verdict"] == "accepted"
    assert clicked(admin_api, visit(browser, firefox_only, partner, CHROME)[1])["reject_reason"] == "targeting:browser"


def test_sub_source_and_referrer_allow_and_block_lists(admin_api: httpx.Client, browser: httpx.Client) -> None:
    rules = [
        {"field": "sub1", "action": "allow", "values": ["Email", "push"]},
        {"field": "sub2", "action": "block", "match": "starts_with", "values": ["test-"]},
        {"field": "source_id", "action": "block", "match": "exact", "values": ["fraud-feed"]},
        {"field": "referrer", "action": "block", "match": "contains", "values": ["spam.example"]},
    ]
    offer, partner = targeted(admin_api, {"rules": rules})
    assert [r["match"] for r in offer["targeting"]["rules"]] == ["exact", "starts_with", "exact", "contains"]
    assert offer["targeting"]["rules"][0]["values"] == ["email", "push"]

    visits = iter(range(100))

    def reason(headers: dict[str, str] | None = None, **params: str) -> str | None:
        agent = f"{CHROME} Visit/{next(visits)}"  # distinct visitors: no click repeats another
        click = clicked(admin_api, visit(browser, offer, partner, agent, headers=headers, **params)[1])
        result: str | None = click["reject_reason"]
        return result

    assert reason(sub1="EMAIL", sub2="live-1", source_id="feed") is None
    assert reason(sub1="display") == "targeting:sub1"
    assert reason() == "targeting:sub1"  # an allow list refuses a missing value
    assert reason(sub1="push", sub2="test-7") == "targeting:sub2"
    assert reason(sub1="push", sub2="my-test-7") is None
    assert reason(sub1="push", source_id="fraud-feed") == "targeting:source_id"
    assert reason({"referer": "https://www.spam.example/page"}, sub1="push") == "targeting:referrer"
    assert reason({"referer": "https://news.example/"}, sub1="push") is None


# the API


def test_targeting_is_set_on_create_and_update_shown_and_validated(admin_api: httpx.Client) -> None:
    adv = factories.advertiser(admin_api)
    offer = factories.offer(admin_api, adv["id"])
    empty = {"countries": [], "device_types": [], "operating_systems": [], "browsers": [], "rules": []}
    assert offer["targeting"] == empty
    changed = admin_api.patch(f"/api/v1/offers/{offer['id']}", json={"targeting": {"countries": ["gb"]}})
    assert changed.status_code == 200, changed.text
    assert changed.json()["targeting"] == {**empty, "countries": ["GB"]}
    assert admin_api.get(f"/api/v1/offers/{offer['id']}").json()["targeting"]["countries"] == ["GB"]
    cleared = admin_api.patch(f"/api/v1/offers/{offer['id']}", json={"targeting": {}})
    assert cleared.json()["targeting"] == empty
    base = {"advertiser_id": adv["id"], "name": "T", "destination_url": "https://shop.example/",
            "revenue": {"type": "cpa", "amount": "1"}, "payout": {"type": "cpa", "amount": "1"}}  # fmt: skip
    bad = {
        "targeting.countries[0]": {"countries": ["USA"]},
        "targeting.device_types[0]": {"device_types": ["fridge"]},
        "targeting.rules[0].field": {"rules": [{"field": "sub9", "action": "allow", "values": ["x"]}]},
        "targeting.rules[0].match": {"rules": [{"field": "sub1", "action": "allow", "match": "regex", "values": []}]},
        "targeting.rules[0].values": {"rules": [{"field": "sub1", "action": "block", "values": []}]},
        "targeting.regions": {"regions": ["EU"]},
    }
    for field, targeting in bad.items():
        for response in (admin_api.post("/api/v1/offers", json={**base, "targeting": targeting}),
                         admin_api.patch(f"/api/v1/offers/{offer['id']}", json={"targeting": targeting})):  # fmt: skip
            assert response.status_code == 400, (field, response.text)
            assert field in response.text, (field, response.text)
    for response in (admin_api.post("/api/v1/offers", json={**base, "geo": ["US"]}),
                     admin_api.patch(f"/api/v1/offers/{offer['id']}", json={"geo": ["US"]})):  # fmt: skip
        assert response.status_code == 400 and "geo" in response.text, response.text


# status gates


def test_an_inactive_advertiser_gets_no_billable_clicks_and_no_conversions(
    admin_api: httpx.Client, browser: httpx.Client
) -> None:
    adv, offer, partner = factories.program(admin_api, fallback_url=FALLBACK)
    earlier = visit(browser, offer, partner)[1]
    assert admin_api.patch(f"/api/v1/advertisers/{adv['id']}", json={"status": "inactive"}).status_code == 200
    response, tid = visit(browser, offer, partner)
    assert response.headers["location"] == f"https://fallback.example/?t={tid}"
    click = clicked(admin_api, tid)
    assert (click["verdict"], click["reject_reason"]) == ("rejected", "advertiser_inactive")
    refused = browser.get("/postback", params={"transaction_id": earlier, "secure": adv["postback_token"]})
    assert refused.status_code == 403, refused.text
    assert refused.json()["error"] == "advertiser_inactive"
    assert admin_api.patch(f"/api/v1/advertisers/{adv['id']}", json={"status": "active"}).status_code == 200
    accepted = browser.get("/postback", params={"transaction_id": earlier, "secure": adv["postback_token"]})
    assert accepted.status_code == 200 and accepted.json()["result"] == "accepted", accepted.text


# duplicates


def test_a_repeated_click_is_recorded_as_a_duplicate_and_goes_to_the_offer_as_the_first(
    admin_api: httpx.Client, browser: httpx.Client
) -> None:
    _, offer, partner = factories.program(admin_api, revenue={"type": "cpc", "amount": "1.00"},
                                          payout={"type": "cpc", "amount": "0.40"})  # fmt: skip
    first_tid = visit(browser, offer, partner, CHROME, sub1="a")[1]
    again, again_tid = visit(browser, offer, partner, CHROME, sub1="b")
    assert again_tid is None  # the browser keeps the first click's cookie
    assert again.headers["location"] == f"https://shop.example/land?tid={first_tid}&s1=b"
    other_tid = visit(browser, offer, partner, FIREFOX)[1]
    assert other_tid is not None and other_tid != first_tid
    repeat = browser.get("/clk", params={"offer_id": offer["id"], "partner_id": partner["id"]},
                         headers={"user-agent": CHROME}).json()  # fmt: skip
    assert (repeat["verdict"], repeat["reject_reason"], repeat["duplicate_of"]) == (
        "rejected", "duplicate_click", first_tid)  # fmt: skip
    duplicate = clicked(admin_api, repeat["transaction_id"])
    assert (duplicate["revenue"], duplicate["sub1"]) == ("0.00", None)
    shown = totals(admin_api, offer["id"])
    assert (shown["gross_clicks"], shown["clicks"], shown["rejected_clicks"]) == (4, 2, 2)
    assert shown["revenue"] == "2.00"
