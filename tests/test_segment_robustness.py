"""One odd message never costs a Segment batch, and nothing acknowledged is dropped (through the real server,
on SQLite and on PostgreSQL): each class of bad input in a 100-message batch leaves the 99 good messages
stored and one refusal recorded (reason, raw text, counted); whole bodies that cannot be read are a 400 in
Segment's shape, never a 5xx; limits count UTF-8 bytes; a 3,000-message batch is stored whole; bodies are
bounded before and while they are read (gzip bombs included); in-flight slots are taken only after the
write key is checked; every error under the Segment prefixes carries `code`."""

from __future__ import annotations

import gzip
import hashlib
import hmac
import json
import socket
import time
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests import factories
from tests.segment_support import RequestLog, messages, source
from tests.servers import RunningServer, running_server, sqlite_url
from tracklane.domain.segment.body import read_request
from tracklane.domain.segment.messages import Unreadable

BAD_AT = 50


def _good(n: int) -> bytes:
    message = {"type": "track", "event": "Viewed", "userId": f"u{n}", "messageId": f"good-{n}"}
    return json.dumps(message).encode()


def _bad(fields: str | bytes, kind: str = "track") -> bytes:
    """A message whose extra fields are given as raw JSON text (bytes that json.dumps cannot produce)."""
    extra = fields.encode() if isinstance(fields, str) else fields
    return b'{"type": "%s", "event": "Odd", "userId": "odd", "messageId": "bad", %s}' % (kind.encode(), extra)


def _nested(depth: int) -> str:
    return '{"a": ' * depth + "1" + "}" * depth


CUT_EMOJI = b'"properties": {"title": "cut ' + "😀".encode()[:2] + b'"}'  # its first two UTF-8 bytes only
BIG_TOTAL = '"event": "Order Completed", "properties": {"products": [{"price": 999999999999, "quantity": 999999}]}'
# (case, the bad message's bytes, the JSON path its refusal names)
CASES: list[tuple[str, bytes, str]] = [
    ("timestamp-before-year-1", _bad('"timestamp": "0001-01-01T00:00:00+01:00"'), "timestamp"),
    ("timestamp-after-year-9999", _bad('"timestamp": "9999-12-31T23:59:59-01:00"'), "timestamp"),
    ("sent-at-after-year-9999", _bad('"sentAt": "9999-12-31T23:59:59-01:00"'), "sentAt"),
    ("page-url-unparseable", _bad('"context": {"page": {"url": "http://[::1?tl_tid=x"}}', "page"), "context.page.url"),
    ("properties-900-deep", _bad('"properties": ' + _nested(900)), "properties" + ".a" * 64),
    ("properties-5000-deep", _bad('"properties": ' + _nested(5000)), "message"),
    ("lone-surrogate", _bad('"properties": {"title": "ok \\ud800"}'), "properties.title"),
    ("emoji-cut-in-utf8", _bad(CUT_EMOJI), "properties.title"),
    ("nul-in-a-value", _bad('"properties": {"note": "a\\u0000b"}'), "properties.note"),
    ("nul-in-a-key", _bad('"properties": {"k\\u0000": 1}'), "properties.<key>"),
    ("nul-in-an-id", _bad('"anonymousId": "x\\u0000"'), "anonymousId"),
    ("nan", _bad('"properties": {"value": NaN}'), "properties.value"),
    ("infinity", _bad('"properties": {"value": [1, -Infinity]}'), "properties.value[1]"),
    ("number-of-5000-digits", _bad('"properties": {"n": ' + "9" * 5000 + "}"), "message"),
    ("revenue-too-large", _bad('"event": "Order Completed", "properties": {"revenue": 1e400}'), "properties.revenue"),
    ("products-total-too-large", _bad(BIG_TOTAL), "properties.products"),
    ("not-json", _bad('"properties": {"a": 1,, }'), "message"),
    ("too-large-in-utf8", _bad('"properties": {"text": "%s"}' % ("漢" * 11_000)), "message"),
]
PRESET = {"products-total-too-large": "impact"}  # only impact.com's preset adds up the products


def _batch(bad: bytes, key: str) -> bytes:
    parts = [_good(n) for n in range(100)]
    parts[BAD_AT] = bad
    return b'{"writeKey": "%s", "batch": [%s]}' % (key.encode(), b", ".join(parts))


