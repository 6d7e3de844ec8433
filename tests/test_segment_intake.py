"""The Segment-compatible HTTP contract (DESIGN §3.2): routes, every auth form, any Content-Type, gzip,
chunked bodies, size limits, status codes and bodies, CORS, dedup on messageId, clock-skew correction,
requests recorded from real clients replayed unmodified, and Segment's Webhooks (Actions) receiver."""

from __future__ import annotations

import base64
import gzip
import hashlib
import hmac
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests import factories
from tests.segment_support import conversions, messages, source

CAPTURES = Path(__file__).parent / "segment_captures"


def _basic(key: str, colon: bool = True) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode((key + (":" if colon else "")).encode()).decode()}


def _track(n: int = 1, **fields: Any) -> dict[str, Any]:
    return {"type": "track", "event": "Viewed", "userId": "u1", "messageId": f"m-{n}", **fields}


def test_routes_and_auth_forms(api: httpx.Client, web: httpx.Client) -> None:
    src = source(api, factories.advertiser(api)["id"])
    key = src["write_key"]
    sent = [
        web.post("/v1/track", json=_track(1), headers=_basic(key)),
        web.post("/v1/track", json=_track(2), headers=_basic(key, colon=False)),
        web.post("/v1/t", content=json.dumps({**_track(3), "writeKey": key}), headers={"Content-Type": "text/plain"}),
        web.post("/v1/identify", json={"userId": "u1", "traits": {"a": 1}, "messageId": "m-4", "writeKey": key}),
        web.post("/v1/p", json={"anonymousId": "a1", "name": "Home", "messageId": "m-5"}, headers={"X-Write-Key": key}),
        web.post("/v1/s", json={"anonymousId": "a1", "name": "Home", "messageId": "m-6"}, headers=_basic(key)),
        web.post("/v1/g", json={"userId": "u1", "groupId": "acme", "messageId": "m-7"}, headers=_basic(key)),
        web.post("/v1/a", json={"userId": "u2", "previousId": "u1", "messageId": "m-8"}, headers=_basic(key)),
        web.post(
            "/v1/batch",
            json={"batch": [_track(9), _track(10)], "writeKey": key},
            headers={"Authorization": "Bearer some-oauth-token"},
        ),
        web.post("/v1/b", json={"batch": [_track(11)], "writeKey": key}),
        web.post("/v1/import", json={"batch": [_track(12)]}, headers=_basic(key)),
        web.post(
            f"/beacon/v1/batch?writeKey={key}",
            content=json.dumps({"batch": [_track(13)]}),
            headers={"Content-Type": "text/plain"},
        ),
        web.post("/v1/page", json={"anonymousId": "a1", "messageId": "m-14"}, headers=_basic(key)),
        web.post("/v1/screen", json={"anonymousId": "a1", "messageId": "m-15"}, headers=_basic(key)),
        web.post("/v1/group", json={"anonymousId": "a1", "groupId": "g", "messageId": "m-16"}, headers=_basic(key)),
        web.post("/v1/alias", json={"userId": "u3", "previousId": "u2", "messageId": "m-17"}, headers=_basic(key)),
    ]
    for response in sent:
        assert (response.status_code, response.json()) == (200, {"success": True}), response.request.url
        assert response.headers["access-control-allow-origin"] == "*"
    assert sorted(m["message_id"] for m in messages(api, src["id"])) == sorted(f"m-{n}" for n in range(1, 18))
    ignored = web.post("/v1/m", content=b'{"series": []}', headers={"Content-Type": "text/plain"})
    assert (ignored.status_code, ignored.json()) == (200, {"success": True})


def test_errors_answer_code_and_message(api: httpx.Client, web: httpx.Client) -> None:
    src = source(api, factories.advertiser(api)["id"])
    key = src["write_key"]
    cases = [
        (web.post("/v1/track", json=_track()), 401, "no_write_key"),
        (web.post("/v1/track", json=_track(), headers=_basic("nope-nope")), 401, "invalid_write_key"),
        (web.post("/v1/batch", content=b"{not json", headers=_basic(key)), 400, "invalid_json"),
        (web.post("/v1/batch", json={"messages": []}, headers=_basic(key)), 400, "invalid_body"),
        (
            web.post("/v1/batch", content=b"x" * 10, headers={**_basic(key), "Content-Encoding": "gzip"}),
            400,
            "invalid_body",
        ),
        (
            web.post("/v1/batch", content=json.dumps({"batch": [], "pad": "a" * 600_000}), headers=_basic(key)),
            400,
            "payload_too_large",
        ),
        (
            web.post(
                "/v1/batch",
                content=gzip.compress(b" " * 5_000_000),
                headers={**_basic(key), "Content-Encoding": "gzip"},
            ),
            400,
            "payload_too_large",
        ),
    ]
    for response, status, code in cases:
        assert response.status_code == status, response.text
        assert response.json()["code"] == code and response.json()["message"]
        assert response.headers["access-control-allow-origin"] == "*"
    assert messages(api, src["id"]) == []


