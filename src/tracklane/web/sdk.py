"""`GET /sdk.js`: the browser SDK (`static/sdk.js`, package data), served for any site to load by
`<script src>`.

The script is read once at import; its version is the `VERSION` it declares. `/sdk.js?v=<that version>`
is cached for a year (`immutable`); any other URL for a few minutes, so a site that does not pin a version
gets a new one soon after an upgrade. Both carry a strong `ETag` (a hash of the script), and a matching
`If-None-Match` is answered `304`. The answer is readable from any origin (CORS, `Cross-Origin-Resource-Policy`)
and never sniffed as anything but JavaScript.
"""

from __future__ import annotations

import hashlib
import re
from importlib import resources

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

SCRIPT: bytes = (resources.files("tracklane.web") / "static" / "sdk.js").read_bytes()
_DECLARED = re.search(rb'var VERSION = "([0-9A-Za-z.+-]+)";', SCRIPT)
if _DECLARED is None:  # pragma: no cover - the packaged script always declares it
    raise RuntimeError("static/sdk.js declares no VERSION")
VERSION: str = _DECLARED.group(1).decode()
ETAG = '"' + hashlib.sha256(SCRIPT).hexdigest()[:32] + '"'

PINNED_CACHE = "public, max-age=31536000, immutable"
UNPINNED_CACHE = "public, max-age=300"
MEDIA_TYPE = "application/javascript; charset=utf-8"


def _headers(request: Request) -> dict[str, str]:
    pinned = request.query_params.get("v") == VERSION
    return {
        "Cache-Control": PINNED_CACHE if pinned else UNPINNED_CACHE,
        "ETag": ETAG,
        "Access-Control-Allow-Origin": "*",
        "Cross-Origin-Resource-Policy": "cross-origin",
        "X-Content-Type-Options": "nosniff",
        "X-Tracklane-SDK-Version": VERSION,
        "Access-Control-Expose-Headers": "ETag, X-Tracklane-SDK-Version",
    }


def _matches(if_none_match: str) -> bool:
    tags = {tag.strip().removeprefix("W/") for tag in if_none_match.split(",")}
    return ETAG in tags or "*" in tags


async def sdk_script(request: Request) -> Response:
    """The SDK, or `304` when the browser's copy is current (HEAD: the same headers, no body)."""
    headers = _headers(request)
    if _matches(request.headers.get("if-none-match", "")):
        return Response(status_code=304, headers=headers)
    return Response(SCRIPT, media_type=MEDIA_TYPE, headers=headers)


routes = [Route("/sdk.js", sdk_script, methods=["GET", "HEAD"])]
