"""The browser SDK (`/sdk.js`) in the system Chromium against a real Tracklane server, on an advertiser's
site served from another loopback host (127.0.0.2: another site, so its cookies are first-party there and
the tracking server's are third-party): a direct link without a redirect makes the click and keeps it in the
site's cookie, and a purchase converts it, under a strict Content-Security-Policy with no console error; a
page written for Everflow's SDK works with only its script URL changed; a redirect link's landing page
converts by the `{click_token}` its destination carried, and only by it."""

from __future__ import annotations

import os
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from tests import factories
from tests.servers import RunningServer, running_server, sqlite_url
from tracklane.web import sdk

CHROMIUM = "/usr/bin/chromium"
BROWSER_REQUIRED = os.environ.get("TRACKLANE_TEST_BROWSER") == "required"  # read before the environment is cleaned
BROWSER_UA = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36"
SHOP_HOST = "127.0.0.2"  # the advertiser's site: loopback, but another host (and site) than the server's
NONCE = "c2hvcC1ub25jZS0x"


def strict_csp(connect: str) -> str:
    """A strict policy: nonce'd scripts only, requests only to `connect`, nothing else at all."""
    return (
        f"default-src 'none'; script-src 'nonce-{NONCE}' 'strict-dynamic'; connect-src {connect}; "
        "img-src 'none'; style-src 'none'; font-src 'none'; frame-src 'none'; base-uri 'none'; "
        "object-src 'none'; form-action 'none'; frame-ancestors 'none'; "
        "require-trusted-types-for 'script'; trusted-types 'none'"
    )


@dataclass
class Shop:
    """The advertiser's site: pages by path, each with its own Content-Security-Policy (or none)."""

    url: str
    pages: dict[str, tuple[str, str | None]] = field(default_factory=dict)
    requests: list[str] = field(default_factory=list)

    def page(self, path: str, html: str, csp: str | None = None) -> str:
        self.pages[path] = (html, csp)
        return self.url + path


def _handler(shop: Shop) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            shop.requests.append(self.path)
            path = urlsplit(self.path).path
            if path not in shop.pages:
                self.send_response(204 if path == "/favicon.ico" else 404)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            html, csp = shop.pages[path]
            body = html.encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            if csp:
                self.send_header("Content-Security-Policy", csp)
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            return None

    return Handler


@pytest.fixture
def shop() -> Iterator[Shop]:
    site = Shop("")
    httpd = ThreadingHTTPServer((SHOP_HOST, 0), _handler(site))
    site.url = f"http://{SHOP_HOST}:{httpd.server_address[1]}"
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield site
    finally:
        httpd.shutdown()
        httpd.server_close()


@pytest.fixture
def tracker(tmp_path: Path) -> Iterator[tuple[RunningServer, httpx.Client]]:
    with (
        running_server(sqlite_url(tmp_path)) as server,
        httpx.Client(
            base_url=server.base_url, headers={"Authorization": f"Bearer {server.admin_key}"}, timeout=30
        ) as admin,
    ):
        yield server, admin


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    if not shutil.which(CHROMIUM):
        assert not BROWSER_REQUIRED, f"{CHROMIUM} is required"
        pytest.skip(f"the SDK is checked in the system Chromium; install it at {CHROMIUM}")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
        yield browser
        browser.close()


#: Every CSP violation is also reported as a console error (Chromium reports most, not all, by itself).
WATCH_CSP = """document.addEventListener("securitypolicyviolation", function (e) {
  console.error("CSP violation: " + e.violatedDirective + " " + e.blockedURI);
});"""


