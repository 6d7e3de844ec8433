"""analytics.js (@segment/analytics-next from npm) on a shop page in headless Chromium, with its cdnURL and
apiHost pointing at a real Tracklane server on another origin: it loads its settings from Tracklane, its
preflighted cross-origin posts succeed, and a page with the click id plus an Order Completed become a
conversion attributed to that click."""

from __future__ import annotations

import functools
import os
import shutil
import threading
import time
from collections.abc import Iterator
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests import factories
from tests.segment_support import RequestLog, conversions, customers, messages, source
from tests.servers import running_server, sqlite_url

CHROMIUM = "/usr/bin/chromium"
BROWSER_REQUIRED = os.environ.get("TRACKLANE_TEST_BROWSER") == "required"  # read before the environment is cleaned
PAGE = """<!doctype html><meta charset=utf-8><title>Shop</title><h1>Shop</h1>
<script>window.analytics = {_cdn: "%(server)s"};</script>
<script src="/analytics-next.js"></script>
<script>
window.shop = async function (writeKey) {
  const [analytics] = await AnalyticsNext.AnalyticsBrowser.load(
    {writeKey: writeKey, cdnURL: "%(server)s"},
    {integrations: {"Segment.io": {apiHost: "%(api_host)s", protocol: "http"}}});
  await analytics.page("Landing");
  await analytics.identify("user-browser", {email: "b@example.com"});
  await analytics.track("Order Completed", {order_id: "B-1", revenue: 12.5, currency: "USD"});
  return analytics.user().anonymousId();
};
</script>"""


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        return None


@pytest.fixture
def shop_site(tmp_path: Path, node_clients: Path) -> Iterator[tuple[Path, str]]:
    """A static shop site on its own loopback origin, serving the published analytics-next browser bundle."""
    site = tmp_path / "site"
    site.mkdir()
    shutil.copy(node_clients / "node_modules/@segment/analytics-next/dist/umd/index.js", site / "analytics-next.js")
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_QuietHandler, directory=str(site)))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield site, f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


@pytest.mark.parametrize("ajs_params", [False, True], ids=["plain", "ajs-query-string"])
def test_analytics_next_in_chromium(
    shop_site: tuple[Path, str], node_clients: Path, tmp_path: Path, ajs_params: bool
) -> None:
    """With `ajs_` parameters in the URL analytics.js loads a chunk from its cdnURL (served by Tracklane from
    TRACKLANE_SEGMENT_BROWSER_BUNDLES) and tracks the event they name."""
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        assert not BROWSER_REQUIRED, f"{CHROMIUM} is required"
        pytest.skip(f"analytics.js runs in the system Chromium; install it at {CHROMIUM}")
    site, shop_url = shop_site
    logs: list[RequestLog] = []

    def wrap(app: Any) -> RequestLog:
        logs.append(RequestLog(app))
        return logs[-1]

    bundles = node_clients / "node_modules/@segment/analytics-next/dist/umd"
    with (
        running_server(sqlite_url(tmp_path), wrap=wrap, segment_browser_bundles=str(bundles)) as server,
        httpx.Client(
            base_url=server.base_url, headers={"Authorization": f"Bearer {server.admin_key}"}, timeout=30
        ) as admin,
    ):
        log = logs[0]
        host = server.base_url.removeprefix("http://")
        (site / "land.html").write_text(PAGE % {"server": server.base_url, "api_host": f"{host}/v1"})
        adv, offer, partner = factories.program(admin)
        tid = factories.click(admin, offer["id"], partner["id"])
        src = source(admin, adv["id"])
        query = f"tl_tid={tid}&utm_source=partner" + (
            "&ajs_event=Promo%20Viewed&ajs_prop_promo=spring" if ajs_params else ""
        )
        failures: list[str] = []
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
            try:
                page = browser.new_page()
                page.on("requestfailed", lambda r: failures.append(f"{r.url} {r.failure}"))
                page.on("response", lambda r: failures.append(f"{r.url} {r.status}") if r.status >= 400 else None)
                page.on("pageerror", lambda e: failures.append(str(e)))
                page.goto(f"{shop_url}/land.html?{query}")
                anonymous_id = page.evaluate("writeKey => window.shop(writeKey)", src["write_key"])
                stored = _wait_for(admin, src["id"], 4 if ajs_params else 3)
                page.close()
            finally:
                browser.close()
        assert failures == []
        expected = ["identify", "page", "track", "track"] if ajs_params else ["identify", "page", "track"]
        assert sorted(m["type"] for m in stored) == expected
        assert all(m["message_id"].startswith("ajs-next-") and m["anonymous_id"] == anonymous_id for m in stored)
        assert all(m["payload"]["context"]["ip"] == "127.0.0.1" for m in stored)  # filled for browser traffic
        landing = next(m for m in stored if m["type"] == "page")["payload"]["context"]["page"]["url"]
        assert f"tl_tid={tid}" in landing
        [conversion] = conversions(admin, transaction_id=tid)
        assert (conversion["amount"], conversion["order_id"], conversion["origin"]) == ("12.50", "B-1", "segment")
        [person] = customers(admin, source_id=src["id"])
        assert (person["user_id"], person["transaction_id"], person["traits"]) == (
            "user-browser",
            tid,
            {"email": "b@example.com"},
        )
        paths = [(method, path) for method, path, _ in log.requests if not path.startswith("/api/")]
        assert ("GET", f"/v1/projects/{src['write_key']}/settings") in paths
        posts = sorted(p for m, p in paths if m == "POST")
        assert posts == (["/v1/i", "/v1/p", "/v1/t", "/v1/t"] if ajs_params else ["/v1/i", "/v1/p", "/v1/t"])
        chunks = [p for m, p in paths if p.startswith("/analytics-next/bundles/")]
        assert bool(chunks) == ajs_params
        assert all(status < 400 for _, _, status in log.requests)
        if ajs_params:
            promo = next(m for m in stored if m["event"] == "Promo Viewed")
            assert promo["payload"]["properties"] == {"promo": "spring"}


