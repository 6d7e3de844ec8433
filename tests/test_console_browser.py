"""The console and the portals in Chromium against a real server: the journeys of an admin, a partner and
an advertiser, with no console error, no failed request and no CSP violation; a screenshot of every main page
(saved in tests/screenshots/ to be looked at)."""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

import httpx
import pytest

from tests import factories
from tests.console import PASSWORD, person
from tests.servers import RunningServer, running_server, sqlite_url
from tracklane.domain.model import Role
from tracklane.web.ui.routing import NAVIGATION

CHROMIUM = "/usr/bin/chromium"
BROWSER_REQUIRED = os.environ.get("TRACKLANE_TEST_BROWSER") == "required"
SCREENSHOTS = Path(__file__).parent / "screenshots"
BROWSER_UA = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36"
REVENUE, PAYOUT = "12.34", "4.56"  # distinct amounts, so that either one showing up is noticed


class Watched:
    """A browser page whose console errors, failed requests and CSP violations are collected."""

    def __init__(self, page: Any, base_url: str) -> None:
        self.page = page
        self.problems: list[str] = []
        page.on("console", lambda m: self.problems.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
        page.on("pageerror", lambda e: self.problems.append(f"page error: {e}"))
        page.on("requestfailed", lambda r: self.problems.append(f"failed: {r.url} {r.failure}"))
        page.on(
            "response",
            lambda r: self.problems.append(f"{r.status}: {r.url}") if r.status >= 500 else None,
        )
        self.base_url = base_url

    def go(self, path: str) -> None:
        self.page.goto(self.base_url + path)
        self.page.wait_for_load_state("networkidle")

    def shot(self, name: str, full_page: bool = True) -> None:
        self.page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=full_page)

    def text(self) -> str:
        return str(self.page.inner_text("body"))


@pytest.fixture
def chromium() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    if not shutil.which(CHROMIUM):
        assert not BROWSER_REQUIRED, f"{CHROMIUM} is required"
        pytest.skip(f"the console is checked in the system Chromium; install it at {CHROMIUM}")
    SCREENSHOTS.mkdir(exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM)
        yield browser
        browser.close()


def _open(browser: Any, server: RunningServer, email: str | None = None, **options: Any) -> Watched:
    context = browser.new_context(**{"viewport": {"width": 1366, "height": 900}, **options})
    watched = Watched(context.new_page(), server.base_url)
    if email is not None:
        _sign_in(watched, email)
    return watched


def _sign_in(watched: Watched, email: str, password: str = PASSWORD) -> None:
    watched.go("/ui/sign-in")
    watched.page.fill("input[name=email]", email)
    watched.page.fill("input[name=password]", password)
    watched.page.click("button[type=submit]")
    watched.page.wait_for_load_state("networkidle")
    assert "/ui/sign-in" not in watched.page.url, watched.text()


def _kpi(watched: Watched, label: str) -> str:
    card = watched.page.locator(".kpi", has=watched.page.locator(".label", has_text=re.compile(f"^{label}$", re.I)))
    return str(card.first.locator(".value").inner_text())


def _convert(server: RunningServer, link: str, token: str, **params: str) -> None:
    # The link names the configured public URL; the test server listens on a port of its own.
    parts = urlsplit(link)
    with httpx.Client(headers={"User-Agent": BROWSER_UA}) as web:
        click = web.get(f"{server.base_url}{parts.path}?{parts.query}", follow_redirects=False)
        assert click.status_code == 302, click.text
        tid = next(value for name, value in click.cookies.items() if name.startswith("tl_"))
        postback = web.get(f"{server.base_url}/postback", params={"transaction_id": tid, "secure": token, **params})
        assert postback.status_code == 200, postback.text