class Visitor:
    """One browser profile on the shop; its console errors, page errors and failed requests are collected."""

    def __init__(self, browser: Any) -> None:
        self.context = browser.new_context(user_agent=BROWSER_UA)
        self.context.add_init_script(WATCH_CSP)
        self.page = self.context.new_page()
        self.problems: list[str] = []
        page = self.page
        page.on("console", lambda m: self.problems.append(f"console: {m.text}") if m.type == "error" else None)
        page.on("pageerror", lambda e: self.problems.append(f"page error: {e}"))
        page.on("requestfailed", lambda r: self.problems.append(f"failed: {r.url} {r.failure}"))
        page.on("response", lambda r: self.problems.append(f"{r.status}: {r.url}") if r.status >= 400 else None)

    def go(self, url: str) -> None:
        self.page.goto(url)
        self.page.wait_for_load_state("load")

    def wait_for(self, expression: str) -> Any:
        """The value of a page expression once it is set (the page's own scripts set it)."""
        self.page.wait_for_function(f"() => {expression} !== undefined", timeout=15000)
        return self.page.evaluate(expression)

    def cookies(self, url: str) -> dict[str, dict[str, Any]]:
        return {c["name"]: c for c in self.context.cookies(url)}

    def close(self) -> None:
        self.context.close()


@pytest.fixture
def visitor(chromium: Any) -> Iterator[Visitor]:
    watched = Visitor(chromium)
    yield watched
    watched.close()


def _eventually(read: Callable[[], list[dict[str, Any]]], count: int = 1) -> list[dict[str, Any]]:
    deadline = time.monotonic() + 15
    while True:
        found = read()
        if len(found) >= count or time.monotonic() > deadline:
            return found
        time.sleep(0.1)


def _listed(admin: httpx.Client, resource: str, **params: Any) -> list[dict[str, Any]]:
    response = admin.get(f"/api/v1/{resource}", params=params)
    assert response.status_code == 200, response.text
    data: list[dict[str, Any]] = response.json()["data"]
    return data


NATIVE_LANDING = """<!doctype html><meta charset=utf-8><title>Spring sale</title><h1>Spring sale</h1>
<script nonce="%(nonce)s" src="%(server)s/sdk.js?v=%(version)s" data-auto-click></script>"""

NATIVE_THANKS = """<!doctype html><meta charset=utf-8><title>Thank you</title><h1>Thank you</h1>
<script nonce="%(nonce)s" src="%(server)s/sdk.js?v=%(version)s"></script>
<script nonce="%(nonce)s">
Tracklane.conversion({offer_id: %(offer_id)d, amount: "49.90", order_id: "A-1001", adv1: "spring"})
  .then(function (sent) { window.converted = sent; });
window.referrer = {type: "tracklane", id: Tracklane.getTransactionId(%(offer_id)d)};
</script>"""


def test_direct_link_click_then_purchase_under_a_strict_csp(
    tracker: tuple[RunningServer, httpx.Client], shop: Shop, visitor: Visitor
) -> None:
    """No redirect: the landing URL's offer, partner and sub ids make the click (`/clk`), kept in the shop's
    first-party cookie for the offer's attribution window; the thank-you page's purchase converts that click
    with its amount; nothing is refused by the strict CSP and no console error is logged."""
    server, admin = tracker
    _, offer, partner = factories.program(admin, attribution_window_days=7)
    fill = {"nonce": NONCE, "server": server.base_url, "version": sdk.VERSION, "offer_id": offer["id"]}
    csp = strict_csp(server.base_url)
    landing = shop.page("/land", NATIVE_LANDING % fill, csp)
    thanks = shop.page("/thanks", NATIVE_THANKS % fill, csp)

    visitor.go(f"{landing}?offer_id={offer['id']}&partner_id={partner['id']}&sub1=spring-ad&sub2=feed%201")
    tid = visitor.page.evaluate("Tracklane.ready")
    assert visitor.page.evaluate("Tracklane.version") == sdk.VERSION
    [click] = _listed(admin, "clicks", offer_id=offer["id"])
    assert click["transaction_id"] == tid
    assert (click["partner_id"], click["sub1"], click["sub2"], click["verdict"], click["is_bot"]) == (
        partner["id"],
        "spring-ad",
        "feed 1",
        "accepted",
        False,
    )
    kept = visitor.cookies(shop.url)
    cookie = kept[f"tl_{offer['id']}"]
    assert cookie["value"].startswith(f"{tid}.") and len(cookie["value"]) == 32 + 1 + 32  # the click token
    assert (cookie["sameSite"], cookie["secure"], cookie["httpOnly"], cookie["path"]) == ("Lax", False, False, "/")
    assert 6.9 * 86400 < cookie["expires"] - time.time() <= 7 * 86400  # the offer's attribution window
    assert kept["tl_last"]["value"] == str(offer["id"])
    assert visitor.cookies(server.base_url) == {}  # /clk is called without credentials: nothing on the server

    visitor.go(thanks)
    sent = visitor.wait_for("window.converted")
    assert sent == {"offer_id": str(offer["id"]), "transaction_id": tid, "sent": True}
    assert visitor.page.evaluate("window.referrer") == {"type": "tracklane", "id": tid}
    [conversion] = _eventually(lambda: _listed(admin, "conversions", transaction_id=tid))
    assert (conversion["offer_id"], conversion["partner_id"], conversion["event_id"]) == (
        offer["id"],
        partner["id"],
        None,
    )
    assert (conversion["amount"], conversion["order_id"], conversion["origin"], conversion["status"]) == (
        "49.90",
        "A-1001",
        "sdk",
        "approved",
    )
    steps = {s["step"]: s["outcome"] for s in conversion["trace"]}
    assert (steps["click_token"], steps["method"]) == ("valid", "sdk")
    assert visitor.problems == []


