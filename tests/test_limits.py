"""Request bodies are bounded while they are read: a declared length over the limit is refused before any
of the body is read, a body without a length stops being read at the limit, and a compressed body is
refused where nothing would inflate it. Through a real server, on plain sockets."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.raw_http import Answer, closed_within, connect, head, read_answer, readable
from tests.servers import RunningServer, running_server, sqlite_url

LIMIT = 64 * 1024
BROWSER = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36"


@pytest.fixture(scope="module")
def edge(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    with running_server(sqlite_url(tmp_path_factory.mktemp("limits"))) as running:
        yield running


def _auth(server: RunningServer) -> dict[str, str]:
    return {"Authorization": f"Bearer {server.admin_key}"}


ROUTES = [
    ("/postback", {}),
    ("/clk", {}),
    ("/api/v1/advertisers", {"admin": "yes"}),
]


def _headers(server: RunningServer, extra: dict[str, str], **more: str) -> dict[str, str]:
    headers = {"Content-Type": "application/json", "User-Agent": BROWSER, **more}
    if extra.get("admin"):
        headers.update(_auth(server))
    return headers


@pytest.mark.parametrize(("path", "extra"), ROUTES)
def test_a_declared_length_over_the_limit_is_413_before_any_body(
    edge: RunningServer, path: str, extra: dict[str, str]
) -> None:
    with connect(edge.base_url) as sock:
        sock.sendall(head("POST", path, _headers(edge, extra, **{"Content-Length": str(200 * 1024 * 1024)})))
        answer = read_answer(sock, timeout=5)  # not one byte of the body was sent
        assert closed_within(sock, 5)
    assert answer.status == 413
    assert answer.json() == {
        "error": "payload_too_large",
        "message": f"the body must be at most {LIMIT} bytes",
        "field": "body",
    }
    assert answer.headers["connection"] == "close"
    if path == "/clk":
        assert answer.headers["access-control-allow-origin"] == "*"
    if path.startswith("/api/"):
        assert answer.headers["x-request-id"]


def _stream_until_answered(sock: socket.socket, budget: int) -> tuple[Answer, int]:
    """Send an endless chunked body until the server answers; the answer and the body bytes sent."""
    chunk = b"%x\r\n%s\r\n" % (16384, b"x" * 16384)
    sent = 0
    try:
        while sent < budget and not readable(sock):
            sock.sendall(chunk)
            sent += 16384
    except (BrokenPipeError, ConnectionResetError):
        pass
    return read_answer(sock, timeout=5), sent


@pytest.mark.parametrize(("path", "extra"), ROUTES)
def test_a_chunked_body_over_the_limit_is_413_without_reading_it_all(
    edge: RunningServer, path: str, extra: dict[str, str]
) -> None:
    with connect(edge.base_url) as sock:
        sock.sendall(head("POST", path, _headers(edge, extra, **{"Transfer-Encoding": "chunked"})))
        answer, sent = _stream_until_answered(sock, budget=100 * 1024 * 1024)
        assert closed_within(sock, 5)
    assert answer.status == 413
    assert answer.json()["error"] == "payload_too_large"
    # Answered long before the 100 MB were sent: what was sent past the limit sits in socket buffers.
    assert sent < 16 * 1024 * 1024
    with httpx.Client(base_url=edge.base_url) as client:
        assert client.get("/healthz").status_code == 200


def test_bodies_under_the_limit_are_read_with_or_without_a_length(edge: RunningServer) -> None:
    body = b'{"transaction_id": "%s", "secure": "not-a-token", "padding": "%s"}' % (b"0" * 32, b"x" * 60_000)
    assert len(body) < LIMIT
    with httpx.Client(base_url=edge.base_url) as client:
        declared = client.post("/postback", content=body, headers={"Content-Type": "application/json"})
        chunked = client.post("/postback", content=iter([body[:30_000], body[30_000:]]),
                              headers={"Content-Type": "application/json"})  # fmt: skip
        form = client.post("/postback", data={"transaction_id": "0" * 32, "secure": "nope", "sub": "y" * 60_000})
    for answer in (declared, chunked, form):
        assert answer.status_code == 403, answer.text  # read, parsed and refused for its token
        assert answer.json()["error"] == "invalid_token"


def test_a_body_one_byte_over_the_limit_is_413(edge: RunningServer) -> None:
    json_body = {"Content-Type": "application/json"}
    with httpx.Client(base_url=edge.base_url, headers=_auth(edge)) as client:
        over = client.post("/api/v1/advertisers", content=b" " * (LIMIT + 1), headers=json_body)
        at = client.post("/api/v1/advertisers", content=b'{"name": "edge"}' + b" " * (LIMIT - 16), headers=json_body)
    assert over.status_code == 413
    assert at.status_code == 201, at.text


@pytest.mark.parametrize("encoding", ["gzip", "deflate", "br"])
@pytest.mark.parametrize(("path", "extra"), ROUTES)
def test_a_compressed_body_is_refused_with_415(
    edge: RunningServer, path: str, extra: dict[str, str], encoding: str
) -> None:
    headers = _headers(edge, extra, **{"Content-Encoding": encoding})
    with httpx.Client(base_url=edge.base_url) as client:
        answer = client.post(path, content=b"\x1f\x8b" + b"\0" * 64, headers=headers)
    assert answer.status_code == 415
    assert answer.json()["error"] == "unsupported_encoding"
    assert answer.headers["accept-encoding"] == "identity"


def test_the_body_limit_is_a_setting(tmp_path: Path) -> None:
    json_body = {"Content-Type": "application/json"}
    with (
        running_server(sqlite_url(tmp_path), max_body_bytes=2048) as server,
        httpx.Client(base_url=server.base_url, headers=_auth(server)) as client,
    ):
        small = client.post("/api/v1/advertisers", content=b'{"name": "a"}' + b" " * 1500, headers=json_body)
        large = client.post("/api/v1/advertisers", content=b'{"name": "a"}' + b" " * 2100, headers=json_body)
        postback = client.post("/postback", data={"secure": "x" * 3000})
    assert small.status_code == 201
    assert large.status_code == 413
    assert large.json()["message"] == "the body must be at most 2048 bytes"
    assert postback.status_code == 413


def test_the_openapi_document_lists_413_415_and_429(edge: RunningServer) -> None:
    document = httpx.get(f"{edge.base_url}/api/openapi.json").json()
    create = document["paths"]["/api/v1/advertisers"]["post"]["responses"]
    listing = document["paths"]["/api/v1/advertisers"]["get"]["responses"]
    assert {"413", "415", "429"} <= set(create)
    assert "429" in listing and "413" not in listing