def test_one_bad_message_is_refused_the_rest_kept(
    api: httpx.Client, web: httpx.Client, caplog: pytest.LogCaptureFixture
) -> None:
    src = source(api, factories.advertiser(api)["id"])
    batch = [
        _track(1),
        {"type": "track", "userId": "u1", "messageId": "no-event"},
        {"type": "track", "event": "X", "messageId": "no-user"},
        {"type": "teleport", "userId": "u1", "messageId": "bad-type"},
        _track(2, properties={"blob": "a" * 40_000}),
        _track(3, timestamp="yesterday"),
        "not an object",
        _track(4, userId=None, anonymousId="a1", properties={"revenue": "12.50"}),
    ]
    response = web.post("/v1/batch", json={"batch": batch, "writeKey": src["write_key"]})
    assert (response.status_code, response.json()) == (200, {"success": True})
    assert response.headers["x-tracklane-refused"] == "6"
    stored = messages(api, src["id"])
    assert sorted(m["message_id"] for m in stored if m["outcome"] != "refused") == ["m-1", "m-4"]
    refused = messages(api, src["id"], outcome="refused")
    assert len(refused) == 6 and all(m["message_id"].startswith("tl-refused-") for m in refused)
    assert any(m["detail"] == "invalid_message: event: is required for a track call" for m in refused)
    reasons = [r.getMessage() for r in caplog.records if r.name == "tracklane.segment"]
    assert any("message 1: event: is required" in reason for reason in reasons)
    assert any("message 4: message: is " in reason and "bytes" in reason for reason in reasons)


def test_duplicates_and_retries_are_stored_once(api: httpx.Client, web: httpx.Client) -> None:
    adv, offer, partner = factories.program(api)
    tid = factories.click(web, offer["id"], partner["id"])
    src = source(api, adv["id"])
    order = _track(1, event="Order Completed", properties={"transaction_id": tid, "order_id": "O-9", "total": "20"})
    for _ in range(3):
        response = web.post("/v1/batch", json={"batch": [order], "writeKey": src["write_key"]})
        assert (response.status_code, response.json()) == (200, {"success": True})
    other = source(api, adv["id"])
    web.post("/v1/batch", json={"batch": [_track(1)], "writeKey": other["write_key"]})
    assert len(messages(api, src["id"])) == 1 and len(messages(api, other["id"])) == 1
    [conversion] = conversions(api, transaction_id=tid)
    assert (conversion["amount"], conversion["order_id"], conversion["origin"]) == ("20.00", "O-9", "segment")


def test_missing_message_id_is_derived_from_the_content(api: httpx.Client, web: httpx.Client) -> None:
    src = source(api, factories.advertiser(api)["id"])
    body = {"type": "track", "event": "Same", "userId": "u1", "timestamp": "2026-01-02T03:04:05Z"}
    for _ in range(2):
        assert web.post("/v1/track", json=body, headers=_basic(src["write_key"])).status_code == 200
    [stored] = messages(api, src["id"])
    assert stored["message_id"].startswith("tl-")


def test_clock_skew_is_corrected_and_relayed_times_trusted(api: httpx.Client, web: httpx.Client) -> None:
    src = source(api, factories.advertiser(api)["id"])
    # The client's clock is a year behind: it stamped the event 10 s before it sent it.
    body = {
        "batch": [_track(1, timestamp="2025-11-23T10:00:00.000+00:00")],
        "sentAt": "2025-11-23T10:00:10Z",
        "writeKey": src["write_key"],
    }
    before = datetime.now(UTC)
    assert web.post("/v1/batch", json=body).status_code == 200
    after = datetime.now(UTC)
    [stored] = messages(api, src["id"])
    timestamp = datetime.fromisoformat(stored["timestamp"].replace("Z", "+00:00"))
    assert before - timedelta(seconds=10, milliseconds=5) <= timestamp <= after - timedelta(seconds=10)
    assert stored["original_timestamp"] == "2025-11-23T10:00:00Z"

    relayed = _track(
        2,
        timestamp="2025-11-23T10:00:00Z",
        sentAt="2025-11-23T10:00:10Z",
        receivedAt="2025-11-23T10:00:11Z",
        originalTimestamp="2025-11-23T09:59:59Z",
    )
    raw = json.dumps(relayed).encode()
    signature = hmac.new(src["webhook_secret"].encode(), raw, hashlib.sha1).hexdigest()
    response = web.post(
        f"/segment/{src['id']}", content=raw, headers={"X-Signature": signature, "Content-Type": "application/json"}
    )
    assert (response.status_code, response.json()) == (200, {"success": True})
    stored_relayed = messages(api, src["id"], message_id="m-2")[0]
    assert (stored_relayed["timestamp"], stored_relayed["received_at"], stored_relayed["relayed"]) == (
        "2025-11-23T10:00:00Z",
        "2025-11-23T10:00:11Z",
        True,
    )


