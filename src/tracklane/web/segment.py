"""Segment-compatible intake (plain Starlette, like the tracking hot path): `/v1/*` for Segment and
RudderStack clients, the settings the browser SDK loads, and `/segment/{source_id}` for Segment's own
Webhooks (Actions) destination. See DESIGN §3.2 and docs/segment.md.

Every answer carries CORS headers. Success is exactly `200 {"success": true}` (duplicates included), with
`X-Tracklane-Refused` counting the messages of the request stored with outcome `refused`; errors are
`{"code", "message"}` with 400 (unreadable body, too large), 401 (no or unknown write key, bad
signature), 404 and 405 (any other path or method under the Segment prefixes), 429 with `Retry-After` (too
many requests in flight) or 503 (storage fault); the client retries those two and dedup on messageId
keeps each message once.

A request's body is read (bounded: its Content-Length first, then while it streams, decompressed or not)
and its write key checked before it takes one of the process's in-flight slots, so clients that are slow
to send, or send a wrong key, never throttle the others.

The routes a client builds from the host (or path) it is configured with (`/v1/...`, `/beacon/v1/batch`,
`/sourceConfig/`, `/analytics.js/v1/...`, `/analytics-next/bundles/...`) are also served under any path
prefix (`Prefixed`): `/seg/v1/batch` is `/v1/batch`. A prefix never takes a path from Tracklane's own
routes: it never starts with `api` or `ui` (nor with `v1`, `beacon`, ...: those paths are only ever
themselves), and a path another route answers (even with 405) stays that route's.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import hmac
import logging
import re
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import BaseRoute, Match, Route, Router
from starlette.types import Receive, Scope, Send

from tracklane.domain.errors import IntakeError, PostbackRefused, StorageUnavailable
from tracklane.domain.ids import id_or_none
from tracklane.domain.segment.body import decode, first_element, read_request
from tracklane.domain.segment.messages import MAX_REQUEST_BYTES, TYPE_BY_PATH, Envelope
from tracklane.domain.segment.model import Source
from tracklane.services.registry import Services
from tracklane.services.segment import IngestReport
from tracklane.web import metrics as process_metrics

log = logging.getLogger("tracklane.segment")

ALLOW_HEADERS = (
    "content-type, content-encoding, authorization, x-retry-count, x-write-key, anonymousid, sentat, "
    "rsa-retry-attempt, rsa-since-last-attempt, rsa-since-first-attempt, rsa-retry-reason, "
    "rsa-recovered"
)
EXPOSE_HEADERS = "Retry-After, X-Tracklane-Refused"
REFUSED_HEADER = "X-Tracklane-Refused"
SUCCESS = {"success": True}
_BUNDLE = re.compile(r"^[\w.-]+\.js$", re.ASCII)
BATCH_PATHS = ("batch", "b", "import")
ALL_METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
LOGGED_REASONS = 20  # refusals logged one by one per request; the message log keeps every one
#: What analytics.js's snippet loads from `/analytics.js/v1/{writeKey}/`: the standalone build, which reads
#: the write key and cdnURL from the page, loads, and then sends the calls the snippet queued.
SNIPPET_BUILD = "standalone.js"
SNIPPET_NAMES = ("analytics.min.js", "analytics.js")
#: The first path segment of each route a client builds from its configured host or path.
CLIENT_ROUTE_STARTS = frozenset({"v1", "beacon", "sourceConfig", "analytics.js", "analytics-next"})
#: Tracklane's own namespaces, whose unknown paths stay theirs: never the start of a prefix.
RESERVED_PREFIXES = frozenset({"api", "ui"})
#: The scope key holding the prefix a request's Segment route was found under ("" without one).
PREFIX_SCOPE_KEY = "tracklane.segment_prefix"


def _container(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


def cors(request: Request) -> dict[str, str]:
    """Every response's CORS headers; a browser's origin is echoed so credentialed requests work too."""
    origin = request.headers.get("origin")
    headers = {
        "Access-Control-Allow-Origin": origin or "*",
        "Access-Control-Allow-Methods": "GET, POST, OPTIONS",
        "Access-Control-Allow-Headers": request.headers.get("access-control-request-headers") or ALLOW_HEADERS,
        "Access-Control-Max-Age": "86400",
        "Access-Control-Expose-Headers": EXPOSE_HEADERS,
        "Vary": "Origin",
    }
    if origin:
        headers["Access-Control-Allow-Credentials"] = "true"
    return headers


def _answer(
    request: Request, body: dict[str, Any], status: int = 200, headers: Mapping[str, str] | None = None
) -> Response:
    return JSONResponse(body, status_code=status, headers={**cors(request), **(headers or {})})


def _error(request: Request, error: IntakeError) -> Response:
    extra = {"Retry-After": "1"} if error.status in (429, 503) else {}
    return _answer(request, {"code": error.code, "message": error.message}, error.status, extra)


async def read_body(request: Request) -> bytes:
    """The body, gunzipped when `Content-Encoding: gzip`, chunked or not; at most 500 KB as sent and 500 KB
    once decompressed. A larger Content-Length is refused before anything is read, a longer body as soon as
    it passes the limit (a gzip bomb is never inflated further than the limit)."""
    too_large = IntakeError(400, "payload_too_large", f"the body must be at most {MAX_REQUEST_BYTES} bytes")
    length = request.headers.get("content-length", "")
    if length.isascii() and length.isdigit() and int(length) > MAX_REQUEST_BYTES:
        raise too_large
    gzipped = "gzip" in request.headers.get("content-encoding", "").lower()
    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS) if gzipped else None
    parts: list[bytes] = []
    sent = size = 0
    try:
        async for chunk in request.stream():
            sent += len(chunk)
            data = inflater.decompress(chunk, MAX_REQUEST_BYTES + 1 - size) if inflater else chunk
            size += len(data)
            if sent > MAX_REQUEST_BYTES or size > MAX_REQUEST_BYTES or (inflater and inflater.unconsumed_tail):
                raise too_large
            parts.append(data)
    except zlib.error:
        raise IntakeError(400, "invalid_body", "the body is not valid gzip") from None
    if inflater is not None and not inflater.eof:
        raise IntakeError(400, "invalid_body", "the gzip body is cut short")
    return b"".join(parts)


def header_write_key(request: Request) -> str | None:
    """The write key from Basic auth (`key:` or `key` without a colon), `X-Write-Key` or `?writeKey=`."""
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "basic" and value.strip():
        try:
            decoded = base64.b64decode(value.strip(), validate=False).decode()
        except (binascii.Error, UnicodeDecodeError):
            decoded = ""
        if key := decoded.partition(":")[0].strip():
            return key
    return request.headers.get("x-write-key") or request.query_params.get("writeKey") or None


async def _source(request: Request, envelope: Envelope) -> Source:
    """The source of the body's write key, else of the headers' (Basic, `X-Write-Key`, `?writeKey=`)."""
    key = envelope.write_key or header_write_key(request)
    if key is None:
        raise IntakeError(401, "no_write_key", "send the write key as Basic auth or as writeKey in the body")
    source = await _container(request).segment.source_for_write_key(key)
    if source is None:
        raise IntakeError(401, "invalid_write_key", "the write key is unknown")
    return source


#: Request bodies read into messages (and their messages stored) at once by one process. A body read into
#: messages takes about ten times its size until they are stored; the requests beyond wait their turn with
#: their bodies as bytes.
READING_AT_ONCE = 8


class InFlight:
    """The intake requests of this process: `count` authenticated and being stored, `waiting` with their body
    read, for one of the `READING_AT_ONCE` reading slots (`reading`). Beyond the limit, together, an
    authenticated request is throttled (429)."""

    def __init__(self) -> None:
        self.count = 0
        self.waiting = 0
        self.reading = asyncio.Semaphore(READING_AT_ONCE)


def _in_flight(request: Request) -> InFlight:
    state = request.app.state
    if not hasattr(state, "segment_in_flight"):
        state.segment_in_flight = InFlight()
    counter: InFlight = state.segment_in_flight
    return counter


@asynccontextmanager
async def _reading(request: Request) -> AsyncIterator[None]:
    """Hold one of the process's reading slots (waiting for one first)."""
    counter = _in_flight(request)
    counter.waiting += 1
    try:
        await counter.reading.acquire()
    finally:
        counter.waiting -= 1
    try:
        yield
    finally:
        counter.reading.release()


