"""Tracking links, server-side clicks and the pixel, through a real server (SQLite and PostgreSQL)."""

from __future__ import annotations

import logging
import re
from typing import Any

import httpx
import pytest

from tests import factories
from tests.servers import RunningServer

GOOGLEBOT = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"
IPHONE = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/17.0 Mobile/15E148 Safari/604.1"
)


def report_totals(api: httpx.Client, **params: Any) -> dict[str, Any]:
    response = api.get("/api/v1/reports", params={"group_by": "offer", **params})
    assert response.status_code == 200, response.text
    totals: dict[str, Any] = response.json()["totals"]
    return totals


def test_redirect_expands_macros_sets_cookie_and_is_not_cached(api: httpx.Client, web: httpx.Client) -> None:
    adv, offer, partner = factories.program(
        api,
        destination_url="https://shop.example/{partner_id}/l?t={transaction_id}&o={offer_id}&a={advertiser_id}"
        "&s={sub2}&src={source_id}&none={sub5}",
    )
    response = web.get(
        f"/r/{offer['id']}/{partner['id']}",
        params={"sub2": "x/y?z=1", "source_id": "feed#1"},
        headers={"user-agent": IPHONE},
    )
    assert response.status_code == 302
    assert response.headers["cache-control"] == "no-store"
    tid = response.cookies[f"tl_{offer['id']}"]
    assert re.fullmatch(r"[0-9a-f]{32}", tid)
    assert response.headers["location"] == (
        f"https://shop.example/{partner['id']}/l?t={tid}&o={offer['id']}&a={adv['id']}"
        "&s=x%2Fy%3Fz%3D1&src=feed%231&none="
    )
    click = api.get(f"/api/v1/clicks/{tid}").json()
    assert click["verdict"] == "accepted"
    assert (click["sub2"], click["source_id"], click["device_type"], click["is_bot"]) == (
        "x/y?z=1",
        "feed#1",
        "mobile",
        False,
    )


def test_each_click_gets_a_new_transaction_id(api: httpx.Client, web: httpx.Client) -> None:
    _, offer, partner = factories.program(api)
    ids = {factories.click(web, offer["id"], partner["id"]) for _ in range(20)}
    assert len(ids) == 20
    assert report_totals(api, offer_id=offer["id"])["gross_clicks"] == 20


def test_head_answers_like_get_but_records_nothing(api: httpx.Client, web: httpx.Client) -> None:
    _, offer, partner = factories.program(api, destination_url="https://shop.example/?s={sub1}")
    response = web.head(f"/r/{offer['id']}/{partner['id']}", params={"sub1": "a"})
    assert response.status_code == 302
    assert response.headers["location"] == "https://shop.example/?s=a"
    assert "set-cookie" not in response.headers
    assert report_totals(api, offer_id=offer["id"]).get("gross_clicks", 0) == 0


def test_paused_offer_goes_to_its_fallback_and_is_recorded_as_rejected(api: httpx.Client, web: httpx.Client) -> None:
    _, offer, partner = factories.program(api, fallback_url="https://fallback.example/?t={transaction_id}")
    assert api.patch(f"/api/v1/offers/{offer['id']}", json={"status": "paused"}).status_code == 200
    response = web.get(f"/r/{offer['id']}/{partner['id']}")
    assert response.status_code == 302
    tid = response.cookies[f"tl_{offer['id']}"]
    assert response.headers["location"] == f"https://fallback.example/?t={tid}"
    click = api.get(f"/api/v1/clicks/{tid}").json()
    assert (click["verdict"], click["reject_reason"]) == ("rejected", "offer_paused")


def test_unknown_partner_without_fallback_gets_a_404_page(api: httpx.Client, web: httpx.Client) -> None:
    _, offer, _ = factories.program(api)
    response = web.get(f"/r/{offer['id']}/999999")
    assert response.status_code == 404
    assert "not available" in response.text
    tid = response.cookies[f"tl_{offer['id']}"]
    assert api.get(f"/api/v1/clicks/{tid}").json()["reject_reason"] == "unknown_partner"


def test_network_fallback_when_the_offer_has_none(database_url: str) -> None:
    from tests.servers import running_server

    with (
        running_server(database_url, fallback_url="https://network.example/fail?o={offer_id}") as srv,
        httpx.Client(base_url=srv.base_url, headers={"Authorization": f"Bearer {srv.admin_key}"}) as api,
    ):
        _, offer, _ = factories.program(api)
        response = httpx.get(f"{srv.base_url}/r/{offer['id']}/424242")
        assert response.status_code == 302
        assert response.headers["location"] == f"https://network.example/fail?o={offer['id']}"


