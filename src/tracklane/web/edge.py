"""The HTTP edge: one ASGI middleware in front of every route that gives the request its id (`X-Request-Id`:
the caller's when sane, else a new one; set for the log lines, answered on every response), times it for
the metrics (`metrics.observe_request`, by the route the router matched), resolves the client's address
(`forwarded`), applies the rate limits (`ratelimit`) and bounds the request body (`limits`), and answers
what it refuses in the shape of the route's family: `{"code", "message"}` with Segment's CORS headers on
Segment intake, `{"error", "message"}` elsewhere (with `X-Request-Id` on the API, with the CORS headers
`/clk` and `/pixel` always carry). A `429` carries `Retry-After`, exposed to browsers by
`Access-Control-Expose-Headers`.

The app configures it at start-up from the settings (`configure`); until then it passes requests through.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable
from urllib.parse import parse_qsl

from starlette.requests import ClientDisconnect, Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tracklane.domain.conversion_import import MAX_FILE_BYTES
from tracklane.web import errors, limits, logs, metrics, segment, tracking
from tracklane.web.forwarded import ClientAddress, Network
from tracklane.web.ratelimit import Family, Limiter, RatePolicy, digest

log = logging.getLogger("tracklane.edge")

SEGMENT_PREFIXES = ("/v1/", "/beacon/", "/segment/", "/sourceConfig")
TRACKING_PATHS = ("/clk", "/postback", "/pixel")
#: Routes that take a larger body than `max_body_bytes`: an import's CSV file, and a multipart upload's
#: framing around it (the route itself refuses a file over its limit, naming it).
LARGE_BODY_PATHS = dict.fromkeys(("/api/v1/conversions/import", "/ui/conversions/import"), MAX_FILE_BYTES + 64 * 1024)


@runtime_checkable
class EdgeSettings(Protocol):
    """The settings the edge reads (the process's settings provide them)."""

    @property
    def max_body_bytes(self) -> int: ...
    @property
    def trusted_proxy_networks(self) -> tuple[Network, ...]: ...
    @property
    def rate_limit_per_second(self) -> float: ...
    @property
    def rate_limit_api_per_second(self) -> float: ...
    @property
    def rate_limit_burst_seconds(self) -> float: ...
    @property
    def rate_limit_failures_per_second(self) -> float: ...
    @property
    def rate_limit_failure_burst(self) -> int: ...


@dataclass(slots=True)
class EdgePolicy:
    """What the edge enforces in this process, and the state (buckets) it keeps for it."""

    max_body_bytes: int = limits.DEFAULT_MAX_BODY
    clients: ClientAddress = field(default_factory=lambda: ClientAddress(()))
    limiter: Limiter = field(default_factory=lambda: Limiter(RatePolicy()))

    def body_limit(self, path: str) -> int:
        """The largest body this path takes."""
        return max(self.max_body_bytes, LARGE_BODY_PATHS.get(path, 0))

    @classmethod
    def of(cls, settings: object) -> EdgePolicy:
        if not isinstance(settings, EdgeSettings):
            raise TypeError("the settings lack the edge's values (see tracklane.web.edge.EdgeSettings)")
        rates = RatePolicy(
            per_second=settings.rate_limit_per_second,
            api_per_second=settings.rate_limit_api_per_second,
            burst_seconds=settings.rate_limit_burst_seconds,
            failures_per_second=settings.rate_limit_failures_per_second,
            failure_burst=settings.rate_limit_failure_burst,
        )
        return cls(settings.max_body_bytes, ClientAddress(settings.trusted_proxy_networks), Limiter(rates))


def configure(state: object, settings: object) -> None:
    """Give the app (its `state`) the edge policy of these settings."""
    state.edge = EdgePolicy.of(settings)  # type: ignore[attr-defined]


def family_of(path: str) -> Family:
    if path.startswith("/r/") or path in TRACKING_PATHS:
        return Family.TRACKING
    if path.startswith(SEGMENT_PREFIXES):
        return Family.SEGMENT
    if path.startswith("/api/v1/"):
        return Family.API
    if segment.prefixed_intake(path):  # a Segment intake route under a path prefix
        return Family.SEGMENT
    return Family.OTHER


def credential_of(scope: Scope, family: Family) -> bytes | None:
    """The digest of the credential the request presents, read from its head only."""
    if family is Family.TRACKING:
        if scope["path"] != "/postback" or not scope["query_string"]:
            return None
        query = scope["query_string"].decode("latin-1")
        token = next((value for name, value in parse_qsl(query) if name == "secure"), None)
        return digest(token.encode()) if token else None
    if (
        family is Family.SEGMENT
        and scope["path"].startswith("/segment/")
        and not segment.prefixed_intake(scope["path"])
    ):
        return digest(scope["path"].encode())  # the webhook's source (not a client route under /segment/)
    for name, value in scope["headers"]:
        if name == b"authorization" or (family is Family.SEGMENT and name == b"x-write-key"):
            return digest(value)
    if family is Family.SEGMENT and b"writeKey=" in scope["query_string"]:
        query = scope["query_string"].decode("latin-1")
        key = next((value for name, value in parse_qsl(query) if name == "writeKey"), None)
        return digest(key.encode()) if key else None
    return None


def route_headers(scope: Scope, family: Family) -> dict[str, str]:
    """The headers the route answers every request with (CORS where it has it)."""
    if family is Family.SEGMENT:
        return segment.cors(Request(scope))
    if family is Family.TRACKING:
        if scope["path"] == "/clk":
            return {**tracking.CORS, **tracking.NO_STORE}
        if scope["path"] == "/pixel":
            return {**tracking.NO_STORE, "Access-Control-Allow-Origin": "*"}
        return dict(tracking.NO_STORE)
    if family is Family.API:
        return {errors.REQUEST_ID_HEADER: errors.request_id(Request(scope))}
    return {}


async def refuse(
    scope: Scope, send: Send, family: Family, status: int, code: str, message: str, headers: dict[str, str]
) -> None:
    """Answer a refused request in its family's error shape."""
    if family is Family.SEGMENT:
        body: dict[str, str] = {"code": code, "message": message}
    else:
        body = {"error": code, "message": message}
        if status == 413:
            body["field"] = "body"
    encoded = json.dumps(body).encode()
    all_headers = {**route_headers(scope, family), **headers}
    raw = [(b"content-type", b"application/json"), (b"content-length", str(len(encoded)).encode())]
    raw += [(name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in all_headers.items()]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": encoded})


def _failed(family: Family, path: str, status: int, credential: bytes | None) -> bool:
    """Whether an answer tells that a credential was wrong (what the failure limit counts). On the API only
    a key that was sent counts (a request with none guesses nothing); a postback token or a write key may
    be in the body, so there every refusal counts."""
    if family is Family.API:
        return status == 401 and credential is not None
    return status == 401 or (status == 403 and path == "/postback")


REQUEST_ID = errors.REQUEST_ID_HEADER.lower().encode("latin-1")


def _request_id(scope: Scope) -> str:
    """The request's id (`errors.request_id` finds the same one in the scope's state)."""
    state = scope.setdefault("state", {})
    known: str | None = state.get("request_id")
    if known is None:
        offered = ""
        for name, value in scope["headers"]:
            if name == REQUEST_ID:
                offered = value.decode("latin-1")
                break
        known = state["request_id"] = errors.new_request_id(offered)
    return known


class Edge:
    """The middleware: request id and timing, client address, rate limits, bounded bodies (see the module's
    docstring)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        began = time.perf_counter()
        request_id = _request_id(scope)
        context = logs.REQUEST_ID.set(request_id)
        header = (REQUEST_ID, request_id.encode("latin-1"))
        status = 0  # none: the client went away before any answer

        async def answered(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = message.get("headers")
                if not isinstance(headers, list):
                    headers = message["headers"] = [tuple(pair) for pair in headers or ()]
                if header not in headers:  # an error answer already names it (the same id, lowercase name)
                    headers.append(header)
            await send(message)

        try:
            await self._edge(scope, receive, answered)
        except Exception:
            status = status or 500  # the fault handler in front answers it
            raise
        finally:
            logs.REQUEST_ID.reset(context)
            metrics.observe_request(scope.get("route"), status, time.perf_counter() - began)

    async def _edge(self, scope: Scope, receive: Receive, send: Send) -> None:
        policy: EdgePolicy | None = getattr(scope["app"].state, "edge", None) if "app" in scope else None
        if policy is None:
            await self.app(scope, receive, send)
            return
        ip = policy.clients.resolve(scope)
        path: str = scope["path"]
        family = family_of(path)
        if family is Family.OTHER:
            await self._bounded(scope, receive, send, family, policy)
            return
        credential = credential_of(scope, family)
        guarded = family is not Family.TRACKING or path == "/postback"
        wait = policy.limiter.admit(family, ip, credential, guarded=guarded)
        if wait:
            headers = {"Retry-After": str(wait), "Access-Control-Expose-Headers": "Retry-After"}
            await refuse(scope, send, family, 429, "rate_limited", f"too many requests; retry in {wait} s", headers)
            return
        status = 500

        async def watched(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self._bounded(scope, receive, watched, family, policy)
        finally:
            policy.limiter.observe(family, ip, credential, status, failed=_failed(family, path, status, credential))

    async def _bounded(self, scope: Scope, receive: Receive, send: Send, family: Family, policy: EdgePolicy) -> None:
        if family is Family.SEGMENT or scope["method"] in ("GET", "HEAD", "OPTIONS"):
            # Segment intake reads (and inflates) its own bodies; these methods carry none we read.
            await self.app(scope, receive, send)
            return
        limit = policy.body_limit(scope["path"])
        close = {"Connection": "close"}
        try:
            limits.check_head(scope, limit)
        except limits.Refusal as head:
            await refuse(scope, send, family, head.status, head.code, head.message, {**head.headers, **close})
            return
        scope[limits.SCOPE_KEY] = limit
        started = False

        async def watched(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, limits.bounded(receive, limit), watched)
        except limits.BodyTooLarge as error:
            if started:
                raise
            await refuse(scope, send, family, 413, "payload_too_large", str(error), close)
        except ClientDisconnect:
            if started:
                raise
            log.debug("client disconnected before its body was read: %s %s", scope["method"], scope["path"])