EVERFLOW_LANDING = """<!doctype html><html><head><meta charset="utf-8"><title>Landing</title></head><body>
<h1>Try it free</h1>
<script type="text/javascript" src="%(server)s/sdk.js"></script>
<script type="text/javascript">
EF.click({
    offer_id: EF.urlParameter('oid'),
    affiliate_id: EF.urlParameter('affid'),
    sub1: EF.urlParameter('sub1'),
    sub2: EF.urlParameter('sub2'),
    sub3: EF.urlParameter('sub3'),
    sub4: EF.urlParameter('sub4'),
    sub5: EF.urlParameter('sub5'),
    uid: EF.urlParameter('uid'),
    source_id: EF.urlParameter('source_id'),
    transaction_id: EF.urlParameter('_ef_transaction_id'),
}).then(function (transactionId) {
    window.landed = transactionId;
});
</script>
</body></html>"""

EVERFLOW_CONVERSION = """<!doctype html><html><head><meta charset="utf-8"><title>Order confirmed</title></head>
<body><h1>Order confirmed</h1>
<script type="text/javascript" src="%(server)s/sdk.js"></script>
<script type="text/javascript">
EF.conversion({
    %(whose)s,
    amount: %(amount)s,
    order_id: '%(order_id)s',
    adv1: 'coupon-spring',
}).then(function (result) {
    window.converted = result;
});
window.segmentContext = {
    referrer: {type: "everflow", id: EF.getAdvertiserTransactionId(%(advertiser_id)d)},
    offerTransactionId: EF.getTransactionId(%(offer_id)d),
};
</script>
</body></html>"""


def test_a_page_written_for_everflows_sdk_works_with_only_the_script_url_changed(
    tracker: tuple[RunningServer, httpx.Client], shop: Shop, visitor: Visitor
) -> None:
    """Everflow's own snippets (`EF.click` from `oid`/`affid`/`sub1..` on the landing URL; `EF.conversion`
    by advertiser `aid`; `EF.getAdvertiserTransactionId` for Segment's `context.referrer.id`)."""
    server, admin = tracker
    adv, offer, partner = factories.program(admin)
    fill = {"server": server.base_url, "advertiser_id": adv["id"], "offer_id": offer["id"], "amount": "25.5",
            "order_id": "EF-1001", "whose": f"aid: {adv['id']}"}  # fmt: skip
    landing = shop.page("/try", EVERFLOW_LANDING % fill)
    confirmed = shop.page("/confirmed", EVERFLOW_CONVERSION % fill)

    visitor.go(f"{landing}?oid={offer['id']}&affid={partner['id']}&sub1=fb-campaign&source_id=meta")
    tid = visitor.wait_for("window.landed")
    [click] = _listed(admin, "clicks", offer_id=offer["id"])
    assert (click["transaction_id"], click["partner_id"], click["sub1"], click["source_id"]) == (
        tid,
        partner["id"],
        "fb-campaign",
        "meta",
    )
    assert visitor.page.evaluate("EF.urlParameter('sub1')") == "fb-campaign"
    assert visitor.page.evaluate("EF.urlParameter('nothing')") == ""

    visitor.go(confirmed)
    assert visitor.wait_for("window.converted") == {"conversion_id": "", "transaction_id": tid}
    context = visitor.page.evaluate("window.segmentContext")
    assert context == {"referrer": {"type": "everflow", "id": tid}, "offerTransactionId": tid}
    [conversion] = _eventually(lambda: _listed(admin, "conversions", transaction_id=tid))
    assert (conversion["amount"], conversion["order_id"], conversion["adv1"], conversion["origin"]) == (
        "25.50",
        "EF-1001",
        "coupon-spring",
        "sdk",
    )
    assert len(_listed(admin, "clicks", offer_id=offer["id"])) == 1
    assert visitor.problems == []