def test_approval_required_offer_needs_approved_access(api: httpx.Client, web: httpx.Client) -> None:
    _, offer, partner = factories.program(api, visibility="approval_required", fallback_url="https://fallback.example/")
    assert web.get(f"/r/{offer['id']}/{partner['id']}").headers["location"] == "https://fallback.example/"
    access = api.post(
        "/api/v1/offer-access", json={"offer_id": offer["id"], "partner_id": partner["id"], "status": "approved"}
    )
    assert access.status_code == 201, access.text
    assert web.get(f"/r/{offer['id']}/{partner['id']}").headers["location"].startswith("https://shop.example/")


def test_pending_partner_is_not_sent_to_the_offer(api: httpx.Client, web: httpx.Client) -> None:
    _, offer, _ = factories.program(api, fallback_url="https://fallback.example/")
    signup = web.post("/api/v1/partner-signups", json={"name": "New", "email": "new@example.com"})
    assert signup.status_code == 201 and signup.json()["status"] == "pending"
    response = web.get(f"/r/{offer['id']}/{signup.json()['id']}")
    assert response.headers["location"] == "https://fallback.example/"
    tid = response.cookies[f"tl_{offer['id']}"]
    assert api.get(f"/api/v1/clicks/{tid}").json()["reject_reason"] == "partner_pending"


def test_bots_are_recorded_flagged_and_not_billable(api: httpx.Client, web: httpx.Client) -> None:
    _, offer, partner = factories.program(api)
    response = web.get(f"/r/{offer['id']}/{partner['id']}", headers={"user-agent": GOOGLEBOT})
    assert response.status_code == 302
    tid = response.cookies["tl_" + str(offer["id"])]
    click = api.get(f"/api/v1/clicks/{tid}").json()
    assert click["is_bot"] is True
    factories.click(web, offer["id"], partner["id"])
    totals = report_totals(api, offer_id=offer["id"])
    assert (totals["gross_clicks"], totals["clicks"], totals["bot_clicks"]) == (2, 1, 1)


def test_cpc_pays_per_billable_click(api: httpx.Client, web: httpx.Client) -> None:
    _, offer, partner = factories.program(
        api, revenue={"type": "cpc", "amount": "0.40"}, payout={"type": "cpc", "amount": "0.25"}
    )
    for _ in range(3):
        factories.click(web, offer["id"], partner["id"])
    web.get(f"/r/{offer['id']}/{partner['id']}", headers={"user-agent": GOOGLEBOT})
    totals = report_totals(api, offer_id=offer["id"])
    assert (totals["revenue"], totals["payout"], totals["profit"]) == ("1.20", "0.75", "0.45")


def test_click_cap_is_exact_and_overflow_goes_to_fallback(api: httpx.Client, web: httpx.Client) -> None:
    _, offer, partner = factories.program(
        api, fallback_url="https://fallback.example/", caps=[{"metric": "clicks", "period": "day", "limit": 3}]
    )
    locations = [web.get(f"/r/{offer['id']}/{partner['id']}").headers["location"] for _ in range(5)]
    assert [loc.startswith("https://shop.example/") for loc in locations] == [True, True, True, False, False]
    assert report_totals(api, offer_id=offer["id"])["rejected_clicks"] == 2


def test_clk_creates_clicks_for_servers_and_browsers(api: httpx.Client, web: httpx.Client) -> None:
    _, offer, partner = factories.program(api)
    got = web.get("/clk", params={"offer_id": offer["id"], "partner_id": partner["id"], "sub1": "s"})
    assert got.status_code == 200
    assert got.headers["access-control-allow-origin"] == "*"
    posted = web.post("/clk", json={"offer_id": offer["id"], "partner_id": partner["id"], "sub3": "p"})
    assert posted.status_code == 200
    preflight = web.options("/clk", headers={"Origin": "https://lp.example", "Access-Control-Request-Method": "POST"})
    assert preflight.status_code == 204 and preflight.headers["access-control-allow-origin"] == "*"
    for response, sub in ((got, ("sub1", "s")), (posted, ("sub3", "p"))):
        tid = response.json()["transaction_id"]
        assert re.fullmatch(r"[0-9a-f]{32}", tid)
        assert api.get(f"/api/v1/clicks/{tid}").json()[sub[0]] == sub[1]


