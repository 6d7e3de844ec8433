"""A real HTTP receiver on loopback for delivery tests: records every request, answers as scripted."""

from __future__ import annotations

import ssl
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from standardwebhooks.webhooks import Webhook

# Delivery tests: receivers on loopback allowed, retry delays scaled down so the schedule runs in seconds.
DELIVERY = {
    "allow_private_destinations": "127.0.0.1/32",
    "delivery_retry_scale": 0.01,
    "delivery_poll_seconds": 0.05,
    "delivery_timeout_seconds": 5,
    "delivery_lease_seconds": 10,
}


@dataclass
class Received:
    method: str
    target: str  # the raw request target: path and query exactly as sent
    headers: dict[str, str]
    body: bytes
    arrived: float
    finished: float | None = None

    def verified(self, secret: str) -> Any:
        """The payload, after checking the Standard Webhooks signature with the reference library."""
        return Webhook(secret).verify(self.body, self.headers)


@dataclass
class Reply:
    status: int = 200
    body: bytes = b"ok"
    headers: dict[str, str] = field(default_factory=dict)
    hold: threading.Event | None = None  # answer only once this is set
    delay: float = 0.0


Script = Callable[[Received, int], Reply]
"""(request, its index among all requests so far) → the reply."""


def always(status: int = 200, **kwargs: Any) -> Script:
    return lambda _request, _index: Reply(status, **kwargs)


def in_turn(*replies: Reply) -> Script:
    """The n-th request gets the n-th reply; later ones get the last."""
    return lambda _request, index: replies[min(index, len(replies) - 1)]


class Receiver:
    def __init__(self, script: Script, tls: ssl.SSLContext | None = None) -> None:
        self.script = script
        self.received: list[Received] = []
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                receiver._handle(self)

            do_POST = do_GET

            def log_message(self, format: str, *args: Any) -> None:
                return

        class Server(ThreadingHTTPServer):
            request_queue_size = 256
            daemon_threads = True

            def handle_error(self, request: Any, client_address: Any) -> None:
                return  # a client that went away or failed its TLS handshake

        self._server = Server(("127.0.0.1", 0), Handler)
        self.scheme = "http"
        if tls is not None:
            # The handshake happens in the handler's thread, so a failed one is closed like any connection.
            self._server.socket = tls.wrap_socket(self._server.socket, server_side=True, do_handshake_on_connect=False)
            self.scheme = "https"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self._server.server_address[1]}"

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        length = int(handler.headers.get("content-length") or 0)
        body = handler.rfile.read(length) if length else b""
        request = Received(
            handler.command, handler.path, {k.lower(): v for k, v in handler.headers.items()}, body, time.monotonic()
        )
        with self._lock:
            index = len(self.received)
            self.received.append(request)
        reply = self.script(request, index)
        if reply.hold is not None:
            reply.hold.wait(60)
        if reply.delay:
            time.sleep(reply.delay)
        try:
            handler.send_response(reply.status)
            for name, value in reply.headers.items():
                handler.send_header(name, value)
            handler.send_header("content-length", str(len(reply.body)))
            handler.end_headers()
            handler.wfile.write(reply.body)
        except OSError:  # the sender went away (a killed worker)
            pass
        request.finished = time.monotonic()

    def wait_for(self, count: int, timeout: float = 30) -> list[Received]:
        """Poll until at least `count` requests arrived, or fail with what did arrive."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if len(self.received) >= count:
                    return list(self.received)
            time.sleep(0.02)
        raise AssertionError(f"expected {count} requests, got {len(self.received)}")

    def start(self) -> Receiver:
        self._thread.start()
        return self

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@contextmanager
def receiving(script: Script | None = None, tls: ssl.SSLContext | None = None) -> Iterator[Receiver]:
    receiver = Receiver(script or always(200), tls).start()
    try:
        yield receiver
    finally:
        receiver.close()


def poll(check: Callable[[], Any], timeout: float = 30, interval: float = 0.05) -> Any:
    """Call `check` until it returns something truthy, or fail at the deadline with the last value."""
    deadline = time.monotonic() + timeout
    value = check()
    while not value:
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s; last value: {value!r}")
        time.sleep(interval)
        value = check()
    return value