def test_a_redirect_links_landing_page_converts_by_the_click_token_it_carried(
    tracker: tuple[RunningServer, httpx.Client], shop: Shop, visitor: Visitor
) -> None:
    """A tracking link whose destination carries `{transaction_id}` and `{click_token}`: the Everflow page
    keeps that click (no second one) and its conversion is recorded. Where the destination carries only the
    transaction id, the SDK's conversion is sent but converts nothing: a bare transaction id proves nothing,
    and the tracking server's own cookie is third-party there."""
    server, admin = tracker
    adv = factories.advertiser(admin)
    partner = factories.partner(admin)
    land = f"{shop.url}/try?oid={{offer_id}}&_ef_transaction_id={{transaction_id}}"
    with_token = factories.offer(admin, adv["id"], destination_url=land + "&tl_ct={click_token}")
    bare = factories.offer(admin, adv["id"], destination_url=land)
    shop.page("/try", EVERFLOW_LANDING % {"server": server.base_url})
    transactions = {}
    for offer in (with_token, bare):
        fill = {"server": server.base_url, "advertiser_id": adv["id"], "offer_id": offer["id"], "amount": "'80.00'",
                "order_id": f"R-{offer['id']}", "whose": f"offer_id: {offer['id']}"}  # fmt: skip
        confirmed = shop.page(f"/confirmed-{offer['id']}", EVERFLOW_CONVERSION % fill)
        visitor.go(f"{server.base_url}/r/{offer['id']}/{partner['id']}")
        assert visitor.page.url.startswith(f"{shop.url}/try?")
        transactions[offer["id"]] = tid = visitor.wait_for("window.landed")
        [click] = _listed(admin, "clicks", offer_id=offer["id"])
        assert click["transaction_id"] == tid
        visitor.go(confirmed)
        assert visitor.wait_for("window.converted") == {"conversion_id": "", "transaction_id": tid}
    [converted] = _eventually(lambda: _listed(admin, "conversions", transaction_id=transactions[with_token["id"]]))
    assert (converted["amount"], converted["order_id"], converted["origin"]) == (
        "80.00",
        f"R-{with_token['id']}",
        "sdk",
    )
    # the pixel answers once its conversion is decided (a refusal writes nothing), and the page saw the answer
    assert _listed(admin, "conversions", transaction_id=transactions[bare["id"]]) == []
    assert visitor.problems == []


def test_the_csp_watch_sees_a_request_the_policy_refuses(
    tracker: tuple[RunningServer, httpx.Client], shop: Shop, visitor: Visitor
) -> None:
    """The control for the strict-CSP test: where the policy does not allow the server in connect-src, the
    refusal is seen (so an SDK that broke the policy would be seen too); the SDK records nothing and throws
    nothing at the page."""
    server, admin = tracker
    _, offer, partner = factories.program(admin)
    fill = {"nonce": NONCE, "server": server.base_url, "version": sdk.VERSION}
    landing = shop.page("/land", NATIVE_LANDING % fill, strict_csp("'self'"))
    visitor.go(f"{landing}?offer_id={offer['id']}&partner_id={partner['id']}")
    assert visitor.page.evaluate("Tracklane.ready") is None
    assert any("connect-src" in problem for problem in visitor.problems), visitor.problems
    assert not any(problem.startswith("page error") for problem in visitor.problems)
    assert _listed(admin, "clicks", offer_id=offer["id"]) == []