async def _in_slot(request: Request, work: Callable[[], Awaitable[Response]]) -> Response:
    """Run `work` in one of the process's in-flight slots, or answer 429 when they are all taken."""
    counter = _in_flight(request)
    if counter.count + counter.waiting >= _container(request).settings.segment_max_in_flight:
        return _error(request, IntakeError(429, "rate_limited", "too many requests at once; retry"))
    counter.count += 1
    try:
        return await work()
    finally:
        counter.count -= 1


async def intake(request: Request) -> Response:
    """`POST /v1/{type}`, `/v1/{t,i,p,s,g,a}`, `/v1/batch`, `/v1/b`, `/v1/import`, `/beacon/v1/batch`."""
    if request.method == "OPTIONS":
        return Response(status_code=204, headers=cors(request))
    received_at = datetime.now(UTC)
    kind = request.path_params.get("kind", "batch")
    try:
        if kind not in BATCH_PATHS and kind not in TYPE_BY_PATH:
            raise IntakeError(404, "not_found", f"/v1/{kind} is not a Segment route")
        body = await read_body(request)
    except IntakeError as error:
        return _error(request, error)
    async with _reading(request):
        try:
            envelope = read_request(body, None if kind in BATCH_PATHS else TYPE_BY_PATH[kind])
            source = await _source(request, envelope)
        except IntakeError as error:
            return _error(request, error)
        return await _in_slot(request, lambda: _ingest(request, source, envelope, received_at, relayed=False))


