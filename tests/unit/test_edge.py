"""The edge's pure parts: token buckets on a fake clock, failure accounting, and which forwarded address
is the client."""

from __future__ import annotations

import ipaddress
from typing import Any

import pytest

from tracklane.web import forwarded, ratelimit
from tracklane.web.forwarded import ClientAddress
from tracklane.web.ratelimit import Buckets, Family, Limiter, RatePolicy


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_bucket_serves_its_burst_then_its_rate_and_says_when_to_retry() -> None:
    clock = Clock()
    buckets = Buckets(rate=2, burst=4, clock=clock)
    assert [buckets.take("ip") for _ in range(5)] == [0, 0, 0, 0, 1]
    clock.now += 0.5  # one token back
    assert [buckets.take("ip"), buckets.take("ip")] == [0, 1]
    slow = Buckets(rate=0.1, burst=1, clock=clock)
    assert (slow.take("k"), slow.take("k")) == (0, 10)
    clock.now += 3600
    assert slow.wait("k") == 0 and buckets.take("other") == 0


def test_a_bucket_table_forgets_the_least_recently_used_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ratelimit, "MAX_KEYS", 3)
    buckets = Buckets(rate=1, burst=1, clock=Clock())
    for key in ("a", "b", "c"):
        assert buckets.take(key) == 0
    assert buckets.take("a") == 1  # "a" is now the most recent
    assert buckets.take("d") == 0  # "b" goes
    assert buckets.take("b") == 0 and buckets.take("a") == 1


def test_a_bucket_table_keeps_only_the_buckets_not_full_again() -> None:
    clock = Clock()
    buckets = Buckets(rate=10, burst=20, clock=clock)
    for n in range(30):
        buckets.take(f"visitor-{n}")  # one token each, back in 0.1 s
    for _ in range(20):
        buckets.take("heavy")  # empty: 2 s to refill
    clock.now += 0.5
    assert buckets.take("newcomer") == 0
    assert list(buckets._levels) == ["heavy", "newcomer"]  # the visitors' buckets were full again
    assert buckets.take("heavy") == 0 and buckets.take("visitor-1") == 0  # what they had, exactly
    assert [buckets.take("heavy") for _ in range(5)] == [0, 0, 0, 0, 1]  # 5 tokens back in 0.5 s, one taken


def test_failures_lock_out_unproven_credentials_of_that_address_only() -> None:
    clock = Clock()
    limiter = Limiter(RatePolicy(failures_per_second=1, failure_burst=3), clock)
    good, bad = ratelimit.digest(b"good"), ratelimit.digest(b"bad")
    assert limiter.admit(Family.API, "10.0.0.1", good, guarded=True) == 0
    limiter.observe(Family.API, "10.0.0.1", good, 200, failed=False)
    for _ in range(3):
        assert limiter.admit(Family.API, "10.0.0.1", bad, guarded=True) == 0
        limiter.observe(Family.API, "10.0.0.1", bad, 401, failed=True)
    assert limiter.admit(Family.API, "10.0.0.1", bad, guarded=True) == 1
    assert limiter.admit(Family.API, "10.0.0.1", None, guarded=True) == 1
    assert limiter.admit(Family.API, "10.0.0.1", good, guarded=True) == 0
    assert limiter.admit(Family.TRACKING, "10.0.0.1", None, guarded=False) == 0
    assert limiter.admit(Family.API, "10.0.0.2", bad, guarded=True) == 0
    clock.now += 1
    assert limiter.admit(Family.API, "10.0.0.1", bad, guarded=True) == 0


def test_a_zero_rate_turns_a_limit_off() -> None:
    limiter = Limiter(RatePolicy(per_second=0, api_per_second=0, failures_per_second=0), Clock())
    for _ in range(100):
        limiter.observe(Family.API, "ip", None, 401, failed=True)
        assert limiter.admit(Family.API, "ip", None, guarded=True) == 0
        assert limiter.admit(Family.TRACKING, "ip", None, guarded=False) == 0


def _scope(peer: str, *headers: tuple[str, str]) -> dict[str, Any]:
    return {"client": (peer, 5000), "scheme": "http", "headers": [(k.encode(), v.encode()) for k, v in headers]}


@pytest.mark.parametrize(
    ("peer", "forwarded", "client"),
    [
        ("127.0.0.1", "203.0.113.9", "203.0.113.9"),
        ("127.0.0.1", "198.51.100.1, 203.0.113.9", "203.0.113.9"),  # the left part is the client's to write
        ("127.0.0.1", "203.0.113.9, 10.1.2.3", "203.0.113.9"),  # 10.1.2.3 is a trusted hop
        ("127.0.0.1", "203.0.113.9:4711", "203.0.113.9"),
        ("127.0.0.1", "[2001:db8::1]:80", "2001:db8::1"),
        ("127.0.0.1", "unknown, 10.1.2.3", "10.1.2.3"),  # garbage: the last trusted hop is what we know
        ("127.0.0.1", "10.1.2.3, 10.1.2.4", "10.1.2.3"),
        ("192.0.2.1", "203.0.113.9", "192.0.2.1"),  # an untrusted peer's header is ignored
    ],
)
def test_the_client_is_the_rightmost_untrusted_forwarded_address(peer: str, forwarded: str, client: str) -> None:
    trusted = (ipaddress.ip_network("127.0.0.1/32"), ipaddress.ip_network("10.0.0.0/8"))
    scope = _scope(peer, ("x-forwarded-for", forwarded), ("x-forwarded-proto", "https"))
    assert ClientAddress(trusted).resolve(scope) == client
    assert scope["client"][0] == client
    assert scope["scheme"] == ("https" if peer == "127.0.0.1" else "http")


def test_with_no_trusted_proxy_the_peer_is_the_client() -> None:
    scope = _scope("127.0.0.1", ("x-forwarded-for", "203.0.113.9"))
    assert ClientAddress(()).resolve(scope) == "127.0.0.1"


@pytest.mark.parametrize(
    "entry",
    ["203.0.113.9", "0.0.0.0", "255.255.255.255", "010.1.2.3", "1.2.3", "1.2.3.4.5", "256.1.1.1", "0x7f.0.0.1",
     "1.2.3.4 ", "2001:DB8::1", "::ffff:10.1.2.3", "::1", "fe80::1%eth0", "", "unknown", "1.2.3.4\x00"],
)  # fmt: skip
def test_a_forwarded_entry_is_read_and_trusted_as_ipaddress_reads_it(entry: str) -> None:
    try:
        expected: str | None = str(ipaddress.ip_address(entry.strip()))
    except ValueError:
        expected = None
    assert forwarded._address(entry) == expected
    trusted = (
        ipaddress.ip_network("10.0.0.0/8"),
        ipaddress.ip_network("203.0.113.0/24"),
        ipaddress.ip_network("::1/128"),
    )
    if expected is not None:
        ip = ipaddress.ip_address(expected)
        assert ClientAddress(trusted).is_trusted(expected) == any(ip in network for network in trusted)
