"""The process's Prometheus metrics (prometheus-client): their names and labels, the functions the edge,
the tracking and Segment handlers, the writer and the delivery worker record them with, and `/metrics`.

Recording is on the hot path, so each label set is resolved once and kept on its route object (`_Series`):
a request costs an attribute lookup and one histogram observation (its `_count` is the request count).
Nothing is kept in module state by route, which would keep every app ever built alive with its routes. The route
label is the matched route's template (`/r/{offer_id}/{partner_id}`, `/api/v1/offers/{offer_id}`), never
the raw path; a request no route took (an unknown path, a method a plain route does not take, one the edge
refused before routing: 413, 429) is `unmatched`. The edge finds the route in the scope: FastAPI's routes
put themselves there (with their template relative to their router, so `name_routes` labels them with
their full one), and `name_routes` makes the plain Starlette routes and mounts do the same.

Several server processes (`tracklane serve --workers N`) share their metrics through prometheus-client's
multiprocess mode: `serve` gives them a directory of their own (`PROMETHEUS_MULTIPROC_DIR`), each process
writes its values there, and whichever process answers a scrape adds up every process's files, so
counters never jump between scrapes. Gauges of the writer's queue are summed over the live processes; the
outbox gauges are the database's, read by the process answering, with one indexed query at most every
`OUTBOX_CACHE_SECONDS`.

`/metrics` answers a scraper on loopback that came directly (no forwarding header: a reverse proxy on the
same machine forwards outsiders); any other needs `Authorization: Bearer <TRACKLANE_METRICS_TOKEN>`
(401 without it, 403 when no token is set).
"""

from __future__ import annotations

import asyncio
import glob
import hmac
import ipaddress
import logging
import os
import re
import time
from collections.abc import Iterable
from typing import Any

from prometheus_client import REGISTRY, Counter, Gauge, Histogram, generate_latest, values
from prometheus_client.metrics import disable_created_metrics
from prometheus_client.metrics_core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.types import Receive, Scope, Send

from tracklane.domain.model import Click
from tracklane.domain.retry import judge
from tracklane.services.deliveries import AttemptReport, OutboundMessage
from tracklane.services.segment import IngestReport
from tracklane.web import health

log = logging.getLogger("tracklane.metrics")

#: Whether prometheus-client chose its multiprocess mode (PROMETHEUS_MULTIPROC_DIR was set when it loaded).
MULTIPROCESS: bool = values.ValueClass is not values.MutexValue
OUTBOX_CACHE_SECONDS = 2.0
#: The text format every Prometheus version reads (what `generate_latest` writes).
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
UNMATCHED = "unmatched"
STATUS_CLASSES = ("none", "1xx", "2xx", "3xx", "4xx", "5xx")  # "none": the client left before any answer
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
COMMIT_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)

disable_created_metrics()  # type: ignore[no-untyped-call]  # no `_created` series beside every counter and histogram

HTTP_DURATION = Histogram(
    "tracklane_http_request_duration_seconds", "HTTP requests answered and the time from each one's arrival to "
    "its answer, by route template and status class (_count: the requests).", ["route", "status"],
    buckets=LATENCY_BUCKETS,
)  # fmt: skip
CLICKS = Counter(
    "tracklane_clicks", "Clicks recorded (/r and /clk), by result (accepted, rejected, bot) and reject reason.",
    ["result", "reason"],
)  # fmt: skip
CONVERSIONS = Counter(
    "tracklane_conversions", "Conversions and events asked for by postback or pixel, by origin and result "
    "(accepted, duplicate, or the refusal code).", ["origin", "result"],
)  # fmt: skip
SEGMENT_MESSAGES = Counter(
    "tracklane_segment_messages", "Segment messages taken in, by result (accepted, duplicate, refused).", ["result"]
)
DELIVERY_ATTEMPTS = Counter(
    "tracklane_delivery_attempts", "Webhook and partner postback delivery attempts, by kind and result "
    "(success, failure, throttled, gone, ours).", ["kind", "result"],
)  # fmt: skip
WRITER_BATCH_SIZE = Histogram(
    "tracklane_writer_batch_size", "Writes committed together by the group-commit writer.", buckets=BATCH_BUCKETS
)
WRITER_COMMIT = Histogram(
    "tracklane_writer_commit_seconds", "Time the writer's COMMIT of one batch took.", buckets=COMMIT_BUCKETS
)
WRITER_QUEUE = Gauge(
    "tracklane_writer_queue_depth", "Writes waiting for the writer (summed over the server processes).",
    multiprocess_mode="livesum",
)  # fmt: skip