def test_each_bad_message_costs_only_itself(api: httpx.Client, web: httpx.Client) -> None:
    advertiser = factories.advertiser(api)["id"]
    for case, bad, field in CASES:
        src = source(api, advertiser, PRESET.get(case, "default"))
        response = web.post("/v1/batch", content=_batch(bad, src["write_key"]), headers={"Content-Type": "text/plain"})
        assert (response.status_code, response.json()) == (200, {"success": True}), case
        assert response.headers["x-tracklane-refused"] == "1", case
        stored = messages(api, src["id"])
        good = sorted(m["message_id"] for m in stored if m["outcome"] != "refused")
        assert good == sorted(f"good-{n}" for n in range(100) if n != BAD_AT), case
        [refused] = messages(api, src["id"], outcome="refused")
        # Nesting the parser cannot follow is refused as a whole message, whatever the stack depth it runs at.
        fields = (field, "message") if case == "properties-900-deep" else (field,)
        assert any(f"{f}:" in refused["detail"] for f in fields), (case, refused["detail"])
        if refused["message_id"] != "bad":  # refused when read: the start of its text as sent is kept
            raw = refused["payload"]["raw"]
            assert '"messageId": "bad"' in raw and refused["payload"]["raw_bytes"] == len(bad), case
            assert len(raw.encode()) <= 8 * 1024 + 100, case


def test_a_retried_refusal_is_recorded_once(api: httpx.Client, web: httpx.Client) -> None:
    src = source(api, factories.advertiser(api)["id"])
    body = _batch(_bad('"properties": {"value": NaN}'), src["write_key"])
    for _ in range(2):
        assert web.post("/v1/batch", content=body).status_code == 200
    assert len(messages(api, src["id"], outcome="refused")) == 1 and len(messages(api, src["id"])) == 100
    # The client's messageId stays free: the corrected message is stored as itself.
    fixed = _batch(_bad('"properties": {"value": 1}'), src["write_key"])
    assert web.post("/v1/batch", content=fixed).status_code == 200
    assert [m["outcome"] for m in messages(api, src["id"], message_id="bad")] == ["ignored"]


def test_single_message_routes_refuse_and_record(api: httpx.Client, web: httpx.Client) -> None:
    src = source(api, factories.advertiser(api)["id"])
    body = b'{"event": "E", "userId": "u", "messageId": "one", "properties": {"t": "\\ud83d"}, "writeKey": "%s"}'
    response = web.post("/v1/t", content=body % src["write_key"].encode(), headers={"Content-Type": "text/plain"})
    assert (response.status_code, response.headers["x-tracklane-refused"]) == (200, "1")
    [refused] = messages(api, src["id"])
    assert (refused["outcome"], refused["type"]) == ("refused", "track")
    assert refused["detail"].startswith("invalid_message: properties.t: is not valid Unicode")


def test_whole_bodies_that_cannot_be_read_are_400(api: httpx.Client, web: httpx.Client) -> None:
    src = source(api, factories.advertiser(api)["id"])
    key = src["write_key"]
    deep, good = _nested(5000), _good(1).decode()
    cases = [
        ("/v1/batch", deep, "nested_too_deep"),
        ("/v1/track", deep, "nested_too_deep"),
        ("/v1/batch", f'{{"context": {deep}, "batch": [{good}]}}', "invalid_json"),
        ("/v1/batch", f'{{"batch": [{good}', "invalid_json"),
        ("/v1/batch", '{"batch": "\\ud800\\ud800"}', "invalid_body"),
        ("/v1/track", '{"event": "E", "userId": "u", ', "invalid_json"),
        (f"/segment/{src['id']}", deep, "invalid_signature"),
    ]
    for path, body, code in cases:
        response = web.post(path, content=body.encode(), headers={**_basic(key), "X-Signature": "00"})
        assert response.status_code in (400, 401), (path, body[:40], response.text)
        assert response.json()["code"] == code and response.json()["message"], (path, body[:40])
    assert messages(api, src["id"]) == []