async def _ingest(
    request: Request, source: Source, envelope: Envelope, received_at: datetime, *, relayed: bool
) -> Response:
    try:
        report = await _container(request).segment.ingest(
            source,
            envelope,
            received_at,
            relayed=relayed,
            sent_header=request.headers.get("sentat"),
            client_ip=request.client.host if request.client else None,
        )
    except StorageUnavailable:
        log.exception("segment batch for source %s could not be stored", source.id)
        return _error(request, IntakeError(503, "unavailable", "storage is unavailable; retry"))
    except PostbackRefused as error:  # only "busy": concurrent writers kept colliding
        return _error(request, IntakeError(503, error.code, error.message))
    _log_report(source, report)
    process_metrics.segment_report(report)
    return _answer(request, SUCCESS, headers={REFUSED_HEADER: str(report.refused)})


def _log_report(source: Source, report: IngestReport) -> None:
    for reason in report.reasons[:LOGGED_REASONS]:
        log.warning("segment source %s refused %s", source.id, reason)
    if len(report.reasons) > LOGGED_REASONS:
        log.warning("segment source %s refused %d more messages", source.id, len(report.reasons) - LOGGED_REASONS)
    level = logging.INFO if report.refused else logging.DEBUG
    log.log(level, "segment source %s: %d stored (%d refused), %d duplicates", source.id, report.stored,
            report.refused, report.duplicates)  # fmt: skip


async def metrics(request: Request) -> Response:
    """`POST /v1/m`: the browser SDK's own metrics, accepted and ignored."""
    if request.method == "OPTIONS":
        return Response(status_code=204, headers=cors(request))
    return _answer(request, SUCCESS)


async def project_settings(request: Request) -> Response:
    """`GET /v1/projects/{writeKey}/settings`: what analytics.js loads from its CDN, pointing it at this server."""
    if request.method == "OPTIONS":
        return Response(status_code=204, headers=cors(request))
    key = request.path_params["write_key"]
    container = _container(request)
    if await container.segment.source_for_write_key(key) is None:
        return _error(request, IntakeError(404, "invalid_write_key", "the write key is unknown"))
    base = (container.settings.public_url or str(request.base_url)).rstrip("/") + request.scope.get(
        PREFIX_SCOPE_KEY, ""
    )  # events go back under the prefix the settings were fetched under
    scheme, _, host = base.partition("://")
    settings = {
        "integrations": {"Segment.io": {"apiKey": key, "apiHost": f"{host}/v1", "protocol": scheme,
                                        "unbundledIntegrations": [], "addBundledMetadata": True,
                                        "maybeBundledConfigIds": {},
                                        "versionSettings": {"version": "4.4.7", "componentTypes": ["browser"]}}},
        "plan": {"track": {"__default": {"enabled": True, "integrations": {}}},
                 "identify": {"__default": {"enabled": True}}, "group": {"__default": {"enabled": True}}},
        "analyticsNextEnabled": True, "middlewareSettings": {}, "enabledMiddleware": {},
        "metrics": {"sampleRate": 0}, "legacyVideoPluginsEnabled": False, "remotePlugins": [],
    }  # fmt: skip
    return _answer(request, settings, headers={"Cache-Control": "public, max-age=300"})