class _Series:
    """One route's histograms, one per status class, each resolved at its first request."""

    __slots__ = ("durations", "label")

    def __init__(self, label: str) -> None:
        self.label = label
        self.durations: list[Any] = [None] * len(STATUS_CLASSES)

    def duration(self, index: int) -> Any:
        child = self.durations[index] = HTTP_DURATION.labels(self.label, STATUS_CLASSES[index])
        return child


_SERIES = "_tracklane_series"  # the attribute of a route holding its `_Series`
_MARKED = "_tracklane_marked"  # set on a route made to mark itself (module-level routes serve every app)
_UNMATCHED = _Series(UNMATCHED)


def _series(route: object) -> _Series:
    """The route's series, made and kept on it at its first request."""
    if route is None:
        return _UNMATCHED
    series: _Series | None = getattr(route, _SERIES, None)
    if series is None:
        series = _Series(route_label(route))
        setattr(route, _SERIES, series)
    return series


def route_label(route: object) -> str:
    """The label of a matched route: its path template (a mount's with `/{path}`); `unmatched` for none."""
    path = _template(route)
    if path is None:
        return UNMATCHED
    if isinstance(route, Mount) and not path.endswith("/{path}"):
        return path.rstrip("/") + "/{path}"
    return path


def _template(route: object) -> str | None:
    """The route's path template, without convertors (`/v1/{rest}`, not `/v1/{rest:path}`)."""
    path = getattr(route, "path_format", None) or getattr(route, "path", None)
    return path if isinstance(path, str) and path else None


def name_routes(routes: Iterable[BaseRoute], included: Iterable[tuple[str, Any]] = ()) -> None:
    """Label the app's routes: each plain Starlette route and mount of `routes` is made to put itself in
    the scope as it handles a request (FastAPI's router does so only for its own routes), and each route of
    the `included` routers is labelled with its full template: the prefix the router is included under, and
    the route's path (which holds the router's own prefix)."""
    for route in routes:
        if type(route) in (Route, Mount):
            _mark(route)  # type: ignore[arg-type]
    for prefix, router in included:
        for route in router.routes:
            path = _template(route)
            if path is not None:
                setattr(route, _SERIES, _Series(prefix + path))


def _mark(route: Route | Mount) -> None:
    if getattr(route, _MARKED, False):
        return
    setattr(route, _MARKED, True)
    handle = route.app

    async def marked(scope: Scope, receive: Receive, send: Send) -> None:
        scope["route"] = route
        await handle(scope, receive, send)

    route.app = marked


def observe_request(route: object, status: int, seconds: float) -> None:
    """Count an answered request and its latency (`route`: what the router matched, or None)."""
    series = _series(route)
    index = status // 100 if 100 <= status < 600 else 0
    child = series.durations[index]
    if child is None:
        child = series.duration(index)
    child.observe(seconds)


_clicks: dict[tuple[str, str], Any] = {}


def click(click: Click) -> None:
    """Count a recorded click: a bot (whatever its verdict), else accepted, else rejected with its reason."""
    result = "bot" if click.device.is_bot else "accepted" if click.reject_reason is None else "rejected"
    key = (result, click.reject_reason or "")
    child = _clicks.get(key)
    if child is None:
        child = _clicks[key] = CLICKS.labels(*key)
    child.inc()


_conversions: dict[tuple[str, str], Any] = {}


def conversion(origin: str, result: str) -> None:
    """Count one conversion request's outcome: `accepted`, `duplicate`, or the error's code."""
    key = (origin, result)
    child = _conversions.get(key)
    if child is None:
        child = _conversions[key] = CONVERSIONS.labels(*key)
    child.inc()


def segment_report(report: IngestReport) -> None:
    """Count the messages of one Segment request (`stored` includes those stored as refused)."""
    for result, amount in (
        ("accepted", report.stored - report.refused),
        ("duplicate", report.duplicates),
        ("refused", report.refused),
    ):
        if amount > 0:
            SEGMENT_MESSAGES.labels(result).inc(amount)


def delivery_attempt(message: OutboundMessage, report: AttemptReport) -> None:
    """Count one delivery attempt by its kind and what it means for the delivery (`domain.retry.judge`)."""
    DELIVERY_ATTEMPTS.labels(message.delivery.kind.value, judge(report.result).value).inc()


def writer_committed(size: int, seconds: float) -> None:
    """The writer committed a batch of `size` writes; its COMMIT took `seconds`."""
    WRITER_BATCH_SIZE.observe(size)
    WRITER_COMMIT.observe(seconds)


def writer_depth(depth: int) -> None:
    WRITER_QUEUE.set(depth)


