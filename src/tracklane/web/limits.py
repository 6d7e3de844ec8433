"""Request bodies bounded while they are read: the declared size first, then the bytes as they arrive.

Tracking and API routes take an uncompressed body of at most `max_body_bytes`. `check_head` refuses a
request before any of its body is read: `Content-Length` over the limit is `413` at once, a
`Content-Encoding` other than `identity` is `415` (these routes decompress nothing, so a gzip bomb has
nothing to expand). `bounded` wraps the ASGI `receive` so that a body sent without a length (chunked)
stops being read at the limit (`BodyTooLarge`, answered `413`); `read_body` is how handlers read a body,
with the same bound of their own. A refused request is answered with `Connection: close`, so the rest of
its body is never read.

Segment intake (`/v1/*`, `/segment/*`) reads its own bodies, gzip included, with its own limits.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.types import Message, Receive, Scope

DEFAULT_MAX_BODY = 64 * 1024
SCOPE_KEY = "tracklane.max_body_bytes"
"""Where the edge leaves the route's body limit in the ASGI scope, for `read_body`."""


class BodyTooLarge(Exception):
    """The body went past the route's limit while it was read."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"the body must be at most {limit} bytes")
        self.limit = limit


class Refusal(Exception):
    """A request refused from its head alone: the status and the sentence to answer."""

    def __init__(self, status: int, code: str, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.headers = headers or {}


def too_large(limit: int) -> Refusal:
    return Refusal(413, "payload_too_large", f"the body must be at most {limit} bytes")


def check_head(scope: Scope, limit: int) -> None:
    """Refuse (raise `Refusal`) a body the route cannot take, before reading any of it."""
    length: bytes | None = None
    encoding: bytes | None = None
    for name, value in scope["headers"]:
        if name == b"content-length":
            length = value
        elif name == b"content-encoding":
            encoding = value
    if encoding is not None and encoding.strip().lower() not in (b"", b"identity"):
        raise Refusal(
            415,
            "unsupported_encoding",
            "this route takes an uncompressed body (no Content-Encoding)",
            {"Accept-Encoding": "identity"},
        )
    # The HTTP parser has already refused a Content-Length that is not a number.
    if length is not None and length.strip().isdigit() and int(length) > limit:
        raise too_large(limit)


def bounded(receive: Receive, limit: int) -> Receive:
    """`receive`, raising `BodyTooLarge` as soon as the body read so far passes `limit` bytes."""
    seen = 0

    async def limited() -> Message:
        nonlocal seen
        message = await receive()
        if message["type"] == "http.request":
            seen += len(message.get("body", b""))
            if seen > limit:
                raise BodyTooLarge(limit)
        return message

    return limited


async def read_body(request: Request) -> bytes:
    """The request body, read chunk by chunk and refused (`BodyTooLarge`) past the route's limit; kept on
    the request, so `request.form()` and a second read see the same bytes."""
    cached: bytes | None = getattr(request, "_body", None)
    if cached is not None:
        return cached
    limit: int = request.scope.get(SCOPE_KEY, DEFAULT_MAX_BODY)
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise BodyTooLarge(limit)
    parts: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge(limit)
        parts.append(chunk)
    body = b"".join(parts)
    request._body = body
    return body
