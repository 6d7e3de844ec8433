"""When to try a delivery again, and when to give up on an endpoint or a partner postback: pure rules.

The schedule follows Standard Webhooks: ten attempts over about three days (immediately, 5 s, 5 min,
30 min, 2 h, 5 h, 10 h, 14 h, 20 h, 24 h), each delay jittered by ±20 %. A throttled or timed-out attempt
(429, 502, 503, 504, timeout) backs off harder: at least twice the scheduled delay and at least a minute.
`Retry-After` is honoured up to six hours: it can slow us down, never speed us up. Failures on our side
(our resolver, our database) do not spend the receiver's attempts: they are retried after a short pause.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

SCHEDULE: tuple[timedelta, ...] = tuple(
    timedelta(seconds=s) for s in (5, 300, 1800, 7200, 18000, 36000, 50400, 72000, 86400)
)
MAX_ATTEMPTS = len(SCHEDULE) + 1
JITTER = 0.2
THROTTLE_FACTOR = 2
THROTTLE_MINIMUM = timedelta(seconds=60)
RETRY_AFTER_CAP = timedelta(hours=6)
OUR_FAILURE_PAUSE = timedelta(seconds=30)
THROTTLING_STATUSES = frozenset({429, 502, 503, 504})

# Partner postbacks (Everflow's published rule): deactivated after 10 consecutive failures within 72 hours.
POSTBACK_FAILURE_LIMIT = 10
POSTBACK_FAILURE_WINDOW = timedelta(hours=72)

Random = Callable[[], float]
"""A source of uniform numbers in [0, 1): `random.random` in production, a constant in tests."""


class Verdict(StrEnum):
    """What one attempt means for its delivery."""

    SUCCESS = "success"
    FAILURE = "failure"  # the receiver's failure: spends an attempt
    THROTTLED = "throttled"  # the receiver asks us to slow down (or timed out): spends an attempt, backs off harder
    GONE = "gone"  # 410: the endpoint is disabled
    OURS = "ours"  # our own failure: no attempt is spent


@dataclass(frozen=True, slots=True)
class AttemptResult:
    """What happened on the wire."""

    status_code: int | None
    error_class: str | None = None  # dns, connect, tls, timeout, refused_destination, resolver, ...
    retry_after: timedelta | None = None
    body_matched: bool = True  # false when a postback's success rule wants text the answer lacked


OUR_ERROR_CLASSES = frozenset({"resolver", "internal"})


def judge(result: AttemptResult) -> Verdict:
    """2xx (and the success rule) is success; 410 is gone; 429/502/503/504 and timeouts throttle."""
    if result.error_class in OUR_ERROR_CLASSES:
        return Verdict.OURS
    if result.error_class == "timeout":
        return Verdict.THROTTLED
    code = result.status_code
    if code is None:
        return Verdict.FAILURE
    if 200 <= code < 300:
        return Verdict.SUCCESS if result.body_matched else Verdict.FAILURE
    if code == 410:
        return Verdict.GONE
    if code in THROTTLING_STATUSES:
        return Verdict.THROTTLED
    return Verdict.FAILURE


def next_delay(
    attempts_made: int, verdict: Verdict, retry_after: timedelta | None, random: Random, scale: float = 1.0
) -> timedelta | None:
    """The pause before the next attempt after `attempts_made` receiver attempts, or None to give up."""
    if verdict is Verdict.OURS:
        return OUR_FAILURE_PAUSE * scale
    if verdict in (Verdict.SUCCESS, Verdict.GONE) or attempts_made >= MAX_ATTEMPTS:
        return None
    base = SCHEDULE[attempts_made - 1] * scale
    delay = base * (1 + JITTER * (2 * random() - 1))
    if verdict is Verdict.THROTTLED:
        delay = max(delay * THROTTLE_FACTOR, THROTTLE_MINIMUM * scale)
        if retry_after is not None:
            delay = max(delay, min(retry_after, RETRY_AFTER_CAP))
    return delay


def endpoint_should_be_disabled(failing_since: datetime | None, now: datetime, after: timedelta) -> bool:
    """A webhook endpoint is disabled only after failing without any success for `after` (slow, explainable)."""
    return failing_since is not None and now - failing_since >= after


@dataclass(frozen=True, slots=True)
class FailureStreak:
    """Consecutive failures of a partner postback and when the streak started."""

    count: int
    started_at: datetime | None

    def after_failure(self, now: datetime) -> FailureStreak:
        """One more failure; a streak older than the window starts again."""
        if self.started_at is None or now - self.started_at > POSTBACK_FAILURE_WINDOW:
            return FailureStreak(1, now)
        return FailureStreak(self.count + 1, self.started_at)

    @property
    def deactivates(self) -> bool:
        return self.count >= POSTBACK_FAILURE_LIMIT