def test_webhook_batch_with_odd_messages(api: httpx.Client, web: httpx.Client) -> None:
    """Segment's Webhooks destination: the first element is signed; a bad element costs only itself."""
    src = source(api, factories.advertiser(api)["id"])
    first = _good(1)
    raw = b"[" + first + b", " + _bad('"properties": ' + _nested(3000)) + b", " + _good(2) + b"]"
    signature = hmac.new(src["webhook_secret"].encode(), first, hashlib.sha1).hexdigest()
    response = web.post(f"/segment/{src['id']}", content=raw, headers={"X-Signature": signature})
    assert (response.status_code, response.headers["x-tracklane-refused"]) == (200, "1"), response.text
    assert sorted(m["message_id"] for m in messages(api, src["id"]) if m["outcome"] != "refused") == [
        "good-1",
        "good-2",
    ]
    odd = web.post(f"/segment/{src['id']}", content=raw, headers={"X-Signature": "é".encode() * 20})
    assert (odd.status_code, odd.json()["code"]) == (401, "invalid_signature")


def test_signatures_are_compared_in_constant_time(
    api: httpx.Client, web: httpx.Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tracklane.web import segment

    compared: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def spy(a: Any, b: Any) -> bool:
        compared.append((a, b))
        return real(a, b)

    monkeypatch.setattr(segment.hmac, "compare_digest", spy)
    src = source(api, factories.advertiser(api)["id"])
    raw = _good(1)
    signature = hmac.new(src["webhook_secret"].encode(), raw, hashlib.sha1).hexdigest()
    assert web.post(f"/segment/{src['id']}", content=raw, headers={"X-Signature": signature}).status_code == 200
    assert web.post(f"/segment/{src['id']}", content=raw, headers={"X-Signature": "0" * 40}).status_code == 401
    assert compared and all(isinstance(a, bytes) and isinstance(b, bytes) for a, b in compared)


def test_limits_count_utf8_bytes(api: httpx.Client, web: httpx.Client) -> None:
    """A 17 KB event of CJK text is 36 KB once json.dumps escapes it (what Python clients send): stored."""
    src = source(api, factories.advertiser(api)["id"])
    text = "漢字" * 2_900  # 17,400 bytes of UTF-8
    event = {"type": "track", "event": "Review", "userId": "u", "messageId": "cjk", "properties": {"text": text}}
    escaped = json.dumps({"batch": [event], "writeKey": src["write_key"]})
    assert len(escaped) > 34_000 and len(json.dumps(event, ensure_ascii=False).encode()) < 18_000
    assert web.post("/v1/batch", content=escaped).headers["x-tracklane-refused"] == "0"
    [stored] = messages(api, src["id"])
    assert (stored["outcome"], stored["payload"]["properties"]["text"]) == ("ignored", text)


def test_a_batch_over_2500_messages_is_stored_whole(database_url: str) -> None:
    # One write of 3,000 messages: a loaded machine may need more than the default 4 s write timeout for it
    # (it would answer 503, which the client retries); what is tested is that none of it is dropped.
    with (
        running_server(database_url, write_timeout_seconds=30) as server,
        httpx.Client(base_url=server.base_url, headers={"Authorization": f"Bearer {server.admin_key}"}) as api,
        httpx.Client(base_url=server.base_url) as web,
    ):
        src = source(api, factories.advertiser(api)["id"])
        batch = [{"type": "track", "event": "E", "userId": "u", "messageId": f"m-{n}"} for n in range(3000)]
        response = web.post("/v1/batch", json={"batch": batch, "writeKey": src["write_key"]}, timeout=60)
        assert (response.status_code, response.headers["x-tracklane-refused"]) == (200, "0")
        stored: set[str] = set()
        cursor: str | None = None
        while True:
            params: dict[str, Any] = {"limit": 500, **({"cursor": cursor} if cursor else {})}
            page = api.get(f"/api/v1/sources/{src['id']}/messages", params=params).json()
            stored |= {m["message_id"] for m in page["data"]}
            cursor = page["next_cursor"]
            if not cursor:
                break
    assert stored == {f"m-{n}" for n in range(3000)}


def _basic(key: str) -> dict[str, str]:
    import base64

    return {"Authorization": "Basic " + base64.b64encode(f"{key}:".encode()).decode()}


def _bomb(size: int) -> bytes:
    """`size` zero bytes, gzipped (about a thousandth of that), built without holding them in memory."""
    packer = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    block = bytes(1 << 20)
    return b"".join(packer.compress(block) for _ in range(size >> 20)) + packer.flush()


def test_gzip_bombs_and_large_bodies_are_refused_at_once(api: httpx.Client, web: httpx.Client) -> None:
    src = source(api, factories.advertiser(api)["id"])
    bomb = _bomb(200 << 20)
    assert len(bomb) < 500_000
    started = time.monotonic()
    response = web.post("/v1/batch", content=bomb, headers={**_basic(src["write_key"]), "Content-Encoding": "gzip"})
    assert (response.status_code, response.json()["code"]) == (400, "payload_too_large")
    assert time.monotonic() - started < 5  # inflating stops at the limit: 200 MB are never produced
    cut = gzip.compress(json.dumps({"batch": [], "writeKey": src["write_key"]}).encode())[:-6]
    response = web.post("/v1/batch", content=cut, headers={"Content-Encoding": "gzip"})
    assert (response.status_code, response.json()["code"]) == (400, "invalid_body")
    assert messages(api, src["id"]) == []


def _open(server: RunningServer, head: bytes) -> socket.socket:
    host, port = server.base_url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=10)
    sock.sendall(head)
    return sock