def _create_offer(admin: Watched, advertiser_name: str) -> int:
    page = admin.page
    admin.go("/ui/offers/new")
    page.fill("input[name=name]", "Spring Sale")
    option = page.locator("select[name=advertiser_id] option", has_text=advertiser_name).first
    page.select_option("select[name=advertiser_id]", option.get_attribute("value"))
    page.select_option("select[name=visibility]", "approval_required")
    page.select_option("select[name=default_status]", "pending")
    page.fill("[name=destination_url]", "https://shop.example/land?tid={transaction_id}&s1={sub1}")
    page.select_option("select[name=revenue_type]", "cpa")
    page.fill("input[name=revenue_amount]", REVENUE)
    page.select_option("select[name=payout_type]", "cpa")
    page.fill("input[name=payout_amount]", PAYOUT)
    page.fill("input[name=cap_limit_0]", "50")
    admin.shot("admin-offer-new")
    page.click("form button.primary[type=submit]")
    page.wait_for_load_state("networkidle")
    match = re.search(r"/ui/offers/(\d+)", page.url)
    assert match, (page.url, admin.text()[:500])
    page.click("summary:has-text('Add an event')")
    events = page.locator("form[action$='/events']")
    events.locator("input[name=name]").fill("purchase")
    events.locator("select[name=revenue_type]").select_option("fixed")
    events.locator("input[name=revenue_amount]").fill("2.00")
    events.locator("select[name=payout_type]").select_option("fixed")
    events.locator("input[name=payout_amount]").fill("1.00")
    events.locator("button[type=submit]").click()
    page.wait_for_load_state("networkidle")
    assert "purchase" in admin.text()
    return int(match[1])


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_admin_partner_and_advertiser_journeys(chromium: Any, api: httpx.Client, server: RunningServer) -> None:
    adv = factories.advertiser(api, name="Acme Outdoor")
    first_partner = factories.partner(api, name="Trail Deals")
    admin = _open(chromium, server, person(server, Role.ADMIN))
    admin.go("/ui/")
    conversions_before = _kpi(admin, "Conversions")
    offer_id = _create_offer(admin, "Acme Outdoor")
    admin.shot("admin-offer")

    # The link of a partner, from the offer's link builder, opened (302) and converted by a postback.
    admin.go(f"/ui/offers/{offer_id}?partner_id={first_partner['id']}")
    builder = admin.page.locator("[data-link-builder]")
    builder.locator("input[data-link-part=sub1]").fill("spring-newsletter")
    link = builder.locator("xpath=..").locator("input[readonly]").first.input_value()
    assert "sub1=spring-newsletter" in link, link
    api.post(
        "/api/v1/offer-access", json={"offer_id": offer_id, "partner_id": first_partner["id"], "status": "approved"}
    )
    _convert(server, link, adv["postback_token"], amount="99.00")

    admin.go("/ui/conversions")
    admin.shot("admin-conversions")
    admin.page.locator("table a[href^='/ui/conversions/']").first.click()
    admin.page.wait_for_load_state("networkidle")
    assert admin.page.locator(".trace li").count() >= 3, admin.text()[:800]
    admin.shot("admin-conversion")
    admin.page.click("form[data-review-approve] button")
    admin.page.wait_for_load_state("networkidle")
    assert "approved" in admin.text().lower()

    admin.go("/ui/")
    assert _kpi(admin, "Conversions") != conversions_before
    assert admin.page.locator(".chart canvas").count() >= 1, "the dashboard chart was not drawn"
    admin.shot("admin-dashboard")

    # A partner applies, is approved, requests the offer, gets its link and sees its conversion.
    partner = _open(chromium, server)
    partner.go("/ui/sign-up")
    partner.shot("partner-sign-up")
    partner.page.fill("input[name=name]", "Peak Coupons")
    partner.page.fill("input[name=email]", "peak@coupons.example")
    partner.page.fill("input[name=password]", PASSWORD)
    partner.page.click("button[type=submit]")
    partner.page.wait_for_load_state("networkidle")
    _sign_in(partner, "peak@coupons.example")
    assert "review" in partner.text().lower()
    partner.shot("partner-pending")

    admin.go("/ui/partners")
    admin.shot("admin-partners")
    row = admin.page.locator("tr", has_text="Peak Coupons")
    row.locator("form:has(input[value=approved]) button").click()
    admin.page.wait_for_load_state("networkidle")

    partner.go("/ui/p/marketplace")
    partner.shot("partner-marketplace")
    partner.page.locator(f"form[action='/ui/p/marketplace/{offer_id}/request'] button").click()
    partner.page.wait_for_load_state("networkidle")
    new_partner_id = next(p["id"] for p in api.get("/api/v1/partners").json()["data"] if p["name"] == "Peak Coupons")
    admin.go(f"/ui/partners/{new_partner_id}")
    admin.shot("admin-partner")
    admin.page.locator("form[action^='/ui/access/']:has(input[value=approved]) button").first.click()
    admin.page.wait_for_load_state("networkidle")

    partner.go(f"/ui/p/offers/{offer_id}")
    partner_link = partner.page.input_value("#tracking-link")
    partner.shot("partner-offer")
    _convert(server, partner_link, adv["postback_token"], amount="99.00")
    partner.go("/ui/p/conversions")
    assert "Spring Sale" in partner.text()

    # Its postbacks: one gets a test (marked test in its log), another is deleted (after a confirmation).
    for name in ("sale", "old"):
        url = f"https://track.peak.example/{name}?click={{transaction_id}}&payout={{payout}}"
        factories.created(api.post("/api/v1/partner-postbacks", json={"partner_id": new_partner_id, "url": url}))
    partner.go("/ui/p/postbacks")
    partner.page.locator("tr", has_text="/sale?").locator("button:has-text('Send test')").click()
    partner.page.wait_for_load_state("networkidle")
    assert "Test sent to your URL" in partner.text() and "click=" + "0" * 32 in partner.text()
    assert partner.page.locator("td .status", has_text="test").count() == 1
    partner.shot("partner-postback")
    partner.go("/ui/p/postbacks")
    partner.page.once("dialog", lambda dialog: dialog.accept())
    partner.page.locator("tr", has_text="/old?").locator("button:has-text('Delete')").click()
    partner.page.wait_for_load_state("networkidle")
    assert "deleted" in partner.text() and "/old?" not in partner.text() and "/sale?" in partner.text()
    for path in [path for _, path in NAVIGATION[Role.PARTNER]] + [f"/ui/p/offers/{offer_id}"]:
        partner.go(path)
        text = partner.text()
        assert REVENUE not in text and "99.00" not in text, f"{path} shows the revenue or the sale amount"
        assert not re.search(r"\brevenue\b", text, re.I), f"{path} speaks of revenue"
        partner.shot("partner-" + (path.strip("/").replace("/", "-") or "home"))

    # The advertiser sees its conversions and what it owes, never payout.
    advertiser = _open(chromium, server, person(server, Role.ADVERTISER, adv["id"]))
    for path in [path for _, path in NAVIGATION[Role.ADVERTISER]]:
        advertiser.go(path)
        text = advertiser.text()
        assert PAYOUT not in text, f"{path} shows the payout"
        assert not re.search(r"\bpayout\b", text, re.I), f"{path} speaks of payout"
        advertiser.shot("advertiser-" + path.strip("/").replace("/", "-"))

    # The admin looks at the new partner's portal as the partner sees it, read-only, and comes back.
    admin.go(f"/ui/partners/{new_partner_id}")
    admin.page.click("button:has-text('View as this partner')")
    admin.page.wait_for_load_state("networkidle")
    assert "/ui/p/" in admin.page.url and "viewing as" in admin.text().lower()
    assert REVENUE not in admin.text()
    admin.shot("admin-view-as-partner")
    admin.page.click("button:has-text('Back to the admin console')")
    admin.page.wait_for_load_state("networkidle")
    assert "Dashboard" in admin.text()

    for path in [path for _, path in NAVIGATION[Role.ADMIN]]:
        admin.go(path)
        admin.shot("admin-" + (path.strip("/").replace("/", "-") or "home"))
    phone = _open(chromium, server, None, viewport={"width": 390, "height": 844}, is_mobile=True)
    _sign_in(phone, "peak@coupons.example")
    phone.shot("phone-partner-home")
    for watched in (admin, partner, advertiser, phone):
        assert watched.problems == []


