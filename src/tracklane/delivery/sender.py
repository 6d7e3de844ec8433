"""Sending one delivery: Standard Webhooks signing for webhooks, plain GET/POST for partner postbacks.

Webhooks carry `webhook-id` (the delivery's message id, the same on every retry and resend),
`webhook-timestamp` (this attempt) and `webhook-signature` (`v1,<base64 HMAC-SHA256>` per signing secret,
space-separated, signed by the `standardwebhooks` library). The body sent is exactly the body signed.
Every failure is classified (`error_class`) so that the retry rules can tell the receiver's failures
from ours; the first KB of the answer is kept for the delivery log. A URL is read with the parser of the
SSRF rules (`tracklane.domain.destinations`) and sent with its host in canonical spelling, so a host the
HTTP client would read differently, or not at all (`0177.0.0.1`), is refused (`refused_destination`) and
never mistaken for our own failure.

The HTTP client is aiohttp's: its connection pool answers a few thousand deliveries a second from one
worker on a small machine, where httpx's async pool answered a few hundred (`bench/deliveries.py`). Its
resolver is the SSRF guard's (`PinnedResolver`), it keeps no cookies and reads no proxy settings.
"""

from __future__ import annotations

import asyncio
import ssl
import time
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime

import aiohttp
from standardwebhooks.webhooks import Webhook

from tracklane import __version__
from tracklane.delivery.guard import NameNotFound, PinnedResolver, ResolverFailure
from tracklane.domain.delivery import RESPONSE_EXCERPT_BYTES, DeliveryKind
from tracklane.domain.destinations import destination
from tracklane.domain.errors import RefusedDestination
from tracklane.domain.retry import AttemptResult
from tracklane.services.deliveries import AttemptReport, OutboundMessage
from tracklane.services.ports import Clock

SUCCESS_TEXT_WINDOW = 8192
USER_AGENT = f"Tracklane/{__version__} (+webhooks)"


class Sender:
    """One HTTP client (connection pool) per worker, made on its first send (inside the event loop); never
    follows redirects. `tls` is the certificate check (by default the system's trusted roots)."""

    def __init__(self, guard: PinnedResolver, timeout: float, clock: Clock, tls: ssl.SSLContext | None = None) -> None:
        self._guard = guard
        self._timeout = timeout
        self._clock = clock
        self._tls = tls
        self._client: aiohttp.ClientSession | None = None

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
        target = destination(message.url)
        if target.host.address is not None:  # the client resolves names only: an address is vetted here
            await self._guard.vetted(target.host, target.port)
        async with self._session().request(
            message.method, target.url, data=content, headers=headers, allow_redirects=False
        ) as response:
            head = await _read_head(response)
        text = head.decode("utf-8", errors="replace")
        matched = message.success_body_contains is None or message.success_body_contains in text
        result = AttemptResult(response.status, None, retry_after(response.headers.get("retry-after")), matched)
        excerpt = head[:RESPONSE_EXCERPT_BYTES].decode("utf-8", errors="replace")
        return AttemptReport(result, _elapsed(started), excerpt or None)

    def _session(self) -> aiohttp.ClientSession:
        if self._client is None:
            connector = aiohttp.TCPConnector(
                resolver=self._guard, use_dns_cache=False, ssl=self._tls if self._tls is not None else True
            )
            timeout = aiohttp.ClientTimeout(total=self._timeout, connect=min(5.0, self._timeout))
            self._client = aiohttp.ClientSession(
                connector=connector, timeout=timeout, cookie_jar=aiohttp.DummyCookieJar(), trust_env=False
            )
        return self._client

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.close()
            self._client = None


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
        (TimeoutError, "timeout"),
        ((aiohttp.ClientSSLError, aiohttp.ClientConnectorCertificateError), "tls"),
        (aiohttp.ClientConnectorError, "connect"),
        ((aiohttp.ServerDisconnectedError, aiohttp.ClientPayloadError, aiohttp.ClientResponseError,
          aiohttp.ClientOSError), "protocol"),
        ((aiohttp.InvalidURL, aiohttp.NonHttpUrlClientError), "refused_destination"),
    ]  # fmt: skip
    for kind, name in kinds:
        if isinstance(error, kind):
            return name, str(error) or type(error).__name__
    return "internal", f"{type(error).__name__}: {error}"


async def _read_head(response: aiohttp.ClientResponse) -> bytes:
    """At most the first 8 KB of the answer (after decompression); the rest is not read."""
    head = b""
    while len(head) < SUCCESS_TEXT_WINDOW:
        chunk = await response.content.read(SUCCESS_TEXT_WINDOW - len(head))
        if not chunk:
            break
        head += chunk
    return head


def _elapsed(started: float) -> int:
    return int((time.monotonic() - started) * 1000)