async def browser_bundle(request: Request) -> Response:
    """analytics.js from its cdnURL, out of TRACKLANE_SEGMENT_BROWSER_BUNDLES (analytics-next's `dist/umd`):
    `/analytics-next/bundles/{chunk}.js` (loaded on demand, e.g. for `ajs_` query parameters) and, for the
    snippet, `/analytics.js/v1/{writeKey}/analytics.min.js` (or `analytics.js`): the standalone build."""
    directory = _container(request).settings.segment_browser_bundles
    name = request.path_params["name"]
    if "write_key" in request.path_params:
        name = SNIPPET_BUILD if name in SNIPPET_NAMES else ""
    path = Path(directory) / name if directory and _BUNDLE.match(name) else None
    if path is None or not path.is_file():
        return _error(request, IntakeError(404, "not_found", f"no browser bundle {name!r} is served here"))
    return FileResponse(
        path, media_type="application/javascript", headers={**cors(request), "Cache-Control": "public, max-age=3600"}
    )


async def source_config(request: Request) -> Response:
    """`GET /sourceConfig/`: the source configuration RudderStack's browser SDK loads."""
    if request.method == "OPTIONS":
        return Response(status_code=204, headers=cors(request))
    key = header_write_key(request)
    source = await _container(request).segment.source_for_write_key(key) if key else None
    if source is None:
        return _error(request, IntakeError(401, "invalid_write_key", "the write key is unknown"))
    body = {
        "source": {
            "id": str(source.id),
            "name": source.name,
            "writeKey": source.write_key,
            "config": {},
            "enabled": True,
            "workspaceId": "tracklane",
            "destinations": [],
        }
    }
    return _answer(request, body)


async def segment_webhook(request: Request) -> Response:
    """`POST /segment/{source_id}`: Segment's Webhooks (Actions) destination, one event or a JSON array,
    signed by `X-Signature` = hex HMAC-SHA1 of the body (of the first event in batch mode)."""
    received_at = datetime.now(UTC)
    try:
        source_id = id_or_none(request.path_params["source_id"])
        source = None if source_id is None else await _container(request).segment.get_source(source_id)
        if source is None:
            raise IntakeError(404, "not_found", "no such source")
        raw = await read_body(request)
        verify_signature(raw, request.headers.get("x-signature"), source.webhook_secret)
    except IntakeError as error:
        return _error(request, error)
    async with _reading(request):
        try:
            envelope = read_request(raw, None, relayed=True)
        except IntakeError as error:
            return _error(request, error)
        return await _in_slot(request, lambda: _ingest(request, source, envelope, received_at, relayed=True))


def verify_signature(raw: bytes, signature: str | None, secret: str) -> None:
    """Accept the body's signature, or (batch mode) the signature of the array's first element's raw text;
    compared in constant time, as bytes (a header is any Latin-1 text)."""
    if not signature:
        raise IntakeError(401, "missing_signature", "X-Signature is required")
    given = signature.strip().lower().encode("latin-1", "replace")
    candidates = [raw]
    first = first_element(decode(raw))
    if first is not None:
        candidates.append(first.encode("utf-8", "surrogateescape"))
    matched = False
    for candidate in candidates:
        expected = hmac.new(secret.encode(), candidate, hashlib.sha1).hexdigest().encode()
        matched |= hmac.compare_digest(expected, given)
    if not matched:
        raise IntakeError(401, "invalid_signature", "X-Signature does not match the source's webhook secret")


async def unknown(request: Request) -> Response:
    """Any other path or method under the Segment prefixes: 404 or 405 in Segment's error shape (a body
    without `code` makes analytics-python retry)."""
    if request.method == "OPTIONS":
        return Response(status_code=204, headers=cors(request))
    if any(route.matches(request.scope)[0] is Match.PARTIAL for route in routes[:_KNOWN]):
        return _error(request, IntakeError(405, "method_not_allowed", f"{request.method} is not allowed here"))
    return _error(request, IntakeError(404, "not_found", f"{request.url.path} is not a Segment route"))