def test_content_length_is_checked_before_the_body_is_read(server: RunningServer) -> None:
    sock = _open(server, b"POST /v1/batch HTTP/1.1\r\nHost: x\r\nContent-Length: 50000000\r\n\r\n{")
    answer = b""
    try:
        while b"}" not in answer:  # answered without waiting for the 50 MB (the socket times out in 10 s)
            chunk = sock.recv(4096)
            if not chunk:
                break
            answer += chunk
    finally:
        sock.close()
    assert answer.startswith(b"HTTP/1.1 400") and b'"code":"payload_too_large"' in answer.replace(b" ", b"")


@pytest.fixture
def tight(tmp_path: Path) -> Iterator[RunningServer]:
    with running_server(sqlite_url(tmp_path), segment_max_in_flight=2) as running:
        yield running


def test_slow_bodies_and_wrong_keys_take_no_in_flight_slot(tight: RunningServer) -> None:
    """Many connections trickling their bodies (the write key is in the body) do not throttle anyone."""
    with (
        httpx.Client(base_url=tight.base_url, headers={"Authorization": f"Bearer {tight.admin_key}"}) as api,
        httpx.Client(base_url=tight.base_url, timeout=30) as web,
    ):
        src = source(api, factories.advertiser(api)["id"])
        head = b"POST /v1/batch HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\nContent-Length: 400000\r\n\r\n"
        slow = [
            _open(tight, head + b'{"writeKey": "' + src["write_key"].encode() + b'", "batch": [') for _ in range(20)
        ]
        try:
            time.sleep(0.2)
            for n in range(5):
                response = web.post("/v1/batch", content=_batch(_good(n), src["write_key"]))
                assert response.status_code == 200, response.text
            wrong = web.post("/v1/batch", json={"batch": [json.loads(_good(1))], "writeKey": "wk_wrong"})
            assert (wrong.status_code, wrong.json()["code"]) == (401, "invalid_write_key")
        finally:
            for sock in slow:
                sock.close()


def test_throttled_only_once_authenticated(tmp_path: Path) -> None:
    with (
        running_server(sqlite_url(tmp_path), segment_max_in_flight=0) as server,
        httpx.Client(base_url=server.base_url, headers={"Authorization": f"Bearer {server.admin_key}"}) as api,
        httpx.Client(base_url=server.base_url, timeout=30) as web,
    ):
        src = source(api, factories.advertiser(api)["id"])
        body = {"batch": [json.loads(_good(1))], "writeKey": src["write_key"]}
        throttled = web.post("/v1/batch", json=body, headers={"Origin": "https://shop.example"})
        assert (throttled.status_code, throttled.headers["retry-after"], throttled.json()["code"]) == (
            429,
            "1",
            "rate_limited",
        )
        assert throttled.headers["access-control-allow-origin"] == "https://shop.example"
        assert "Retry-After" in throttled.headers["access-control-expose-headers"]
        unknown = web.post("/v1/batch", json={**body, "writeKey": "wk_unknown"})
        assert (unknown.status_code, unknown.json()["code"]) == (401, "invalid_write_key")


