"""Rate limits: token buckets in this process, per client IP and per credential, and a bucket of
authentication failures per client IP.

Each route family (tracking, Segment intake, the API) has its own buckets, so a flood of one does not
throttle another. A request takes one token from its client IP's bucket and one from its credential's (the
API key, the Segment write key or source, the postback token in the query string); an empty bucket answers
`429` with the seconds until it holds a token again. A bucket refills at its rate and holds
`burst_seconds` of it.

Authentication failures (a `401` on Segment intake, a `403` from `/postback`: an unknown token, a `401`
from the API for a key that was sent) count far more heavily: they drain a small per-IP bucket, and while
it is empty that IP's requests to routes that take a credential are refused, unless their credential has
succeeded before (so a client that knows its key is not locked out by a neighbour behind the same address
that does not). Clicks are never refused for it.

Buckets live in memory, per process: with N server processes a client may get up to N times the rate,
and a restart forgets them. Each table keeps at most `MAX_KEYS` keys, dropping the least recently used.
"""

from __future__ import annotations

import hashlib
import math
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from enum import Enum

MAX_KEYS = 50_000


class Family(Enum):
    TRACKING = "tracking"
    SEGMENT = "segment"
    API = "api"
    OTHER = "other"


@dataclass(frozen=True, slots=True)
class RatePolicy:
    """The limits, from the settings; a rate of 0 turns that limit off."""

    per_second: float = 5000.0
    api_per_second: float = 1000.0
    burst_seconds: float = 2.0
    failures_per_second: float = 2.0
    failure_burst: int = 100


class Buckets:
    """Token buckets by key: `rate` tokens a second, holding at most `burst`."""

    def __init__(self, rate: float, burst: float, clock: Callable[[], float]) -> None:
        self.rate = rate
        self.burst = max(burst, 1.0)
        self._clock = clock
        self._levels: OrderedDict[Hashable, tuple[float, float]] = OrderedDict()

    def _level(self, key: Hashable, now: float) -> float:
        stored = self._levels.get(key)
        if stored is None:
            self._forget_full(now)
            if len(self._levels) >= MAX_KEYS:
                self._levels.popitem(last=False)
            return self.burst
        self._levels.move_to_end(key)
        tokens, stamp = stored
        return min(self.burst, tokens + (now - stamp) * self.rate)

    def _forget_full(self, now: float) -> None:
        """Drop the least recently used buckets that have filled up again: a full bucket is what a key never
        seen gets, so it need not be kept (at 5,000 tokens a second one request's token is back in 0.2 ms,
        and a table of every address of the last 50,000 requests held about 15 MB)."""
        levels = self._levels
        while levels:
            key, (tokens, stamp) = next(iter(levels.items()))
            if tokens + (now - stamp) * self.rate < self.burst:
                return
            del levels[key]

    def take(self, key: Hashable) -> int:
        """Take a token: 0 when one was there, else the whole seconds until one will be (nothing taken)."""
        now = self._clock()
        tokens = self._level(key, now)
        if tokens >= 1.0:
            self._levels[key] = (tokens - 1.0, now)
            return 0
        self._levels[key] = (tokens, now)
        return max(1, math.ceil((1.0 - tokens) / self.rate))

    def wait(self, key: Hashable) -> int:
        """The whole seconds until `key` holds a token; 0 when it holds one now (nothing taken)."""
        stored = self._levels.get(key)
        if stored is None:
            return 0
        tokens, stamp = stored
        tokens = min(self.burst, tokens + (self._clock() - stamp) * self.rate)
        return 0 if tokens >= 1.0 else max(1, math.ceil((1.0 - tokens) / self.rate))


def digest(credential: bytes) -> bytes:
    """What a credential is remembered by (never the credential itself)."""
    return hashlib.blake2b(credential, digest_size=16).digest()


class Limiter:
    """The rate limits of one process."""

    def __init__(self, policy: RatePolicy, clock: Callable[[], float] = time.monotonic) -> None:
        self.policy = policy
        self._requests = {
            family: Buckets(rate, rate * policy.burst_seconds, clock)
            for family, rate in (
                (Family.TRACKING, policy.per_second),
                (Family.SEGMENT, policy.per_second),
                (Family.API, policy.api_per_second),
            )
            if rate > 0
        }
        self._failures = (
            Buckets(policy.failures_per_second, policy.failure_burst, clock) if policy.failures_per_second > 0 else None
        )
        self._proven: OrderedDict[bytes, None] = OrderedDict()

    def admit(self, family: Family, ip: str | None, credential: bytes | None, *, guarded: bool) -> int:
        """0 to serve the request, else the seconds to answer in `Retry-After` (429). `guarded`: the route
        takes a credential, so an IP that keeps failing authentication is refused it."""
        if family is Family.OTHER:
            return 0
        if guarded and self._failures is not None and ip is not None and credential not in self._proven:
            wait = self._failures.wait(ip)
            if wait:
                return wait
        buckets = self._requests.get(family)
        if buckets is None:
            return 0
        if ip is not None and (wait := buckets.take((ip,))):
            return wait
        if credential is not None:
            return buckets.take((b"credential", credential))
        return 0

    def observe(self, family: Family, ip: str | None, credential: bytes | None, status: int, *, failed: bool) -> None:
        """Count the answer: a failed authentication against the IP; a success proves its credential."""
        if failed:
            if self._failures is not None and ip is not None:
                self._failures.take(ip)
        elif credential is not None and 200 <= status < 300 and credential not in self._proven:
            if len(self._proven) >= MAX_KEYS:
                self._proven.popitem(last=False)
            self._proven[credential] = None