def test_a_chart_shows_the_programs_days_whatever_the_browsers_zone(chromium: Any, tmp_path: Path) -> None:
    """A program in Kathmandu seen from browsers in Los Angeles (UTC-8) and on Kiritimati (UTC+14): the
    dashboard chart's last day is the program's today in both (drawn as the server labels it)."""
    with running_server(sqlite_url(tmp_path), timezone="Asia/Kathmandu") as server:
        headers = {"Authorization": f"Bearer {server.admin_key}"}
        with httpx.Client(base_url=server.base_url, headers=headers, timeout=30) as api:
            _, offer, partner = factories.program(api)
        with httpx.Client(base_url=server.base_url, headers={"User-Agent": BROWSER_UA}, timeout=30) as web:
            factories.click(web, offer["id"], partner["id"])
        today = datetime.now(ZoneInfo("Asia/Kathmandu")).date().isoformat()
        email = person(server, Role.ADMIN)
        for zone in ("America/Los_Angeles", "Pacific/Kiritimati"):
            admin = _open(chromium, server, email, timezone_id=zone)
            admin.go("/ui/")
            plot = admin.page.locator(".chart .u-over").first.bounding_box()
            assert plot is not None
            admin.page.mouse.move(plot["x"] + plot["width"] - 1, plot["y"] + plot["height"] / 2)
            shown = admin.page.locator(".chart .u-legend .u-series").first.locator(".u-value").inner_text()
            assert shown == today, (zone, shown)
            assert admin.problems == []