def test_every_error_under_the_segment_prefixes_has_a_code(web: httpx.Client) -> None:
    cases = [
        ("GET", "/v1/track", 405),
        ("POST", "/v1/projects/k/settings", 405),
        ("POST", "/v1/nothing", 404),
        ("POST", "/v1/nothing/here", 404),
        ("DELETE", "/v1/batch", 405),
        ("POST", "/beacon/v2/batch", 404),
        ("POST", "/segment/abc", 404),
        ("POST", "/segment/99999999999999999999", 404),
        ("POST", "/segment/9223372036854775808", 404),
        ("GET", "/v1/projects/%00/settings", 404),
        ("GET", "/v1/projects/" + "k" * 300 + "/settings", 404),
    ]
    for method, path, status in cases:
        response = web.request(method, path, content=b"{}", headers={"X-Signature": "00"})
        assert response.status_code == status, (method, path, response.text)
        assert response.json()["code"] and response.json()["message"], (method, path)
    nul_key = web.post("/v1/batch", content=b'{"writeKey": "k\\u0000", "batch": []}')
    surrogate_key = web.post("/v1/batch", content=b'{"writeKey": "k\\udc80", "batch": []}')
    assert [nul_key.status_code, surrogate_key.status_code] == [401, 401]


def test_analytics_python_batch_with_nan_and_a_404(watched: tuple[RunningServer, RequestLog]) -> None:
    """segment-analytics-python (which sends NaN as JSON allows it) gets 200 for the batch and the other
    messages are stored; a 404 (with `code`) is not retried."""
    from segment.analytics import Client, request

    server, log = watched
    with httpx.Client(base_url=server.base_url, headers={"Authorization": f"Bearer {server.admin_key}"}) as api:
        src = source(api, factories.advertiser(api)["id"])
        errors: list[Any] = []
        client = Client(src["write_key"], host=server.base_url, on_error=lambda e, b: errors.append(e),
                        max_retries=3, upload_interval=0.05, upload_size=100)  # fmt: skip
        for n in range(100):
            value = float("nan") if n == BAD_AT else n
            client.track(user_id=f"u{n}", event="Scored", properties={"value": value}, message_id=f"py-{n}")
        client.flush()
        lost = Client(src["write_key"], host=server.base_url + "/v1", on_error=lambda e, b: errors.append(e),
                      max_retries=3, upload_interval=0.05)  # fmt: skip
        lost.track(user_id="u", event="E")
        lost.flush()
        client.shutdown()
        lost.shutdown()
        request._session.close()
        stored = messages(api, src["id"])
        assert len([m for m in stored if m["outcome"] != "refused"]) == 99
        [refused] = [m for m in stored if m["outcome"] == "refused"]
        assert "properties.value:" in refused["detail"] and '"py-50"' in refused["payload"]["raw"]
        assert [status for _, path, status in log.posts("/v1/v1/")] == [404]
        assert [getattr(e, "code", None) for e in errors] == ["not_found"]
        assert all(status == 200 for _, path, status in log.posts("/v1/") if path == "/v1/batch")


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=6),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4) | st.just("batch"), inner, max_size=3)
    ),
    max_leaves=10,
)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.dictionaries(st.text(max_size=5), _json, max_size=4), max_size=6),
    st.dictionaries(st.sampled_from(["writeKey", "sentAt", "context", "batchy"]), _json, max_size=3),
    st.sampled_from([None, 1, 2]),
    st.data(),
)
def test_a_batch_splits_into_exactly_its_messages(
    items: list[dict[str, Any]], outer: dict[str, Any], indent: int | None, data: st.DataObject
) -> None:
    """Reading only its structure, a batch splits into its messages' exact texts; with one of them broken,
    every other message reads as it was and only that one is unreadable."""
    text = json.dumps({**outer, "batch": items}, indent=indent)
    envelope = read_request(text.encode(), None)
    assert envelope.items == items and [json.loads(envelope.raw_text(i)) for i in range(len(items))] == items
    assert {k: v for k, v in envelope.batch.items() if k != "batch"} == outer
    if not items:
        return
    broken = data.draw(st.integers(0, len(items) - 1))
    parts = [json.dumps(item) for item in items]
    parts[broken] = parts[broken][:-1] + ",,}"  # not JSON any more, its structure still whole
    envelope = read_request(("[" + ", ".join(parts) + "]").encode(), None)
    assert isinstance(envelope.items[broken], Unreadable)
    assert [item for n, item in enumerate(envelope.items) if n != broken] == items[:broken] + items[broken + 1 :]