def prefix_splits(path: str) -> list[int]:
    """Where, after a path prefix, a client route may start in `path`: the offset of each `/` that begins
    a segment of `CLIENT_ROUTE_STARTS` past the first segment, leftmost first; none when the first segment
    is one of `RESERVED_PREFIXES` or itself starts a client route (`/v1/...` is only ever itself, so a host
    misconfigured as `.../v1` gets a 404 for `/v1/v1/batch`)."""
    first, _, _ = path[1:].partition("/")
    if not path.startswith("/") or not first or first in RESERVED_PREFIXES or first in CLIENT_ROUTE_STARTS:
        return []
    splits = []
    offset = 1 + len(first)
    while offset < len(path):  # path[offset] is the "/" before the next segment
        end = path.find("/", offset + 1)
        if path[offset + 1 : end if end >= 0 else len(path)] in CLIENT_ROUTE_STARTS:
            splits.append(offset)
        if end < 0:
            break
        offset = end
    return splits


def prefixed_intake(path: str) -> bool:
    """Whether `path` may be an intake route (`/v1/...`, `/beacon/...`, `/sourceConfig`) under a path prefix:
    the edge counts it with Segment intake, as the same path without the prefix."""
    return any(path.startswith(("/v1/", "/beacon/", "/sourceConfig"), split) for split in prefix_splits(path))


class Prefixed(BaseRoute):
    """The client routes under any path prefix (see the module docstring): the path is split before the
    leftmost segment where one of `client` matches what follows (fully, or but for the method), else where
    one of `fallback` does; the route below then runs with the prefix moved into `root_path`, as under a
    mount. It declines a path any other route of the app matches, so it never shadows one."""

    def __init__(self, client: Sequence[BaseRoute], fallback: Sequence[BaseRoute]) -> None:
        self.client = list(client)
        self.fallback = list(fallback)
        self.router = Router(routes=[*self.client, *self.fallback], redirect_slashes=False)

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        if scope["type"] != "http":
            return Match.NONE, {}
        path = _route_path(scope)
        splits = prefix_splits(path)
        root = scope.get("root_path", "")
        for candidates in (self.client, self.fallback):
            for split in splits:
                trial = {**scope, "root_path": root + path[:split]}
                if any(route.matches(trial)[0] is not Match.NONE for route in candidates):
                    if _claimed_elsewhere(scope):
                        return Match.NONE, {}
                    child = {"app_root_path": scope.get("app_root_path", root), "root_path": trial["root_path"]}
                    return Match.FULL, {**child, PREFIX_SCOPE_KEY: path[:split]}
        return Match.NONE, {}

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.router.app(scope, receive, send)


def _route_path(scope: Scope) -> str:
    """The path below the scope's `root_path` (what a route matches)."""
    path: str = scope["path"]
    root: str = scope.get("root_path", "")
    return path[len(root) :] if root and path.startswith(root + "/") else path


def _claimed_elsewhere(scope: Scope) -> bool:
    """Whether a route of the app other than these Segment routes matches the request (even but for its
    method)."""
    own = {id(route) for route in routes}
    others = [route for route in getattr(scope.get("router"), "routes", ()) if id(route) not in own]
    return any(route.matches(dict(scope))[0] is not Match.NONE for route in others)


client_routes = [
    Route("/v1/m", metrics, methods=["POST", "OPTIONS"]),
    Route("/v1/projects/{write_key}/settings", project_settings, methods=["GET", "OPTIONS"]),
    Route("/v1/{kind}", intake, methods=["POST", "OPTIONS"]),
    Route("/beacon/v1/batch", intake, methods=["POST", "OPTIONS"]),
    Route("/sourceConfig/", source_config, methods=["GET", "OPTIONS"]),
    Route("/sourceConfig", source_config, methods=["GET", "OPTIONS"]),
    Route("/analytics-next/bundles/{name}", browser_bundle, methods=["GET"]),
    Route("/analytics.js/v1/{write_key}/{name}", browser_bundle, methods=["GET"]),
]
client_fallbacks = [
    Route("/v1/{rest:path}", unknown, methods=ALL_METHODS),
    Route("/beacon/{rest:path}", unknown, methods=ALL_METHODS),
]
routes: list[BaseRoute] = [*client_routes, Route("/segment/{source_id}", segment_webhook, methods=["POST"])]
_KNOWN = len(routes)
routes += [
    Prefixed(client_routes, client_fallbacks),
    *client_fallbacks,
    Route("/segment/{rest:path}", unknown, methods=ALL_METHODS),
]