def test_clk_names_the_missing_field(web: httpx.Client) -> None:
    response = web.get("/clk", params={"offer_id": "1"})
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_parameter"
    assert response.json()["field"] == "partner_id"


def test_pixel_converts_from_the_cookie_and_always_answers_a_gif(api: httpx.Client, server: RunningServer) -> None:
    _, offer, partner = factories.program(api)
    with httpx.Client(base_url=server.base_url) as browser:
        browser.get(f"/r/{offer['id']}/{partner['id']}")
        tid = browser.cookies[f"tl_{offer['id']}"]
        pixel = browser.get("/pixel", params={"offer_id": offer["id"], "amount": "20.00", "order_id": "P1"})
        assert pixel.status_code == 200 and pixel.headers["content-type"] == "image/gif"
        assert pixel.content.startswith(b"GIF89a")
    conversions = api.get("/api/v1/conversions", params={"transaction_id": tid}).json()["data"]
    assert [(c["origin"], c["order_id"], c["amount"]) for c in conversions] == [("sdk", "P1", "20.00")]
    orphan = httpx.get(f"{server.base_url}/pixel", params={"offer_id": offer["id"]})
    assert orphan.status_code == 200 and orphan.content.startswith(b"GIF89a")


BROWSER = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36"
)


def _browser(server: RunningServer) -> httpx.Client:
    return httpx.Client(base_url=server.base_url, headers={"user-agent": BROWSER}, timeout=30)


def _conversions(api: httpx.Client, **params: Any) -> list[dict[str, Any]]:
    response = api.get("/api/v1/conversions", params=params)
    assert response.status_code == 200, response.text
    data: list[dict[str, Any]] = response.json()["data"]
    return data


