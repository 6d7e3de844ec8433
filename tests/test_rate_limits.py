"""Rate limits through a real server: floods of bad credentials meet 429 with Retry-After (readable by
browsers), ordinary load never does, buckets are per client IP (forwarded by a trusted proxy only) and
per credential, and each family answers in its own error shape."""

from __future__ import annotations

import secrets
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.servers import RunningServer, running_server, sqlite_url

BROWSER = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36"


@pytest.fixture
def limited(tmp_path: Path) -> Iterator[RunningServer]:
    """A server with the default limits."""
    with running_server(sqlite_url(tmp_path)) as running:
        yield running


@pytest.fixture
def guarded(tmp_path: Path) -> Iterator[RunningServer]:
    """A server whose failure bucket holds its default burst of 100 and then refills once in 100 s, so that what
    a test counts after a flood does not depend on how fast the machine sent it (at the default 2 a second, a
    token came back between the flood's last request and the next one often enough to fail a run)."""
    with running_server(sqlite_url(tmp_path), rate_limit_failures_per_second=0.01) as running:
        yield running


def _assert_throttled(answer: httpx.Response) -> None:
    assert answer.status_code == 429
    assert int(answer.headers["retry-after"]) >= 1
    assert "Retry-After" in answer.headers["access-control-expose-headers"]


def _program(server: RunningServer) -> dict[str, Any]:
    """An advertiser, an offer and a partner: the postback token and a tracking link."""
    with httpx.Client(base_url=server.base_url, headers={"Authorization": f"Bearer {server.admin_key}"}) as api:
        advertiser = api.post("/api/v1/advertisers", json={"name": "Acme"}).json()
        offer = api.post("/api/v1/offers", json={
            "advertiser_id": advertiser["id"], "name": "Trial", "destination_url": "https://example.com/?t={transaction_id}",
            "revenue": {"type": "cpa", "amount": "5.00"}, "payout": {"type": "cpa", "amount": "3.00"},
            "visibility": "public",
        }).json()  # fmt: skip
        partner = api.post("/api/v1/partners", json={"name": "P", "email": "p@example.com"}).json()
    return {"token": advertiser["postback_token"], "link": f"/r/{offer['id']}/{partner['id']}"}


def test_a_flood_of_bad_api_keys_meets_429_and_the_known_key_still_works(guarded: RunningServer) -> None:
    admin = {"Authorization": f"Bearer {guarded.admin_key}"}
    with httpx.Client(base_url=guarded.base_url) as client:
        assert client.get("/api/v1/offers", headers=admin).status_code == 200
        answers = [
            client.get("/api/v1/offers", headers={"Authorization": f"Bearer tlk_{secrets.token_urlsafe(16)}"})
            for _ in range(400)
        ]
        statuses = Counter(a.status_code for a in answers)
        assert set(statuses) == {401, 429}
        assert statuses[401] == 100  # the failure burst
        throttled = next(a for a in answers if a.status_code == 429)
        _assert_throttled(throttled)
        assert throttled.json()["error"] == "rate_limited"
        assert throttled.headers["x-request-id"]
        # The admin's key has succeeded from this address before: it is not locked out with the guesser.
        assert client.get("/api/v1/offers", headers=admin).status_code == 200
        # Public sign-ups take no credential but are refused to the guessing address too.
        signup = client.post("/api/v1/partner-signups", json={"name": "x", "email": "x@example.com"})
        assert signup.status_code == 429


def test_requests_without_a_key_guess_nothing_and_are_not_counted_as_failures(limited: RunningServer) -> None:
    with httpx.Client(base_url=limited.base_url) as client:
        statuses = Counter(client.get("/api/v1/offers").status_code for _ in range(300))
    assert statuses == {401: 300}


def test_a_flood_of_bad_postback_tokens_meets_429_but_clicks_go_on(guarded: RunningServer) -> None:
    program = _program(guarded)
    with httpx.Client(base_url=guarded.base_url, headers={"User-Agent": BROWSER}) as client:
        answers = [
            client.get("/postback", params={"transaction_id": "0" * 32, "secure": secrets.token_urlsafe(12)})
            for _ in range(300)
        ]
        statuses = Counter(a.status_code for a in answers)
        assert set(statuses) == {403, 429}
        assert statuses[403] == 100
        _assert_throttled(next(a for a in answers if a.status_code == 429))
        assert client.get(program["link"]).status_code == 302


