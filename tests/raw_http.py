"""HTTP/1.1 over a plain socket, for the tests that must control every byte and its timing (slow heads,
bodies that never end, connections that say nothing)."""

from __future__ import annotations

import json
import select
import socket
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def connect(base_url: str, timeout: float = 10) -> socket.socket:
    parts = urlsplit(base_url)
    sock = socket.create_connection((parts.hostname, parts.port), timeout=timeout)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def head(method: str, path: str, headers: dict[str, str] | None = None) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", "Host: 127.0.0.1", *(f"{k}: {v}" for k, v in (headers or {}).items())]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def readable(sock: socket.socket, timeout: float = 0) -> bool:
    return bool(select.select([sock], [], [], timeout)[0])


def read_answer(sock: socket.socket, timeout: float = 10) -> Answer:
    """One response (Content-Length or connection close delimited), within `timeout` seconds."""
    deadline = time.monotonic() + timeout
    data = b""
    while b"\r\n\r\n" not in data:
        data += _recv(sock, deadline)
    raw_head, _, body = data.partition(b"\r\n\r\n")
    status_line, *header_lines = raw_head.decode("latin-1").split("\r\n")
    headers = {name.strip().lower(): value.strip() for name, _, value in (h.partition(":") for h in header_lines)}
    length = int(headers.get("content-length", "-1"))
    while length >= 0 and len(body) < length:
        body += _recv(sock, deadline)
    return Answer(int(status_line.split()[1]), headers, body[:length] if length >= 0 else body)


def _recv(sock: socket.socket, deadline: float) -> bytes:
    remaining = deadline - time.monotonic()
    if remaining <= 0 or not readable(sock, remaining):
        raise TimeoutError("no answer in time")
    chunk = sock.recv(65536)
    if not chunk:
        raise ConnectionError("closed before a whole answer")
    return chunk


def closed_within(sock: socket.socket, seconds: float) -> bool:
    """Whether the server closes the connection (EOF or reset) within `seconds`, whatever it sends first."""
    deadline = time.monotonic() + seconds
    while (remaining := deadline - time.monotonic()) > 0:
        if not readable(sock, remaining):
            return False
        try:
            if not sock.recv(65536):
                return True
        except ConnectionError:
            return True
    return False