@pytest.fixture
def tracking_log(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    """The captured log, with the tracking log's refusals (INFO) kept."""
    caplog.set_level(logging.INFO, logger="tracklane.tracking")
    return caplog


def _refusals(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "tracklane.tracking" and "refused" in r.getMessage()]


def _is_gif(response: httpx.Response) -> bool:
    return (
        response.status_code == 200
        and response.headers["content-type"] == "image/gif"
        and response.content.startswith(b"GIF89a")
    )


def test_a_bare_transaction_id_converts_nothing(
    api: httpx.Client, server: RunningServer, tracking_log: pytest.LogCaptureFixture
) -> None:
    """The issue's first case: `/clk`, then a pixel naming the transaction id, with no cookie and no token."""
    _, offer, partner = factories.program(
        api, revenue={"type": "cps", "percent": "10"}, payout={"type": "cps", "percent": "5"}
    )
    with _browser(server) as server_side, _browser(server) as attacker:
        tid = server_side.get("/clk", params={"offer_id": offer["id"], "partner_id": partner["id"]}).json()[
            "transaction_id"
        ]
        pixel = attacker.get("/pixel", params={"offer_id": offer["id"], "transaction_id": tid, "amount": "1000"})
        assert _is_gif(pixel)
    assert _conversions(api, transaction_id=tid) == []
    assert _refusals(tracking_log) == [
        f"pixel conversion refused: invalid_token neither the offer's tl_{offer['id']} "
        "cookie nor a click_token was sent"
    ]


def test_a_pixel_converts_only_a_click_of_its_own_offer(
    api: httpx.Client, server: RunningServer, tracking_log: pytest.LogCaptureFixture
) -> None:
    """The issue's second case: offer A's click never converts through a pixel of offer B (nor on A)."""
    adv, offer_a, partner = factories.program(api)
    offer_b = factories.offer(api, adv["id"])
    with _browser(server) as browser:
        browser.get(f"/r/{offer_a['id']}/{partner['id']}")
        tid = browser.cookies[f"tl_{offer_a['id']}"]
        assert _is_gif(browser.get("/pixel", params={"offer_id": offer_b["id"], "transaction_id": tid}))
        browser.cookies.set(f"tl_{offer_b['id']}", tid)  # offer A's click under offer B's cookie name
        assert _is_gif(browser.get("/pixel", params={"offer_id": offer_b["id"]}))
    with _browser(server) as landing:
        issued = landing.get("/clk", params={"offer_id": offer_a["id"], "partner_id": partner["id"]}).json()
        token_b = landing.get("/pixel", params={"offer_id": offer_b["id"], "click_token": issued["click_token"]})
        assert _is_gif(token_b)
    assert _conversions(api, transaction_id=tid) == []
    assert _conversions(api, transaction_id=issued["transaction_id"]) == []
    assert _conversions(api, offer_id=offer_b["id"]) == []
    refusals = _refusals(tracking_log)
    assert len(refusals) == 3 and "cookie nor a click_token" in refusals[0]
    assert all(f"unknown_transaction no click of offer #{offer_b['id']}" in r for r in refusals[1:]), refusals


def test_a_pixel_converts_with_the_offers_cookie_or_a_click_token(api: httpx.Client, server: RunningServer) -> None:
    _, offer, partner = factories.program(api)
    with _browser(server) as browser:
        browser.get(f"/r/{offer['id']}/{partner['id']}")
        by_cookie = browser.cookies[f"tl_{offer['id']}"]
        assert _is_gif(browser.get("/pixel", params={"offer_id": offer["id"], "order_id": "C1"}))
    with _browser(server) as landing:
        issued = landing.get("/clk", params={"offer_id": offer["id"], "partner_id": partner["id"]}).json()
        assert re.fullmatch(rf"{issued['transaction_id']}\.[0-9a-f]{{32}}", issued["click_token"])
        pixel = landing.get("/pixel", params={"offer_id": offer["id"], "click_token": issued["click_token"],
                                              "amount": "12.50", "order_id": "T1"})  # fmt: skip
        assert _is_gif(pixel)
    [cookie_conversion] = _conversions(api, transaction_id=by_cookie)
    [token_conversion] = _conversions(api, transaction_id=issued["transaction_id"])
    assert (cookie_conversion["origin"], cookie_conversion["order_id"]) == ("sdk", "C1")
    assert (token_conversion["origin"], token_conversion["amount"], token_conversion["order_id"]) == (
        "sdk",
        "12.50",
        "T1",
    )
    assert [s["step"] for s in cookie_conversion["trace"]][:3] == ["cookie", "click", "method"]
    assert [s["step"] for s in token_conversion["trace"]][:3] == ["click_token", "click", "method"]


def test_a_forged_or_outdated_click_token_converts_nothing(
    api: httpx.Client, server: RunningServer, tracking_log: pytest.LogCaptureFixture
) -> None:
    adv, offer, partner = factories.program(api)
    with _browser(server) as landing:
        issued = landing.get("/clk", params={"offer_id": offer["id"], "partner_id": partner["id"]}).json()
        tid = issued["transaction_id"]
        for forged in (f"{tid}.{'0' * 32}", tid, f"{tid}.", "not a token"):
            assert _is_gif(landing.get("/pixel", params={"offer_id": offer["id"], "click_token": forged}))
        rotated = api.patch(f"/api/v1/advertisers/{adv['id']}", json={"rotate_postback_token": True})
        assert rotated.status_code == 200, rotated.text
        outdated = landing.get("/pixel", params={"offer_id": offer["id"], "click_token": issued["click_token"]})
        assert _is_gif(outdated)
    assert _conversions(api, transaction_id=tid) == []
    refusals = _refusals(tracking_log)
    assert len(refusals) == 5
    assert [r.split()[3] for r in refusals] == ["invalid_token", "invalid_parameter", "invalid_parameter",
                                                "invalid_parameter", "invalid_token"]  # fmt: skip
    assert "rotated" in refusals[-1]


def test_a_pixel_on_an_offer_without_the_pixel_method_converts_nothing(
    api: httpx.Client, server: RunningServer, tracking_log: pytest.LogCaptureFixture
) -> None:
    _, offer, partner = factories.program(api, conversion_methods=["postback"])
    with _browser(server) as browser:
        browser.get(f"/r/{offer['id']}/{partner['id']}")
        tid = browser.cookies[f"tl_{offer['id']}"]
        assert _is_gif(browser.get("/pixel", params={"offer_id": offer["id"]}))
    assert _conversions(api, transaction_id=tid) == []
    assert _refusals(tracking_log) == [
        f"pixel conversion refused: method_not_enabled offer #{offer['id']} does not accept conversions by pixel"
    ]


def test_the_pixel_answers_its_gif_when_recording_fails(
    api: httpx.Client, server: RunningServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tracklane.domain.errors import StorageUnavailable

    _, offer, partner = factories.program(api)
    conversions = server.container.conversions
    with _browser(server) as browser:
        browser.get(f"/r/{offer['id']}/{partner['id']}")
        for fault in (StorageUnavailable(), RuntimeError("driver fault")):

            async def failing(*_args: object, fault: Exception = fault, **_kwargs: object) -> None:
                raise fault

            monkeypatch.setattr(conversions, "record", failing)
            assert _is_gif(browser.get("/pixel", params={"offer_id": offer["id"]}))