def test_a_normal_client_under_the_limit_never_meets_429(limited: RunningServer) -> None:
    program = _program(limited)
    admin = {"Authorization": f"Bearer {limited.admin_key}"}

    def session(worker: int) -> Counter[int]:
        seen: Counter[int] = Counter()
        with httpx.Client(base_url=limited.base_url, headers={"User-Agent": BROWSER}) as client:
            for i in range(150):
                click = client.get(program["link"], params={"sub1": f"{worker}-{i}"})
                seen[click.status_code] += 1
                tid = click.headers["location"].rpartition("=")[2]
                postback = {"transaction_id": tid, "secure": program["token"], "order_id": f"{worker}-{i}"}
                seen[client.get("/postback", params=postback).status_code] += 1
                seen[client.get("/api/v1/conversions", params={"transaction_id": tid}, headers=admin).status_code] += 1
            for _ in range(5):  # a few mistakes are no flood
                seen[client.get("/api/v1/offers", headers={"Authorization": "Bearer typo"}).status_code] += 1
        return seen

    with ThreadPoolExecutor(4) as pool:
        totals = sum(pool.map(session, range(4)), Counter[int]())
    assert 429 not in totals
    assert totals[302] == 600 and totals[200] == 1200 and totals[401] == 20


def test_buckets_are_per_forwarded_client_and_the_answer_keeps_cors(tmp_path: Path) -> None:
    settings = {"rate_limit_per_second": 0.01, "rate_limit_burst_seconds": 500}  # 5, then one per 100 s
    with (
        running_server(sqlite_url(tmp_path), **settings) as server,
        httpx.Client(base_url=server.base_url, headers={"User-Agent": BROWSER}) as client,
    ):
        first = [client.get("/clk", headers={"X-Forwarded-For": "203.0.113.7"}) for _ in range(8)]
        other = client.get("/clk", headers={"X-Forwarded-For": "198.51.100.1, 203.0.113.7"})
        spoofed = client.get("/clk", headers={"X-Forwarded-For": "203.0.113.7, 192.0.2.10"})
    assert [a.status_code for a in first[:5]] == [400] * 5  # served (and refused for its missing ids)
    throttled = first[-1]
    _assert_throttled(throttled)
    assert throttled.headers["access-control-allow-origin"] == "*"
    assert throttled.json()["error"] == "rate_limited"
    # the rightmost untrusted address is the client: the one the proxy saw, not what the client wrote
    assert other.status_code == 429
    assert spoofed.status_code == 400


def test_untrusted_peers_cannot_choose_their_address(tmp_path: Path) -> None:
    settings = {"rate_limit_per_second": 0.01, "rate_limit_burst_seconds": 500, "trusted_proxies": ""}
    with running_server(sqlite_url(tmp_path), **settings) as server, httpx.Client(base_url=server.base_url) as client:
        answers = [client.get("/clk", headers={"X-Forwarded-For": f"203.0.113.{i}"}) for i in range(8)]
    assert [a.status_code for a in answers].count(429) == 3


def test_a_credential_has_its_own_bucket_whatever_the_address(tmp_path: Path) -> None:
    with running_server(sqlite_url(tmp_path), rate_limit_api_per_second=0.01, rate_limit_burst_seconds=500) as server:
        admin = {"Authorization": f"Bearer {server.admin_key}"}
        with httpx.Client(base_url=server.base_url, headers=admin) as client:
            answers = [client.get("/api/v1/offers", headers={"X-Forwarded-For": f"203.0.113.{i}"}) for i in range(8)]
    assert [a.status_code for a in answers] == [200] * 5 + [429] * 3


def test_segment_intake_answers_429_in_its_own_shape(tmp_path: Path) -> None:
    settings = {"rate_limit_per_second": 0.01, "rate_limit_burst_seconds": 200}  # 2, then one per 100 s
    headers = {"Origin": "https://shop.example", "Authorization": "Basic d2tfbm9wZTo="}
    with running_server(sqlite_url(tmp_path), **settings) as server, httpx.Client(base_url=server.base_url) as client:
        answers = [client.post("/v1/batch", json={"batch": []}, headers=headers) for _ in range(3)]
    throttled = answers[-1]
    _assert_throttled(throttled)
    assert throttled.json() == {"code": "rate_limited", "message": throttled.json()["message"]}
    assert throttled.headers["access-control-allow-origin"] == "https://shop.example"
