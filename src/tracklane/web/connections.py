"""Connection timeouts: how long a client may take to send a request's head and its body, and how long a
connection may sit idle, enforced in the HTTP protocol itself (below the ASGI app, which only sees a
request once its head has arrived).

uvicorn closes a kept-alive connection after `timeout_keep_alive`, but a connection that never sends a
byte, or sends its head a byte at a time, is kept open forever, and so is a body that trickles in. This
module's protocol (uvicorn's httptools protocol with deadlines) keeps one timer per connection:

- idle: armed when the connection opens and after each response; no byte of a new request within it
  closes the connection;
- head: armed at the first byte of a request; its head (request line and headers, at most
  `MAX_HEAD_BYTES`) must be complete within it, else `408` and the connection is closed (`431` when the
  head is too large);
- body: armed when the head is complete; the whole body must arrive within it, else `408` (when no answer
  has started) and the connection is closed. The app then reads a disconnect.

While the app works on a request no timer runs: its own waits are bounded where they are made.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from functools import partial
from typing import Any, Literal, cast

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

log = logging.getLogger("tracklane.connections")

MAX_HEAD_BYTES = 64 * 1024
"""The largest request head (request line and headers) read; a larger one is answered 431."""

Phase = Literal["idle", "head", "body", "app"]


@dataclass(frozen=True, slots=True)
class ConnectionTimeouts:
    """Seconds allowed for a request's head, for its body, and for an idle connection."""

    head: float
    body: float
    idle: float


def _status(code: int, reason: str) -> bytes:
    text = reason.encode()
    return (
        b"HTTP/1.1 %d %s\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: %d\r\n"
        b"connection: close\r\n\r\n%s" % (code, text, len(text), text)
    )


REQUEST_TIMEOUT = _status(408, "Request Timeout")
HEAD_TOO_LARGE = _status(431, "Request Header Fields Too Large")


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with the idle, head and body deadlines of `ConnectionTimeouts`."""

    def __init__(self, *args: Any, timeouts: ConnectionTimeouts, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._timeouts = timeouts
        self._phase: Phase = "idle"
        self._timer: asyncio.TimerHandle | None = None
        self._timer_phase: Phase | None = None
        self._head_bytes = 0

    def _arm(self, phase: Phase, seconds: float) -> None:
        self._disarm()
        self._timer = self.loop.call_later(seconds, self._expired, phase)
        self._timer_phase = phase

    def _disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
            self._timer_phase = None

    def _expired(self, phase: Phase) -> None:
        self._timer = None
        self._timer_phase = None
        if self.transport.is_closing():
            return
        client = f"{self.client[0]}:{self.client[1]}" if self.client else "a client"
        if phase == "idle":
            log.debug("closing idle connection from %s", client)
            self.transport.close()
            return
        log.debug("closing connection from %s: request %s not received in time", client, phase)
        cycle = self.cycle
        if phase == "head":
            # `cycle` is the previous request's: answer only when its response is not still being written.
            if cycle is None or cycle.response_complete:
                self.transport.write(REQUEST_TIMEOUT)
        elif cycle is not None:
            if not cycle.response_started:
                self.transport.write(REQUEST_TIMEOUT)
            # The app is waiting for the body: it reads a disconnect, and anything it sends is dropped.
            cycle.disconnected = True
            cycle.message_event.set()
        self.transport.close()

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm("idle", self._timeouts.idle)

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._phase in ("idle", "app") and self._timer_phase in (None, "idle"):
            # The first bytes of a request (possibly only blank lines before one).
            self._head_bytes = 0
            self._arm("head", self._timeouts.head)
        if self._timer_phase == "head":
            self._head_bytes += len(data)
        super().data_received(data)
        if self._phase == "head" and self._head_bytes > MAX_HEAD_BYTES and not self.transport.is_closing():
            self._disarm()
            self.transport.write(HEAD_TOO_LARGE)
            self.transport.close()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._phase = "head"
        if self._timer_phase != "head":
            self._head_bytes = 0
            self._arm("head", self._timeouts.head)

    def on_headers_complete(self) -> None:
        self._phase = "body"
        self._head_bytes = 0
        super().on_headers_complete()
        if self.pipeline:
            # A pipelined request waits (reading paused) for the one before it: its body deadline starts
            # when it is taken up, in `on_response_complete`.
            self._disarm()
        else:
            self._arm("body", self._timeouts.body)

    def on_message_complete(self) -> None:
        super().on_message_complete()
        if self.cycle is not None and self.cycle.response_complete and not self.pipeline:
            # Answered before its body was read (a refusal): the connection is idle again.
            self._to_idle()
        else:
            self._phase = "app"
            self._disarm()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if self.transport.is_closing():
            return
        # uvicorn arms its own keep-alive timer (whole seconds); ours replaces it.
        self._unset_keepalive_if_required()
        if self._phase == "body":
            self._arm("body", self._timeouts.body)
        elif self._phase == "app" and not self.pipeline and self.cycle is not None and self.cycle.response_complete:
            self._to_idle()

    def _to_idle(self) -> None:
        self._phase = "idle"
        self._arm("idle", self._timeouts.idle)


def guarded_protocol(timeouts: ConnectionTimeouts) -> type[asyncio.Protocol]:
    """What to pass as uvicorn's `http`: the guarded protocol with these timeouts (a partial, which
    uvicorn only calls, and which pickles to `--workers` processes)."""
    return cast(type[asyncio.Protocol], partial(GuardedHttpToolsProtocol, timeouts=timeouts))