def _initialise() -> None:
    """Every series a dashboard expects exists from the start, at 0."""
    for result in ("accepted", "bot"):
        _clicks[(result, "")] = CLICKS.labels(result, "")
    for origin in ("postback", "sdk"):
        for result in ("accepted", "duplicate"):
            _conversions[(origin, result)] = CONVERSIONS.labels(origin, result)
    for result in ("accepted", "duplicate", "refused"):
        SEGMENT_MESSAGES.labels(result)


_initialise()


def process_started() -> None:
    """In multiprocess mode, forget the live gauges of server processes that are gone (a restarted worker)."""
    directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if not MULTIPROCESS or not directory:
        return
    for path in glob.glob(os.path.join(directory, "gauge_live*_*.db")):
        found = re.search(r"_(\d+)\.db$", path)
        if found and not _running(int(found[1])):
            mark_process_dead(int(found[1]), directory)  # type: ignore[no-untyped-call]


def process_stopping() -> None:
    """In multiprocess mode, take this process's live gauges out of the sums."""
    directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if MULTIPROCESS and directory:
        mark_process_dead(os.getpid(), directory)  # type: ignore[no-untyped-call]


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class _Outbox:
    """The outbox gauges of one scrape (the database's, not this process's)."""

    def __init__(self, backlog: health.Backlog | None) -> None:
        self.backlog = backlog

    def collect(self) -> Iterable[Metric]:
        if self.backlog is None:
            return
        depth = GaugeMetricFamily(
            "tracklane_outbox_deliveries", "Deliveries waiting in the outbox, by state: due (to send now), "
            "scheduled (a retry or a delay not yet due), sending (claimed by a worker).", labels=["state"],
        )  # fmt: skip
        for state in ("due", "scheduled", "sending"):
            depth.add_metric([state], getattr(self.backlog, state))
        yield depth
        yield GaugeMetricFamily(
            "tracklane_outbox_oldest_due_age_seconds",
            "How long the delivery due the longest has been due (0 when none is due).",
            value=self.backlog.oldest_due_seconds,
        )


class _Scrape:
    """What one scrape collects: every process's metrics (or this one's, with its process and runtime
    collectors) and the outbox's."""

    def __init__(self, *collectors: Any) -> None:
        self.collectors = collectors

    def collect(self) -> Iterable[Metric]:
        for collector in self.collectors:
            yield from collector.collect()


class _Files:
    def collect(self) -> Iterable[Metric]:
        files: Iterable[Metric] = MultiProcessCollector(None).collect()  # type: ignore[no-untyped-call]
        return files


async def _backlog(operations: health.Operations) -> health.Backlog | None:
    """The outbox's backlog, read at most every `OUTBOX_CACHE_SECONDS`; None while it cannot be read."""
    cache = operations.outbox
    async with cache.lock:
        if time.monotonic() < cache.expires:
            return cache.value
        try:
            cache.value = await asyncio.wait_for(operations.probes.outbox_backlog(), operations.readiness_timeout)
        except Exception as error:  # the scrape goes on without the outbox gauges
            log.warning("the outbox backlog could not be read: %r", error)
            cache.value = None
        cache.expires = time.monotonic() + OUTBOX_CACHE_SECONDS
        return cache.value


async def scrape(request: Request) -> Response:
    """`GET /metrics`: the Prometheus text format."""
    operations = health.operations(request)
    refusal = _refusal(request, operations.metrics_token)
    if refusal is not None:
        return refusal
    backlog = await _backlog(operations)
    local = _Files() if MULTIPROCESS else REGISTRY
    body = generate_latest(_Scrape(local, _Outbox(backlog)))
    return Response(body, media_type=CONTENT_TYPE, headers={"Cache-Control": "no-store"})


FORWARDING_HEADERS = (b"x-forwarded-for", b"forwarded", b"x-real-ip")


def _refusal(request: Request, token: bytes | None) -> Response | None:
    """None when the scraper may read the metrics (see the module docstring), else the answer refusing it."""
    scope = request.scope
    peer = scope["client"][0] if scope.get("client") else ""
    forwarded = any(name in FORWARDING_HEADERS for name, _ in scope["headers"])
    if not forwarded and _loopback(peer):
        return None
    if token is None:
        message = "/metrics answers loopback only; set TRACKLANE_METRICS_TOKEN to scrape it from elsewhere"
        return JSONResponse({"error": "forbidden", "message": message}, status_code=403)
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), token):
        return None
    message = "send Authorization: Bearer <TRACKLANE_METRICS_TOKEN>"
    return JSONResponse(
        {"error": "unauthorized", "message": message}, status_code=401, headers={"WWW-Authenticate": "Bearer"}
    )


def _loopback(address: str) -> bool:
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False


routes = [Route("/metrics", scrape, methods=["GET"])]