def test_segment_webhooks_actions_signature(api: httpx.Client, web: httpx.Client) -> None:
    src = source(api, factories.advertiser(api)["id"])
    secret = src["webhook_secret"].encode()
    batch = [_track(1), _track(2)]
    raw = json.dumps(batch, separators=(",", ":")).encode()
    first = json.dumps(batch[0], separators=(",", ":")).encode()
    signed_first = hmac.new(secret, first, hashlib.sha1).hexdigest()
    ok = web.post(
        f"/segment/{src['id']}", content=raw, headers={"X-Signature": signed_first, "User-Agent": "Segment (Actions)"}
    )
    assert (ok.status_code, ok.json()) == (200, {"success": True})
    assert sorted(m["message_id"] for m in messages(api, src["id"])) == ["m-1", "m-2"]
    forged = web.post(f"/segment/{src['id']}", content=json.dumps([_track(3)]), headers={"X-Signature": "00" * 20})
    assert (forged.status_code, forged.json()["code"]) == (401, "invalid_signature")
    unsigned = web.post(f"/segment/{src['id']}", json=_track(4))
    assert (unsigned.status_code, unsigned.json()["code"]) == (401, "missing_signature")
    assert web.post("/segment/999999", json=_track(5), headers={"X-Signature": "x"}).status_code == 404
    assert len(messages(api, src["id"])) == 2


def test_cors_preflight_and_settings(api: httpx.Client, web: httpx.Client) -> None:
    src = source(api, factories.advertiser(api)["id"])
    preflight = web.options(
        "/v1/t",
        headers={
            "Origin": "https://shop.example",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type, authorization, x-retry-count",
        },
    )
    assert preflight.status_code == 204
    assert preflight.headers["access-control-allow-origin"] == "https://shop.example"
    assert "x-retry-count" in preflight.headers["access-control-allow-headers"]
    assert "POST" in preflight.headers["access-control-allow-methods"]
    settings = web.get(f"/v1/projects/{src['write_key']}/settings", headers={"Origin": "https://shop.example"})
    assert settings.status_code == 200
    assert settings.headers["access-control-allow-origin"] == "https://shop.example"
    segment_io = settings.json()["integrations"]["Segment.io"]
    assert segment_io["apiKey"] == src["write_key"]
    assert segment_io["apiHost"] == web.base_url.netloc.decode() + "/v1"
    assert list(settings.json()["integrations"]) == ["Segment.io"]
    assert web.get("/v1/projects/unknown-key/settings").status_code == 404
    missing = web.get("/analytics-next/bundles/queryString.bundle.js")  # no TRACKLANE_SEGMENT_BROWSER_BUNDLES
    assert (missing.status_code, missing.json()["code"]) == (404, "not_found")


def test_chunked_body(api: httpx.Client, web: httpx.Client) -> None:
    src = source(api, factories.advertiser(api)["id"])
    raw = gzip.compress(json.dumps({"batch": [_track(n) for n in range(50)], "writeKey": src["write_key"]}).encode())

    def chunks() -> Iterator[bytes]:
        for start in range(0, len(raw), 100):
            yield raw[start : start + 100]

    response = web.post("/v1/batch", content=chunks(), headers={"Content-Encoding": "gzip"})
    assert response.request.headers.get("transfer-encoding") == "chunked"
    assert (response.status_code, response.json()) == (200, {"success": True})
    assert len(messages(api, src["id"])) == 50


@pytest.mark.parametrize("capture", sorted(CAPTURES.glob("*.jsonl")), ids=lambda p: p.stem)
def test_recorded_client_requests_replay(api: httpx.Client, web: httpx.Client, capture: Path) -> None:
    """Requests recorded from real clients, sent again byte for byte (headers, gzip, content type)."""
    advertiser = factories.advertiser(api)
    src = factories.created(
        api.post(
            "/api/v1/sources", json={"name": capture.stem, "write_key": "WK_TEST", "advertiser_id": advertiser["id"]}
        )
    )
    expected: set[str] = set()
    too_large = 0
    for line in capture.read_text().splitlines():
        recorded = json.loads(line)
        headers = {
            k: v for k, v in recorded["headers"].items() if k.lower() not in ("host", "content-length", "connection")
        }
        raw = json.dumps(recorded["body"]).encode()
        if headers.get("Content-Encoding") == "gzip":
            raw = gzip.compress(raw)
        response = web.request(recorded["method"], recorded["path"], content=raw, headers=headers)
        assert (response.status_code, response.json()) == (200, {"success": True})
        sizes = {m["messageId"]: len(json.dumps(m, separators=(",", ":"))) for m in recorded["body"]["batch"]}
        expected |= {message_id for message_id, size in sizes.items() if size <= 32 * 1024}
        too_large += sum(size > 32 * 1024 for size in sizes.values())
    stored = messages(api, src["id"])
    assert {m["message_id"] for m in stored if m["outcome"] != "refused"} == expected
    refused = [m for m in stored if m["outcome"] == "refused"]
    assert len(refused) == too_large and all("bytes; at most 32768" in m["detail"] for m in refused)