def test_the_admin_reviews_advertiser_sign_ups_in_the_console(chromium: Any, server: RunningServer) -> None:
    with httpx.Client(base_url=server.base_url) as public:
        for name, email in (("Acme Outdoor", "ada@acme.example"), ("Shady Deals", "x@shady.example")):
            body = {"name": name, "email": email, "contact_name": name.split()[0] + " Contact"}
            factories.created(public.post("/api/v1/advertiser-signups", json=body))
    admin = _open(chromium, server, person(server, Role.ADMIN))
    admin.go("/ui/advertisers")
    queue = admin.page.locator("section.attention")
    assert "Sign-ups waiting for review (2)" in queue.inner_text()
    assert "Acme Contact · ada@acme.example" in queue.inner_text()
    admin.shot("admin-advertiser-signups")

    shady = queue.locator("tr", has_text="Shady Deals")
    shady.locator("input[name=reason]").fill("no website")
    shady.locator("button.danger").click()
    admin.page.wait_for_load_state("networkidle")
    assert "Shady Deals is rejected." in admin.text()

    admin.page.locator("section.attention a", has_text="Acme Outdoor").click()
    admin.page.wait_for_load_state("networkidle")
    assert "waits for review" in admin.text()
    assert admin.page.locator("select[name=status]").input_value() == "pending", "saving must not approve it"
    admin.shot("admin-advertiser-pending")
    admin.page.locator("section.attention button.primary").click()
    admin.page.wait_for_load_state("networkidle")
    assert "Acme Outdoor is active. Send its contact an invitation from Users." in admin.text()
    admin.go("/ui/advertisers")
    assert admin.page.locator("section.attention").count() == 0, "nobody waits any more"
    statuses = {r.locator("td").nth(1).inner_text(): r.locator("td").nth(2).inner_text()
                for r in admin.page.locator("tbody tr").all()}  # fmt: skip
    assert statuses == {"Acme Outdoor": "active", "Shady Deals": "rejected"}, statuses
    assert admin.problems == []


