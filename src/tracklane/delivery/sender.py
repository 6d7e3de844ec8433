"""Sending one delivery: Standard Webhooks signing for webhooks, plain GET/POST for partner postbacks.

Webhooks carry `webhook-id` (the delivery's message id, the same on every retry and resend),
`webhook-timestamp` (this attempt) and `webhook-signature` (`v1,<base64 HMAC-SHA256>` per signing secret,
space-separated, signed by the `standardwebhooks` library). The body sent is exactly the body signed.
Every failure is classified (`error_class`) so that the retry rules can tell the receiver's failures
from ours; the first KB of the answer is kept for the delivery log. A URL is read with the parser of the
SSRF rules (`tracklane.domain.destinations`) and sent with its host in canonical spelling, so a host the
HTTP client would read differently, or not at all (`0177.0.0.1`), is refused (`refused_destination`) and
never mistaken for our own failure.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime

import httpx
from standardwebhooks.webhooks import Webhook

from tracklane import __version__
from tracklane.delivery.guard import NameNotFound, PinnedTransport, ResolverFailure
from tracklane.domain.delivery import RESPONSE_EXCERPT_BYTES, DeliveryKind
from tracklane.domain.destinations import destination
from tracklane.domain.errors import RefusedDestination
from tracklane.domain.retry import AttemptResult
from tracklane.services.deliveries import AttemptReport, OutboundMessage
from tracklane.services.ports import Clock

SUCCESS_TEXT_WINDOW = 8192
USER_AGENT = f"Tracklane/{__version__} (+webhooks)"


class Sender:
    """One HTTP client (connection pool) per worker; never follows redirects."""

    def __init__(self, transport: PinnedTransport, timeout: float, clock: Clock) -> None:
        self._timeout = timeout
        self._clock = clock
        self._client = httpx.AsyncClient(
            transport=transport, follow_redirects=False, trust_env=False,
            timeout=httpx.Timeout(timeout, connect=min(5.0, timeout)),
        )  # fmt: skip

    async def send(self, message: OutboundMessage) -> AttemptReport:
        started = time.monotonic()
        try:
            async with asyncio.timeout(self._timeout):
                return await self._exchange(message, started)
        except Exception as error:  # classified, logged on the attempt, and judged by the retry rules
            error_class, text = classify(error)
            return AttemptReport(AttemptResult(None, error_class), _elapsed(started), error=text)

    async def _exchange(self, message: OutboundMessage, started: float) -> AttemptReport:
        headers = {"user-agent": USER_AGENT}
        if message.body is not None:
            headers["content-type"] = "application/json"
        if message.delivery.kind is DeliveryKind.WEBHOOK:
            headers.update(signature_headers(message, self._clock()))
        content = None if message.body is None else message.body.encode()
        url = destination(message.url).url
        async with self._client.stream(message.method, url, content=content, headers=headers) as response:
            head = await _read_head(response)
        text = head.decode("utf-8", errors="replace")
        matched = message.success_body_contains is None or message.success_body_contains in text
        result = AttemptResult(response.status_code, None, retry_after(response.headers.get("retry-after")), matched)
        excerpt = head[:RESPONSE_EXCERPT_BYTES].decode("utf-8", errors="replace")
        return AttemptReport(result, _elapsed(started), excerpt or None)

    async def aclose(self) -> None:
        await self._client.aclose()


def signature_headers(message: OutboundMessage, now: datetime) -> dict[str, str]:
    """The three Standard Webhooks headers; one signature per active secret (two during a rotation)."""
    msg_id = message.delivery.message_id
    body = message.body or ""
    signatures = " ".join(Webhook(secret).sign(msg_id, now, body) for secret in message.signing_secrets)
    return {"webhook-id": msg_id, "webhook-timestamp": str(int(now.timestamp())), "webhook-signature": signatures}


def retry_after(raw: str | None) -> timedelta | None:
    """`Retry-After` as delta-seconds or an HTTP date; nonsense is ignored."""
    if not raw:
        return None
    raw = raw.strip()
    if raw.isdigit():
        return timedelta(seconds=int(raw))
    try:
        when = parsedate_to_datetime(raw)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(timedelta(0), when - datetime.now(UTC))


def classify(error: BaseException) -> tuple[str, str]:
    """An error class for the log and the retry rules (`resolver` and `internal` are ours)."""
    kinds: list[tuple[type[BaseException] | tuple[type[BaseException], ...], str]] = [
        (RefusedDestination, "refused_destination"),
        (NameNotFound, "dns"),
        (ResolverFailure, "resolver"),
        ((TimeoutError, httpx.TimeoutException), "timeout"),
        (httpx.ConnectError, "connect"),
        ((httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError), "protocol"),
        ((httpx.UnsupportedProtocol, httpx.InvalidURL), "refused_destination"),
    ]
    for kind, name in kinds:
        if isinstance(error, kind):
            if name == "connect" and isinstance(error.__context__ or error.__cause__, ssl.SSLError):
                name = "tls"
            return name, str(error) or type(error).__name__
    return "internal", f"{type(error).__name__}: {error}"


async def _read_head(response: httpx.Response) -> bytes:
    """At most the first 8 KB of the answer (after decompression); the rest is not read."""
    head = b""
    async for chunk in response.aiter_bytes():
        head += chunk
        if len(head) >= SUCCESS_TEXT_WINDOW:
            break
    return head[:SUCCESS_TEXT_WINDOW]


def _elapsed(started: float) -> int:
    return int((time.monotonic() - started) * 1000)
