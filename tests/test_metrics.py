"""`/metrics` after real traffic: requests by route template, clicks, conversions, Segment messages,
deliveries, the writer and the outbox move as the traffic says; the scrape is open on loopback and behind a
bearer token elsewhere; `tracklane serve --workers 2` answers every process's counts from any process."""

from __future__ import annotations

import gc
import time
import weakref
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests import factories
from tests.receiver import Receiver
from tests.segment_support import source
from tests.servers import RunningServer, running_server, sqlite_url
from tests.serving import BROWSER, ServeProcess, metric_samples, sample

GOOGLEBOT = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"
TOKEN = "metrics-token-for-tests-0123456789"
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(base_url: str, **headers: str) -> Samples:
    response = httpx.get(base_url + "/metrics", headers=headers, timeout=30)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    return metric_samples(response.text)


def requests_of(samples: Samples, route: str, status: str) -> float:
    return sample(samples, "tracklane_http_request_duration_seconds_count", route=route, status=status)


def moved(before: Samples, after: Samples, name: str, **labels: Any) -> float:
    return sample(after, name, **labels) - sample(before, name, **labels)


def poll(check: Callable[[], bool], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "the metric did not move in time"
        time.sleep(0.1)


def test_the_counters_move_with_clicks_postbacks_segment_batches_and_deliveries(
    hub: RunningServer, admin: httpx.Client, receiver: Receiver
) -> None:
    factories.created(admin.post("/api/v1/webhooks", json={"url": receiver.url + "/hook"}))
    adv, offer, partner = factories.program(admin)
    write_key = source(admin, adv["id"])["write_key"]
    before = scrape(hub.base_url)
    link = f"/r/{offer['id']}/{partner['id']}"

    with httpx.Client(base_url=hub.base_url, headers={"User-Agent": BROWSER}, timeout=30) as web:
        tids = [factories.click(web, offer["id"], partner["id"]) for _ in range(3)]
        assert web.get(link, headers={"User-Agent": GOOGLEBOT}).status_code == 302
        assert web.get(f"/r/{offer['id']}/999999").status_code == 404  # recorded: unknown_partner
        postback = {"transaction_id": tids[0], "secure": adv["postback_token"]}
        assert web.get("/postback", params=postback).json()["result"] == "accepted"
        assert web.get("/postback", params=postback).json()["result"] == "duplicate"
        assert web.get("/postback", params={**postback, "secure": "wrong"}).status_code == 403
        batch = [
            {"type": "track", "event": "Viewed", "userId": "u1", "messageId": "m-1"},
            {"type": "identify", "userId": "u1", "messageId": "m-2", "traits": {"plan": "pro"}},
        ]
        assert web.post("/v1/batch", json={"writeKey": write_key, "batch": batch}).status_code == 200
        assert web.post("/seg/v1/batch", json={"writeKey": write_key, "batch": batch[:1]}).status_code == 200
        assert web.get("/no/such/page").status_code == 404
    receiver.wait_for(1)
    poll(lambda: moved(before, scrape(hub.base_url), "tracklane_delivery_attempts_total", kind="webhook",
                       result="success") >= 1)  # fmt: skip
    after = scrape(hub.base_url)

    clicks = "tracklane_clicks_total"
    assert moved(before, after, clicks, result="accepted", reason="") == 3
    assert moved(before, after, clicks, result="bot", reason="") == 1
    assert moved(before, after, clicks, result="rejected", reason="unknown_partner") == 1
    conversions = "tracklane_conversions_total"
    assert moved(before, after, conversions, origin="postback", result="accepted") == 1
    assert moved(before, after, conversions, origin="postback", result="duplicate") == 1
    assert moved(before, after, conversions, origin="postback", result="invalid_token") == 1
    messages = "tracklane_segment_messages_total"
    assert moved(before, after, messages, result="accepted") == 2
    assert moved(before, after, messages, result="duplicate") == 1  # m-1 again, through a path prefix

    # Requests by route template and status class: never the raw path, and no Segment prefix in a label.
    def more(route: str, status: str) -> float:
        return requests_of(after, route, status) - requests_of(before, route, status)

    assert more("/r/{offer_id}/{partner_id}", "3xx") == 4  # the browser's clicks and the bot's
    assert more("/r/{offer_id}/{partner_id}", "4xx") == 1
    assert (more("/postback", "2xx"), more("/postback", "4xx")) == (2, 1)
    assert more("/v1/{kind}", "2xx") == 2
    assert more("unmatched", "4xx") == 1
    assert requests_of(after, "/api/v1/sources", "2xx") >= 1
    routes = {dict(labels).get("route") for name, labels in after if name.startswith("tracklane_http_request")}
    assert link not in routes and "/seg/v1/{kind}" not in routes and "/no/such/page" not in routes
    assert sample(after, "tracklane_http_request_duration_seconds_sum", route="/postback", status="2xx") > 0

    # The writer: every batch it committed is counted with its size and its commit's time.
    batches = moved(before, after, "tracklane_writer_batch_size_count")
    assert batches >= 1 and moved(before, after, "tracklane_writer_commit_seconds_count") == batches
    assert moved(before, after, "tracklane_writer_batch_size_sum") >= 8  # at least every click and message
    assert ("tracklane_writer_queue_depth", frozenset()) in after
    for state in ("due", "scheduled", "sending"):
        assert ("tracklane_outbox_deliveries", frozenset({("state", state)})) in after
    assert ("tracklane_outbox_oldest_due_age_seconds", frozenset()) in after


def test_the_outbox_gauges_count_what_waits_and_for_how_long(database_url: str) -> None:
    """No delivery worker: what the conversions queue stays due, and the oldest one's wait grows."""
    with running_server(database_url, delivery_in_serve=False) as server:
        auth = {"Authorization": f"Bearer {server.admin_key}"}
        with httpx.Client(base_url=server.base_url, headers=auth, timeout=30) as api:
            factories.created(api.post("/api/v1/webhooks", json={"url": "https://hooks.example/tracklane"}))
            factories.advertiser(api)  # advertiser.created: one delivery due
            first = scrape(server.base_url)
            assert sample(first, "tracklane_outbox_deliveries", state="due") == 1
            assert sample(first, "tracklane_outbox_deliveries", state="sending") == 0
            factories.partner(api)  # partner.created: a second one
        poll(lambda: sample(scrape(server.base_url), "tracklane_outbox_deliveries", state="due") == 2)
        poll(lambda: sample(scrape(server.base_url), "tracklane_outbox_oldest_due_age_seconds") >= 1)


def test_metrics_are_open_on_loopback_and_need_the_token_elsewhere(tmp_path: Path) -> None:
    forwarded = {"X-Forwarded-For": "203.0.113.9"}  # through a proxy on this machine: an outsider
    for name in ("open", "token"):
        (tmp_path / name).mkdir()
    with running_server(sqlite_url(tmp_path / "open")) as server:
        assert httpx.get(server.base_url + "/metrics").status_code == 200
        refused = httpx.get(server.base_url + "/metrics", headers=forwarded)
        assert refused.status_code == 403 and "TRACKLANE_METRICS_TOKEN" in refused.json()["message"]
    with running_server(sqlite_url(tmp_path / "token"), metrics_token=TOKEN) as server:
        url = server.base_url + "/metrics"
        assert httpx.get(url).status_code == 200
        missing = httpx.get(url, headers=forwarded)
        assert missing.status_code == 401 and missing.headers["www-authenticate"] == "Bearer"
        assert httpx.get(url, headers={**forwarded, "Authorization": "Bearer wrong-token"}).status_code == 401
        granted = httpx.get(url, headers={**forwarded, "Authorization": f"Bearer {TOKEN}"})
        assert granted.status_code == 200 and "tracklane_clicks_total" in granted.text


@pytest.mark.timeout(240)
def test_serve_with_two_workers_answers_every_process_counts_from_any_of_them(tmp_path: Path) -> None:
    """Each click on a connection of its own (so both processes take some); every scrape, whichever process
    answers it, counts all of them: the processes share their metrics through a directory serve made, which
    is gone once serve has exited."""
    server = ServeProcess(sqlite_url(tmp_path), tmp_path / "serve.log", "--workers", "2")
    try:
        server.start()
        children = server.children()
        assert len(children) == 2, children
        environ = Path(f"/proc/{children[0]}/environ").read_bytes().split(b"\0")
        named = next(v for v in environ if v.startswith(b"PROMETHEUS_MULTIPROC_DIR="))
        directory = Path(named.split(b"=", 1)[1].decode())
        assert directory.is_dir()
        auth = {"Authorization": f"Bearer {server.admin_key}"}
        with httpx.Client(base_url=server.base_url, headers=auth, timeout=30) as api:
            _, offer, partner = factories.program(api)
        clicks = 40
        for _ in range(clicks):
            with httpx.Client(base_url=server.base_url, headers={"User-Agent": BROWSER}, timeout=30) as web:
                factories.click(web, offer["id"], partner["id"])
        for _ in range(6):
            samples = scrape(server.base_url, Connection="close")
            assert sample(samples, "tracklane_clicks_total", result="accepted", reason="") == clicks
            assert requests_of(samples, "/r/{offer_id}/{partner_id}", "3xx") == clicks
        server.terminate()
        assert server.wait(timeout=60) == 0, server.output()[-3000:]
        assert not directory.exists()
    finally:
        server.stop()


def test_an_app_that_stopped_is_freed_with_its_routes_and_loop(tmp_path: Path) -> None:
    """Route labels live on the routes: nothing keeps an app that stopped (its services, its event loop)
    alive, which would hold every app a process ever built."""
    with running_server(sqlite_url(tmp_path)) as server:
        for path in ("/healthz", "/api/v1/offers", "/no/such/path"):  # an app route, a router's, none
            httpx.get(f"{server.base_url}{path}", headers={"Authorization": f"Bearer {server.admin_key}"})
        app = weakref.ref(server.server.config.app)
        database = weakref.ref(server.container.db)
    del server
    gc.collect()
    assert app() is None
    assert database() is None