def test_the_admin_refunds_part_of_a_conversion_in_the_console(
    chromium: Any, api: httpx.Client, server: RunningServer
) -> None:
    adv, offer, partner = factories.program(api, revenue={"type": "cpa_cps", "amount": "2.00", "percent": "10"},
                                            payout={"type": "cps", "percent": "5"})  # fmt: skip
    with httpx.Client(base_url=server.base_url, headers={"User-Agent": BROWSER_UA}) as visitor:
        tid = factories.click(visitor, offer["id"], partner["id"])
        answer = visitor.get("/postback", params={"transaction_id": tid, "secure": adv["postback_token"],
                                                  "amount": "30.00"}).json()  # fmt: skip
    admin = _open(chromium, server, person(server, Role.ADMIN))
    admin.go(f"/ui/conversions/{answer['conversion_id']}")
    form = admin.page.locator("form[data-adjustment]")
    form.locator("input[name=refund]").fill("10.00")
    form.locator("input[name=reason]").fill("ITEM_RETURNED: one of three items")
    form.locator("button[type=submit]").click()
    admin.page.wait_for_load_state("networkidle")
    text = admin.text()
    assert f"Conversion #{answer['conversion_id']} adjusted." in text
    assert "sale amount 30.00 -> 20.00 (refund of 10.00)" in text and "adjusted 5.00 -> 4.00" in text, text[-1500:]
    assert "adjusted 1.50 -> 1.00" in text
    admin.shot("admin-conversion-adjusted")
    shown = api.get(f"/api/v1/conversions/{answer['conversion_id']}").json()
    money = (shown["status"], shown["amount"], shown["revenue"], shown["payout"])
    assert money == ("approved", "20.00", "4.00", "1.00")

    reject = admin.page.locator("form.reject")
    reject.locator("select[name=reason_code]").select_option("ITEM_RETURNED")
    reject.locator("input[name=reason]").fill("the rest came back")
    reject.locator("button[type=submit]").click()
    admin.page.wait_for_load_state("networkidle")
    assert f"Conversion #{answer['conversion_id']} is rejected." in admin.text()
    assert "approved -> rejected (reversed) by" in admin.text() and "ITEM_RETURNED: the rest came back" in admin.text()
    admin.shot("admin-conversion-reversed")
    assert admin.problems == []


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_the_admin_blocks_and_optimizes_traffic_in_the_console(
    chromium: Any, api: httpx.Client, server: RunningServer
) -> None:
    adv, offer, partner = factories.program(api, fallback_url="https://fallback.example/")
    with httpx.Client(base_url=server.base_url, headers={"User-Agent": BROWSER_UA}) as visitor:
        for n in range(12):
            factories.click(visitor, offer["id"], partner["id"], sub1="popunder")
            tid = factories.click(visitor, offer["id"], partner["id"], sub1="newsletter")
            if n < 4:
                visitor.get("/postback", params={"transaction_id": tid, "secure": adv["postback_token"]})
    admin = _open(chromium, server, person(server, Role.ADMIN))
    admin.go("/ui/traffic")
    assert "No traffic rules yet." in admin.text()
    admin.shot("admin-traffic-empty")

    block = admin.page.locator("form", has=admin.page.locator("input[name=kind][value=block]"))
    block.locator("input[name=name]").fill("Known scrapers")
    block.locator("select[name=variable]").select_option("source_id")
    block.locator("textarea[name=values]").fill("scraper-net\nbulk-clicks")
    block.locator("button[type=submit]").click()
    admin.page.wait_for_load_state("networkidle")
    assert "Block list #1 added" in admin.text()

    optimize = admin.page.locator("form", has=admin.page.locator("input[name=kind][value=optimize]"))
    optimize.locator("select[name=offer_id]").select_option(str(offer["id"]))
    optimize.locator("input[name=cvr_below_percent]").fill("150")
    optimize.locator("input[name=min_clicks]").fill("10")
    optimize.locator("button[type=submit]").click()
    admin.page.wait_for_load_state("networkidle")
    assert "cvr_below_percent: must be over 0 and at most 100" in admin.text(), "the refusal names the field"
    optimize = admin.page.locator("form", has=admin.page.locator("input[name=kind][value=optimize]"))
    assert optimize.locator("input[name=min_clicks]").input_value() == "10", "what was typed is kept"
    optimize.locator("input[name=name]").fill("Weak placements")
    optimize.locator("input[name=cvr_below_percent]").fill("5")
    optimize.locator("button[type=submit]").click()
    admin.page.wait_for_load_state("networkidle")
    assert "Optimization rule #2 added" in admin.text()

    admin.page.locator("tr", has_text="Weak placements").locator("button", has_text="Evaluate now").click()
    admin.page.wait_for_load_state("networkidle")
    assert "Rule #2 evaluated: blocked sub1 'popunder'." in admin.text()
    row = admin.page.locator("tr", has_text="popunder")
    cells = [c.inner_text() for c in row.locator("td").all()]
    named = [f"{offer['name']} (#{offer['id']})", f"{partner['name']} (#{partner['id']})"]
    assert cells[1:6] == [*named, "12", "0", "0.00 %"], cells
    admin.shot("admin-traffic")
    partner_page = _open(chromium, server, person(server, Role.PARTNER, partner["id"]))
    partner_page.go("/ui/p/")
    turned_away = partner_page.page.locator("section", has_text="Traffic turned away (1)")
    assert "popunder" in turned_away.inner_text() and "0.00 %" in turned_away.inner_text()
    partner_page.shot("partner-home-blocked")
    assert partner_page.problems == []
    with httpx.Client(base_url=server.base_url, headers={"User-Agent": BROWSER_UA}) as visitor:
        turned = visitor.get(f"/r/{offer['id']}/{partner['id']}", params={"sub1": "popunder"})
        assert turned.headers["location"] == "https://fallback.example/"

    row.locator("input[name=reason]").fill("placement reviewed with the partner")
    row.locator("button", has_text="Lift").click()
    admin.page.wait_for_load_state("networkidle")
    assert "sub1 'popunder' goes through again" in admin.text()
    assert "stays lifted" in admin.page.locator("tr", has_text="popunder").inner_text()
    admin.page.locator("tr", has_text="Known scrapers").locator("button", has_text="Pause").click()
    admin.page.wait_for_load_state("networkidle")
    assert "Rule #1 is paused." in admin.text()
    admin.shot("admin-traffic-lifted")
    refused = "console error: Failed to load resource: the server responded with a status of 400 (Bad Request)"
    assert admin.problems == [refused], "the refused form, and nothing else"


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_the_admin_sets_an_offers_targeting_in_the_console(
    chromium: Any, api: httpx.Client, server: RunningServer
) -> None:
    _, offer, _ = factories.program(api)
    admin = _open(chromium, server, person(server, Role.ADMIN))
    admin.go(f"/ui/offers/{offer['id']}")
    admin.page.fill("input[name=target_countries]", "np, JP")
    admin.page.check("input[name=target_device_types][value=mobile]")
    admin.page.fill("input[name=target_operating_systems]", "iOS, Android")
    admin.page.select_option("select[name=rule_field_0]", "sub1")
    admin.page.select_option("select[name=rule_match_0]", "contains")
    admin.page.fill("input[name=rule_values_0]", "spam, incent")
    admin.page.select_option("select[name=rule_field_1]", "source_id")
    admin.page.select_option("select[name=rule_action_1]", "allow")
    admin.page.fill("input[name=rule_values_1]", "newsletter")
    admin.page.locator("form", has=admin.page.locator("input[name=target_countries]")).locator(
        "button[type=submit]"
    ).first.click()
    admin.page.wait_for_load_state("networkidle")
    assert "Offer saved." in admin.text()
    targeting = api.get(f"/api/v1/offers/{offer['id']}").json()["targeting"]
    assert targeting == {
        "countries": ["NP", "JP"], "device_types": ["mobile"], "operating_systems": ["iOS", "Android"],
        "browsers": [], "rules": [
            {"field": "sub1", "action": "block", "match": "contains", "values": ["spam", "incent"]},
            {"field": "source_id", "action": "allow", "match": "exact", "values": ["newsletter"]},
        ],
    }  # fmt: skip
    assert admin.page.input_value("input[name=target_countries]") == "NP, JP", "the form shows what is saved"
    admin.page.locator("fieldset", has_text="Targeting").screenshot(path=str(SCREENSHOTS / "admin-offer-targeting.png"))

    admin.page.fill("input[name=target_countries]", "Nepal")
    admin.page.locator("form", has=admin.page.locator("input[name=target_countries]")).locator(
        "button[type=submit]"
    ).first.click()
    admin.page.wait_for_load_state("networkidle")
    assert "targeting.countries[0]" in admin.text(), "the refusal names the list"
    assert admin.page.input_value("input[name=target_countries]") == "Nepal", "what was typed is kept"
    assert api.get(f"/api/v1/offers/{offer['id']}").json()["targeting"]["countries"] == ["NP", "JP"]


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_the_admin_imports_offline_conversions_from_a_csv_file_in_the_console(
    chromium: Any, api: httpx.Client, server: RunningServer
) -> None:
    _, offer, partner = factories.program(api)
    with httpx.Client(base_url=server.base_url, headers={"User-Agent": BROWSER_UA}) as visitor:
        good = factories.click(visitor, offer["id"], partner["id"])
    sales = f"transaction_id,amount,order_id\n{good},49.90,ORD-1\n{'0' * 32},10.00,ORD-2\n{good},abc,ORD-3\n"
    admin = _open(chromium, server, person(server, Role.ADMIN))
    admin.go("/ui/conversions")
    admin.page.locator("a", has_text="Import CSV").click()
    admin.page.wait_for_load_state("networkidle")
    upload = {"name": "offline-sales.csv", "mimeType": "text/csv", "buffer": sales.encode()}
    admin.page.set_input_files("input[name=file]", files=[upload])
    admin.page.locator("button", has_text="Import").click()
    admin.page.wait_for_load_state("networkidle")
    text = admin.text()
    assert (
        "Dry run of offline-sales.csv" in text
        and "3 rows: would record 1, 0 already recorded before, 2 refused" in text
    )
    assert "unknown_transaction" in text and "invalid_parameter" in text, text
    assert api.get("/api/v1/conversions").json()["data"] == [], "a dry run writes nothing"
    admin.shot("admin-import-dry-run")

    admin.page.set_input_files("input[name=file]", files=[upload])
    admin.page.uncheck("input[name=dry_run]")
    admin.page.locator("button", has_text="Import").click()
    admin.page.wait_for_load_state("networkidle")
    assert "Imported offline-sales.csv" in admin.text() and "recorded 1," in admin.text()
    (recorded,) = api.get("/api/v1/conversions").json()["data"]
    assert (recorded["transaction_id"], recorded["amount"], recorded["origin"]) == (good, "49.90", "api")
    admin.shot("admin-import-done")
    assert admin.problems == []
