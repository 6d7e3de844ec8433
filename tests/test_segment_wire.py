"""Segment wire behaviour found with the real clients, each through a real Tracklane server on loopback:
client routes under any path prefix (analytics-node's `path`, analytics-python's host) without shadowing
Tracklane's own routes, batch-level `context` and `integrations` merged into each event, the snippet's
queued calls sent by the standalone build in Chromium, an app's explicit `timestamp` kept (rudder-sdk-node),
and events Segment itself forwards to `/v1/batch` keeping Segment's final times."""

from __future__ import annotations

import base64
import functools
import gzip
import json
import os
import subprocess
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests import factories
from tests.segment_support import RequestLog, conversions, messages, source
from tests.servers import RunningServer, running_server, sqlite_url

CAPTURES = Path(__file__).parent / "segment_captures"
CHROMIUM = "/usr/bin/chromium"
BROWSER_REQUIRED = os.environ.get("TRACKLANE_TEST_BROWSER") == "required"


def _basic(key: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{key}:".encode()).decode()}


def _track(n: int, **fields: Any) -> dict[str, Any]:
    return {"type": "track", "event": "Viewed", "userId": "u1", "messageId": f"m-{n}", **fields}


def _at(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _iso(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


@pytest.fixture
def admin(watched: tuple[RunningServer, RequestLog]) -> Iterator[httpx.Client]:
    server, _ = watched
    with httpx.Client(
        base_url=server.base_url, headers={"Authorization": f"Bearer {server.admin_key}"}, timeout=30
    ) as client:
        yield client


# 1. Path prefixes -------------------------------------------------------------------------------------


def _intake_posts(log: RequestLog) -> list[tuple[str, str, int]]:
    return [r for r in log.posts("/") if not r[1].startswith("/api/")]


def _run_node(clients: Path, package: str, spec: dict[str, Any]) -> dict[str, Any]:
    done = subprocess.run(
        ["node", "send.mjs", package, json.dumps(spec)],
        cwd=clients,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


@pytest.mark.parametrize(
    ("package", "path"),
    [("analytics-node-2", "/seg/v1/batch"), ("analytics-node-3", "/tracking/segment/v1/batch")],
)
def test_analytics_node_with_a_path_prefix(
    node_clients: Path, watched: tuple[RunningServer, RequestLog], admin: httpx.Client, package: str, path: str
) -> None:
    """`new Analytics({host, path: '/seg/v1/batch'})`: the prefix is the user's, the route is Segment's."""
    server, log = watched
    adv, offer, partner = factories.program(admin)
    tid = factories.click(admin, offer["id"], partner["id"])
    src = source(admin, adv["id"])
    calls = [
        {"method": "identify", "args": {"userId": "user-p", "traits": {"email": "p@example.com"}}},
        {
            "method": "track",
            "args": {
                "userId": "user-p",
                "event": "Order Completed",
                "properties": {"transaction_id": tid, "order_id": "P-1", "revenue": 15, "currency": "USD"},
            },
        },
    ]
    spec = {"host": server.base_url, "writeKey": src["write_key"], "calls": calls, "options": {"path": path}}
    assert _run_node(node_clients, package, spec) == {"errors": [], "requests": 1}
    assert _intake_posts(log) == [("POST", path, 200)]
    assert sorted(m["type"] for m in messages(admin, src["id"])) == ["identify", "track"]
    [conversion] = conversions(admin, transaction_id=tid)
    assert (conversion["order_id"], conversion["amount"]) == ("P-1", "15.00")


def test_python_clients_with_a_host_prefix(watched: tuple[RunningServer, RequestLog], admin: httpx.Client) -> None:
    """analytics-python and rudder-sdk-python keep a path in their host: `{host}/v1/batch`."""
    from rudderstack.analytics import Client as RudderClient
    from rudderstack.analytics import request as rudder_request
    from segment.analytics import Client as SegmentClient
    from segment.analytics import request as segment_request

    server, log = watched
    src = source(admin, factories.advertiser(admin)["id"])
    errors: list[Any] = []
    for make, user, prefix in (
        (SegmentClient, "user-seg", "/edge/segment"),
        (RudderClient, "user-rudder", "/rudder"),
    ):
        client = make(
            src["write_key"],
            host=server.base_url + prefix,
            on_error=lambda e, b: errors.append(e),
            max_retries=1,
            upload_interval=0.05,
        )
        client.track(user_id=user, event="Viewed", properties={"n": 1})
        client.flush()
        client.shutdown()
    segment_request._session.close()
    rudder_request._session.close()
    assert errors == []
    assert _intake_posts(log) == [("POST", "/edge/segment/v1/batch", 200), ("POST", "/rudder/v1/batch", 200)]
    assert sorted(m["user_id"] for m in messages(admin, src["id"])) == ["user-rudder", "user-seg"]


def test_every_client_route_under_a_prefix(api: httpx.Client, web: httpx.Client) -> None:
    src = source(api, factories.advertiser(api)["id"])
    key = src["write_key"]
    host = web.base_url.netloc.decode()
    accepted = [
        web.post("/seg/v1/track", json=_track(1), headers=_basic(key)),
        web.post(
            "/a/b/c/v1/t", content=json.dumps({**_track(2), "writeKey": key}), headers={"Content-Type": "text/plain"}
        ),
        web.post("/seg/v1/batch", json={"batch": [_track(3)], "writeKey": key}),
        web.post("/seg/v1/b", json={"batch": [_track(4)], "writeKey": key}),
        web.post("/seg/v1/import", json={"batch": [_track(5)]}, headers=_basic(key)),
        web.post(f"/seg/beacon/v1/batch?writeKey={key}", content=json.dumps({"batch": [_track(6)]})),
        web.post("/segment/v1/batch", json={"batch": [_track(7)]}, headers=_basic(key)),  # not a webhook path
        web.post("/seg/v1/x/v1/batch", json={"batch": [_track(8)]}, headers=_basic(key)),  # split where it matches
        web.post("/seg/v1/m", content=b'{"series": []}', headers={"Content-Type": "text/plain"}),
    ]
    assert [(r.status_code, r.json()) for r in accepted] == [(200, {"success": True})] * len(accepted)
    assert sorted(m["message_id"] for m in messages(api, src["id"])) == [f"m-{n}" for n in range(1, 9)]

    preflight = web.options(
        "/seg/v1/t",
        headers={"Origin": "https://shop.example", "Access-Control-Request-Method": "POST",
                 "Access-Control-Request-Headers": "content-type, authorization"},
    )  # fmt: skip
    assert preflight.status_code == 204
    assert preflight.headers["access-control-allow-origin"] == "https://shop.example"
    settings = web.get(f"/seg/v1/projects/{key}/settings")
    assert settings.status_code == 200
    assert settings.json()["integrations"]["Segment.io"]["apiHost"] == f"{host}/seg/v1"  # events come back here
    config = web.get("/seg/sourceConfig/", headers=_basic(key))
    assert (config.status_code, config.json()["source"]["writeKey"]) == (200, key)

    wrong_method = web.get("/seg/v1/batch")
    assert (wrong_method.status_code, wrong_method.json()["code"]) == (405, "method_not_allowed")
    unknown = web.post("/seg/v1/nothing/here", json={})
    assert (unknown.status_code, unknown.json()["code"]) == (404, "not_found")
    assert "access-control-allow-origin" in unknown.headers
    no_key = web.post("/seg/v1/batch", json={"batch": [_track(9)]})
    assert (no_key.status_code, no_key.json()["code"]) == (401, "no_write_key")
    doubled = web.post("/v1/v1/batch", json={"batch": [_track(10)]}, headers=_basic(key))  # a host ending in /v1
    assert (doubled.status_code, doubled.json()["code"]) == (404, "not_found")

    large = source(api, factories.advertiser(api)["id"])
    batch = [_track(n, properties={"pad": "x" * 1200}) for n in range(150)]  # about 200 KB
    response = web.post("/seg/v1/batch", json={"batch": batch, "writeKey": large["write_key"]})
    assert (response.status_code, response.json()) == (200, {"success": True})  # intake's limit, not 64 KB
    assert len(messages(api, large["id"])) == 150


def test_prefixes_never_shadow_tracklane_routes(api: httpx.Client, web: httpx.Client) -> None:
    """`/api/...` and `/ui/...` are never a prefix, and a path another route answers stays that route's."""
    src = source(api, factories.advertiser(api)["id"])
    body = {"batch": [_track(1)], "writeKey": src["write_key"]}
    api_path = web.post("/api/v1/batch", json=body, headers=_basic(src["write_key"]))
    assert api_path.status_code == 404 and "code" not in _json_or_empty(api_path)  # the API's own error shape
    api_track = api.post("/api/v1/track", json=body)
    assert api_track.status_code == 404 and "code" not in _json_or_empty(api_track)
    assert api.get("/api/v1/sources").status_code == 200
    ui_path = web.post("/ui/v1/batch", json=body)
    assert ui_path.status_code in (404, 405) and "code" not in _json_or_empty(ui_path)
    click_path = web.post("/r/v1/batch", json=body)  # /r/{offer_id}/{partner_id} answers GET and HEAD only
    assert click_path.status_code == 405 and "code" not in _json_or_empty(click_path)
    assert messages(api, src["id"]) == []


def _json_or_empty(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


# 2. Batch-level context and integrations --------------------------------------------------------------


def test_batch_context_and_integrations_are_merged_into_each_event(api: httpx.Client, web: httpx.Client) -> None:
    src = source(api, factories.advertiser(api)["id"])
    body = {
        "batch": [
            _track(1),
            _track(
                2,
                integrations={"All": True, "Mixpanel": False},
                context={"app": {"name": "Own app"}, "locale": "fr-FR"},
            ),
            _track(3, integrations=["not", "an", "object"]),
        ],
        "context": {"app": {"name": "Shop", "version": "2.1"}, "library": {"name": "relay", "version": "1"}},
        "integrations": {"All": False, "Tracklane": True},
        "writeKey": src["write_key"],
    }
    response = web.post("/v1/batch", json=body)
    assert (response.status_code, response.headers["x-tracklane-refused"]) == (200, "1")
    stored = {m["message_id"]: m for m in messages(api, src["id"])}
    first, second = stored["m-1"]["payload"], stored["m-2"]["payload"]
    assert first["integrations"] == {"All": False, "Tracklane": True}
    assert first["context"] == body["context"]
    assert second["integrations"] == {"All": True, "Tracklane": True, "Mixpanel": False}  # the event's keys win
    assert second["context"] == {"app": {"name": "Own app"}, "library": {"name": "relay", "version": "1"},
                                 "locale": "fr-FR"}  # fmt: skip
    refused = [m for m in stored.values() if m["outcome"] == "refused"]
    assert [m["detail"] for m in refused] == ["invalid_message: integrations: must be an object"]


# 3. The snippet ----------------------------------------------------------------------------------------

#: Segment's analytics.js snippet 5.2.0 as a site pastes it, its CDN host replaced by the Tracklane URL (the
#: way Segment documents self-hosting it); `_cdn` because loopback is plain http (analytics.js finds its CDN
#: from an https script URL on its own). The calls after `load` are queued before the script arrives.
SNIPPET_PAGE = """<!doctype html><meta charset=utf-8><title>Snippet shop</title><h1>Shop</h1>
<script>
!function(){var i="analytics",analytics=window[i]=window[i]||[];if(!analytics.initialize)if(analytics.invoked)window.console&&console.error&&console.error("Segment snippet included twice.");else{analytics.invoked=!0;analytics.methods=["trackSubmit","trackClick","trackLink","trackForm","pageview","identify","reset","group","track","ready","alias","debug","page","screen","once","off","on","addSourceMiddleware","addIntegrationMiddleware","setAnonymousId","addDestinationMiddleware","register"];analytics.factory=function(e){return function(){if(window[i].initialized)return window[i][e].apply(window[i],arguments);var n=Array.prototype.slice.call(arguments);if(["track","screen","alias","group","page","identify"].indexOf(e)>-1){var c=document.querySelector("link[rel='canonical']");n.push({__t:"bpc",c:c&&c.getAttribute("href")||void 0,p:location.pathname,u:location.href,s:location.search,t:document.title,r:document.referrer})}n.unshift(e);analytics.push(n);return analytics}};for(var n=0;n<analytics.methods.length;n++){var key=analytics.methods[n];analytics[key]=analytics.factory(key)}analytics.load=function(key,n){var t=document.createElement("script");t.type="text/javascript";t.async=!0;t.setAttribute("data-global-segment-analytics-key",i);t.src="%(cdn)s/analytics.js/v1/" + key + "/analytics.min.js";var r=document.getElementsByTagName("script")[0];r.parentNode.insertBefore(t,r);analytics._loadOptions=n};analytics._writeKey="%(key)s";;analytics.SNIPPET_VERSION="5.2.0";
analytics._cdn = "%(cdn)s";
analytics.load("%(key)s");
analytics.page();
analytics.identify("user-snippet", {email: "s@example.com"});
analytics.track("Order Completed", {order_id: "S-1", revenue: 8.25, currency: "USD"});
}}();
</script>"""  # noqa: E501


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        return None


@pytest.fixture
def static_site(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    """A static site on its own loopback origin."""
    site = tmp_path / "site"
    site.mkdir()
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_QuietHandler, directory=str(site)))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield site, f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()


@pytest.mark.parametrize("prefix", ["", "/seg"], ids=["root", "prefixed"])
def test_snippet_queued_calls_are_stored(
    static_site: tuple[Path, str], node_clients: Path, tmp_path: Path, prefix: str
) -> None:
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        assert not BROWSER_REQUIRED, f"{CHROMIUM} is required"
        pytest.skip(f"analytics.js runs in the system Chromium; install it at {CHROMIUM}")
    site, site_url = static_site
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
        adv, offer, partner = factories.program(admin)
        tid = factories.click(admin, offer["id"], partner["id"])
        src = source(admin, adv["id"])
        (site / "shop.html").write_text(SNIPPET_PAGE % {"cdn": server.base_url + prefix, "key": src["write_key"]})
        failures: list[str] = []
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
            try:
                page = browser.new_page()
                page.on("requestfailed", lambda r: failures.append(f"{r.url} {r.failure}"))
                page.on("response", lambda r: failures.append(f"{r.url} {r.status}") if r.status >= 400 else None)
                page.on("pageerror", lambda e: failures.append(str(e)))
                page.goto(f"{site_url}/shop.html?tl_tid={tid}")
                stored = _wait_for(admin, src["id"], 3)
                page.close()
            finally:
                browser.close()
        assert failures == []
        assert sorted(m["type"] for m in stored) == ["identify", "page", "track"]
        assert all(m["message_id"].startswith("ajs-next-") for m in stored)
        [conversion] = conversions(admin, transaction_id=tid)  # the page carried the click, the track converts
        assert (conversion["order_id"], conversion["amount"]) == ("S-1", "8.25")
        paths = [(method, path, status) for method, path, status in logs[0].requests if not path.startswith("/api/")]
        assert ("GET", f"{prefix}/analytics.js/v1/{src['write_key']}/analytics.min.js", 200) in paths
        assert ("GET", f"{prefix}/v1/projects/{src['write_key']}/settings", 200) in paths
        posts = sorted(path for method, path, _ in paths if method == "POST")
        assert posts == [f"{prefix}/v1/i", f"{prefix}/v1/p", f"{prefix}/v1/t"]


def _wait_for(admin: httpx.Client, source_id: int, count: int) -> list[dict[str, Any]]:
    deadline = time.monotonic() + 20
    while True:
        stored = messages(admin, source_id)
        if len(stored) >= count or time.monotonic() > deadline:
            return stored
        time.sleep(0.1)


# 4. An app's explicit timestamp (rudder-sdk-node) -----------------------------------------------------


def test_rudder_sdk_node_keeps_the_apps_timestamp(api: httpx.Client, web: httpx.Client) -> None:
    """rudder-sdk-node 3.0.13 stamps `originalTimestamp` (and `sentAt`) itself and passes the app's
    `timestamp` through: the recorded request, with one event the app timestamped three days ago."""
    [line] = (CAPTURES / "rudder-sdk-node-3.0.13.jsonl").read_text().splitlines()
    recorded = json.loads(line)
    src = source(api, factories.advertiser(api)["id"])
    headers = {
        k: v for k, v in recorded["headers"].items() if k.lower() not in ("host", "content-length", "connection")
    }
    headers["Authorization"] = _basic(src["write_key"])["Authorization"]
    now = datetime.now(UTC)
    clock = now - timedelta(hours=2)  # the client's clock is two hours behind
    app_time = now - timedelta(days=3)
    [template] = recorded["body"]["batch"]
    stamped = {**template, "originalTimestamp": _iso(clock - timedelta(seconds=5)), "sentAt": _iso(clock)}
    body = {
        **recorded["body"],
        "batch": [
            {**stamped, "messageId": "rudder-app-time", "timestamp": _iso(app_time)},
            {**stamped, "messageId": "rudder-sdk-time"},
        ],
        "timestamp": _iso(clock),
        "sentAt": _iso(clock),
    }
    response = web.post("/v1/batch", content=gzip.compress(json.dumps(body).encode()), headers=headers)
    after = datetime.now(UTC)
    assert (response.status_code, response.json()) == (200, {"success": True})
    [app_stamped] = messages(api, src["id"], message_id="rudder-app-time")
    assert _at(app_stamped["timestamp"]) == _at(_iso(app_time))
    assert _at(app_stamped["original_timestamp"]) == _at(stamped["originalTimestamp"])
    [sdk_stamped] = messages(api, src["id"], message_id="rudder-sdk-time")  # corrected: 5 s before it arrived
    corrected = _at(sdk_stamped["timestamp"])
    assert now - timedelta(seconds=5, milliseconds=5) <= corrected <= after - timedelta(seconds=5)


# 5. Events Segment forwards to /v1/batch --------------------------------------------------------------


def _segment_event(n: int, received: datetime, **fields: Any) -> dict[str, Any]:
    """An event as Segment's servers hand it to a destination function: its times are final."""
    return {
        "type": "track",
        "event": "Viewed",
        "anonymousId": f"anon-{n}",
        "messageId": f"ajs-next-{n}",
        "originalTimestamp": _iso(received - timedelta(seconds=2)),
        "sentAt": _iso(received - timedelta(seconds=1)),
        "receivedAt": _iso(received),
        "timestamp": _iso(received - timedelta(seconds=1, milliseconds=250)),
        "context": {"library": {"name": "analytics.js", "version": "npm:next-1.84.3"}},
        **fields,
    }


@pytest.mark.parametrize("shape", ["batch", "array"])
def test_segment_forwarded_events_keep_segment_times(api: httpx.Client, web: httpx.Client, shape: str) -> None:
    """A destination function posting Segment's events (received an hour ago) to `/v1/batch`, as
    `{"batch": [...]}` or as `onBatch`'s array: Segment's timestamp and receivedAt are kept, and no
    `context.ip` is taken from the connection (it is Segment's, not the visitor's)."""
    src = source(api, factories.advertiser(api)["id"])
    received = datetime.now(UTC) - timedelta(hours=1)
    browser_ip = {"library": {"name": "analytics.js", "version": "npm:next-1.84.3"}, "ip": "203.0.113.9"}
    events = [_segment_event(1, received), _segment_event(2, received, context=browser_ip)]
    direct = _track(3, timestamp=_iso(received), sentAt=_iso(received + timedelta(seconds=10)))  # a client's
    payload: object = {"batch": [*events, direct]} if shape == "batch" else [*events, direct]
    response = web.post(
        "/v1/batch",
        content=json.dumps(payload),
        headers={**_basic(src["write_key"]), "Content-Type": "application/json", "User-Agent": "node-fetch"},
    )
    assert (response.status_code, response.json()) == (200, {"success": True})
    stored = {m["message_id"]: m for m in messages(api, src["id"])}
    for event in events:
        kept = stored[event["messageId"]]
        assert (_at(kept["timestamp"]), _at(kept["received_at"])) == (_at(event["timestamp"]), _at(_iso(received)))
        assert kept["relayed"] is True
    assert "ip" not in stored["ajs-next-1"]["payload"]["context"]
    assert stored["ajs-next-2"]["payload"]["context"]["ip"] == "203.0.113.9"
    client_event = stored["m-3"]  # no receivedAt: a client's event, its clock corrected (10 s before arrival)
    assert client_event["relayed"] is False
    assert _at(client_event["timestamp"]) > datetime.now(UTC) - timedelta(minutes=1)