def _wait_for(admin: httpx.Client, source_id: int, count: int) -> list[dict[str, Any]]:
    deadline = time.monotonic() + 20
    while True:
        stored = messages(admin, source_id)
        if len(stored) >= count or time.monotonic() > deadline:
            return stored
        time.sleep(0.1)


BATCHING_PAGE = """<!doctype html><meta charset=utf-8><title>Shop</title>
<script src="/analytics-next.js"></script>
<script>
window.shop = async function (writeKey) {
  const [analytics] = await AnalyticsNext.AnalyticsBrowser.load(
    {writeKey: writeKey, cdnURL: "%(server)s"},
    {integrations: {"Segment.io": {apiHost: "%(api_host)s", protocol: "http",
                                   deliveryStrategy: {strategy: "batching", config: {size: 3, timeout: 200}}}}});
  analytics.track("Before", {n: 1});
  analytics.track("Cut", {title: "Party \\ud83c\\udf89".slice(0, 7)});  // cut inside the emoji: a lone surrogate
  analytics.track("After", {n: 2});
};
</script>"""


def test_analytics_next_batch_with_a_cut_emoji(shop_site: tuple[Path, str], node_clients: Path, tmp_path: Path) -> None:
    """In batching mode analytics.js sends the three events in one `/v1/b`; the one whose string was cut in
    the middle of an emoji is refused and recorded, the two others are stored, and the batch is answered 200
    (so the browser does not retry it forever)."""
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        assert not BROWSER_REQUIRED, f"{CHROMIUM} is required"
        pytest.skip(f"analytics.js runs in the system Chromium; install it at {CHROMIUM}")
    site, shop_url = shop_site
    logs: list[RequestLog] = []

    def wrap(app: Any) -> RequestLog:
        logs.append(RequestLog(app))
        return logs[-1]

    with (
        running_server(sqlite_url(tmp_path), wrap=wrap) as server,
        httpx.Client(
            base_url=server.base_url, headers={"Authorization": f"Bearer {server.admin_key}"}, timeout=30
        ) as admin,
    ):
        host = server.base_url.removeprefix("http://")
        (site / "batch.html").write_text(BATCHING_PAGE % {"server": server.base_url, "api_host": f"{host}/v1"})
        src = source(admin, factories.advertiser(admin)["id"])
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
            try:
                page = browser.new_page()
                page.goto(f"{shop_url}/batch.html")
                page.evaluate("writeKey => window.shop(writeKey)", src["write_key"])
                stored = _wait_for(admin, src["id"], 3)
                page.close()
            finally:
                browser.close()
        assert sorted(m["event"] for m in stored if m["outcome"] != "refused") == ["After", "Before"]
        [refused] = [m for m in stored if m["outcome"] == "refused"]
        assert refused["detail"].startswith("invalid_message: properties.title: is not valid Unicode")
        assert '"event":"Cut"' in refused["payload"]["raw"]
        assert [(path, status) for _, path, status in logs[0].posts()] == [("/v1/b", 200)]
