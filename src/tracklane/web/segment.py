"""Segment-compatible intake (plain Starlette, like the tracking hot path): `/v1/*` for Segment and
RudderStack clients, the settings the browser SDK loads, and `/segment/{source_id}` for Segment's own
Webhooks (Actions) destination. See DESIGN §3.2 and docs/segment.md.

Every answer carries CORS headers. Success is exactly `200 {"success": true}` (duplicates included);
errors are `{"code", "message"}` with 400 (unreadable body, too large), 401 (no or unknown write key,
bad signature), 429 with `Retry-After` (too many requests in flight) or 503 (storage fault); the client
retries those two and dedup on messageId keeps each message once.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import logging
import re
import zlib
from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Route

from tracklane.domain.errors import IntakeError, InvalidParameter, PostbackRefused, StorageUnavailable
from tracklane.domain.segment.messages import MAX_REQUEST_BYTES, TYPE_BY_PATH, Envelope, read_envelope
from tracklane.domain.segment.model import Source
from tracklane.services.registry import Services

log = logging.getLogger("tracklane.segment")

ALLOW_HEADERS = (
    "content-type, content-encoding, authorization, x-retry-count, x-write-key, anonymousid, sentat, "
    "rsa-retry-attempt, rsa-since-last-attempt, rsa-since-first-attempt, rsa-retry-reason, "
    "rsa-recovered"
)
SUCCESS = {"success": True}
_BUNDLE = re.compile(r"^[\w.-]+\.js$")
BATCH_PATHS = ("batch", "b", "import")


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
    """The body, gunzipped when `Content-Encoding: gzip`, chunked or not; at most 500 KB once decompressed."""
    gzipped = "gzip" in request.headers.get("content-encoding", "").lower()
    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS) if gzipped else None
    parts: list[bytes] = []
    size = 0
    try:
        async for chunk in request.stream():
            data = inflater.decompress(chunk, MAX_REQUEST_BYTES + 1 - size) if inflater else chunk
            size += len(data)
            if size > MAX_REQUEST_BYTES or (inflater is not None and inflater.unconsumed_tail):
                raise IntakeError(400, "payload_too_large", f"the body must be at most {MAX_REQUEST_BYTES} bytes")
            parts.append(data)
    except zlib.error:
        raise IntakeError(400, "invalid_body", "the body is not valid gzip") from None
    return b"".join(parts)


def parse_json(raw: bytes) -> Any:
    """JSON whatever the Content-Type says; numbers with a fraction become exact Decimals."""
    try:
        return json.loads(raw, parse_float=Decimal)
    except (ValueError, UnicodeDecodeError):
        raise IntakeError(400, "invalid_json", "the body is not valid JSON") from None


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
    key = envelope.write_key or header_write_key(request)
    if key is None:
        raise IntakeError(401, "no_write_key", "send the write key as Basic auth or as writeKey in the body")
    source = await _container(request).segment.source_for_write_key(key)
    if source is None:
        raise IntakeError(401, "invalid_write_key", "the write key is unknown")
    return source


class InFlight:
    """Counts the intake requests this process is working on; beyond the limit they are throttled (429)."""

    def __init__(self) -> None:
        self.count = 0


def _in_flight(request: Request) -> InFlight:
    state = request.app.state
    if not hasattr(state, "segment_in_flight"):
        state.segment_in_flight = InFlight()
    counter: InFlight = state.segment_in_flight
    return counter


async def intake(request: Request) -> Response:
    """`POST /v1/{type}`, `/v1/{t,i,p,s,g,a}`, `/v1/batch`, `/v1/b`, `/v1/import`, `/beacon/v1/batch`."""
    if request.method == "OPTIONS":
        return Response(status_code=204, headers=cors(request))
    counter = _in_flight(request)
    if counter.count >= _container(request).settings.segment_max_in_flight:
        return _error(request, IntakeError(429, "rate_limited", "too many requests at once; retry"))
    counter.count += 1
    try:
        return await _intake(request)
    finally:
        counter.count -= 1


async def _intake(request: Request) -> Response:
    received_at = datetime.now(UTC)
    kind = request.path_params.get("kind", "batch")
    try:
        if kind not in BATCH_PATHS and kind not in TYPE_BY_PATH:
            raise IntakeError(404, "not_found", f"/v1/{kind} is not a Segment route")
        body = parse_json(await read_body(request))
        try:
            envelope = read_envelope(body, None if kind in BATCH_PATHS else TYPE_BY_PATH[kind])
        except InvalidParameter as error:
            raise IntakeError(400, "invalid_body", error.message) from None
        source = await _source(request, envelope)
        await _ingest(request, source, envelope, received_at, relayed=False)
    except IntakeError as error:
        return _error(request, error)
    return _answer(request, SUCCESS)


async def _ingest(
    request: Request, source: Source, envelope: Envelope, received_at: datetime, *, relayed: bool
) -> None:
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
        raise IntakeError(503, "unavailable", "storage is unavailable; retry") from None
    except PostbackRefused as error:  # only "busy": concurrent writers kept colliding
        raise IntakeError(503, error.code, error.message) from None
    for reason in report.dropped:
        log.warning("segment source %s dropped %s", source.id, reason)
    log.debug("segment source %s: %d stored, %d duplicates", source.id, report.stored, report.duplicates)


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
    base = container.settings.public_url or str(request.base_url)
    scheme, _, host = base.rstrip("/").partition("://")
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
    """analytics.js from its cdnURL: `/analytics-next/bundles/{chunk}.js` (loaded on demand, e.g. for `ajs_`
    query parameters) and `/analytics.js/v1/{writeKey}/analytics.min.js`, from TRACKLANE_SEGMENT_BROWSER_BUNDLES."""
    directory = _container(request).settings.segment_browser_bundles
    name = request.path_params.get("name", "index.js")
    if name.startswith("analytics") and "write_key" in request.path_params:
        name = "index.js"
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
        source_id = request.path_params["source_id"]
        source = await _container(request).segment.get_source(source_id)
        if source is None:
            raise IntakeError(404, "not_found", f"source {source_id} does not exist")
        raw = await read_body(request)
        verify_signature(raw, request.headers.get("x-signature"), source.webhook_secret)
        body = parse_json(raw)
        if isinstance(body, dict) and "batch" not in body:
            body = [body]
        try:
            envelope = read_envelope(body, None)
        except InvalidParameter as error:
            raise IntakeError(400, "invalid_body", error.message) from None
        await _ingest(request, source, envelope, received_at, relayed=True)
    except IntakeError as error:
        return _error(request, error)
    return _answer(request, SUCCESS)


def verify_signature(raw: bytes, signature: str | None, secret: str) -> None:
    """Accept the body's signature, or (batch mode) the signature of the array's first element's raw text."""
    if not signature:
        raise IntakeError(401, "missing_signature", "X-Signature is required")
    candidates = [raw]
    text = raw.decode("utf-8", errors="replace").strip()
    if text.startswith("["):
        start = len(text) - len(text[1:].lstrip())
        try:
            _, end = json.JSONDecoder().raw_decode(text, start)
            candidates.append(text[start:end].encode())
        except ValueError:
            pass
    for candidate in candidates:
        expected = hmac.new(secret.encode(), candidate, hashlib.sha1).hexdigest()
        if hmac.compare_digest(expected, signature.strip().lower()):
            return
    raise IntakeError(401, "invalid_signature", "X-Signature does not match the source's webhook secret")


routes = [
    Route("/v1/m", metrics, methods=["POST", "OPTIONS"]),
    Route("/v1/projects/{write_key}/settings", project_settings, methods=["GET", "OPTIONS"]),
    Route("/v1/{kind}", intake, methods=["POST", "OPTIONS"]),
    Route("/beacon/v1/batch", intake, methods=["POST", "OPTIONS"]),
    Route("/sourceConfig/", source_config, methods=["GET", "OPTIONS"]),
    Route("/sourceConfig", source_config, methods=["GET", "OPTIONS"]),
    Route("/segment/{source_id:int}", segment_webhook, methods=["POST"]),
    Route("/analytics-next/bundles/{name}", browser_bundle, methods=["GET"]),
    Route("/analytics.js/v1/{write_key}/{name}", browser_bundle, methods=["GET"]),
]
