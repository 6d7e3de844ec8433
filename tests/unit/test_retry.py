"""The retry schedule and the give-up rules, as pure functions with an injected random source."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tracklane.domain.retry import (
    MAX_ATTEMPTS,
    OUR_FAILURE_PAUSE,
    SCHEDULE,
    AttemptResult,
    FailureStreak,
    Verdict,
    endpoint_should_be_disabled,
    judge,
    next_delay,
)

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def middle() -> float:
    return 0.5


def test_schedule_spans_about_three_days_over_ten_attempts() -> None:
    assert MAX_ATTEMPTS == 10
    total = sum(SCHEDULE, timedelta())
    assert timedelta(days=3) <= total <= timedelta(days=3, hours=4)
    assert list(SCHEDULE) == sorted(SCHEDULE)


@pytest.mark.parametrize(
    ("result", "verdict"),
    [
        (AttemptResult(200), Verdict.SUCCESS),
        (AttemptResult(204), Verdict.SUCCESS),
        (AttemptResult(299), Verdict.SUCCESS),
        (AttemptResult(200, body_matched=False), Verdict.FAILURE),
        (AttemptResult(301), Verdict.FAILURE),
        (AttemptResult(302), Verdict.FAILURE),
        (AttemptResult(400), Verdict.FAILURE),
        (AttemptResult(500), Verdict.FAILURE),
        (AttemptResult(410), Verdict.GONE),
        (AttemptResult(429), Verdict.THROTTLED),
        (AttemptResult(502), Verdict.THROTTLED),
        (AttemptResult(503), Verdict.THROTTLED),
        (AttemptResult(504), Verdict.THROTTLED),
        (AttemptResult(None, "timeout"), Verdict.THROTTLED),
        (AttemptResult(None, "connect"), Verdict.FAILURE),
        (AttemptResult(None, "dns"), Verdict.FAILURE),
        (AttemptResult(None, "refused_destination"), Verdict.FAILURE),
        (AttemptResult(None, "resolver"), Verdict.OURS),
        (AttemptResult(None, "internal"), Verdict.OURS),
    ],
)
def test_judge(result: AttemptResult, verdict: Verdict) -> None:
    assert judge(result) is verdict


@pytest.mark.parametrize("attempts", range(1, MAX_ATTEMPTS))
def test_failures_follow_the_schedule_with_twenty_percent_jitter(attempts: int) -> None:
    base = SCHEDULE[attempts - 1]
    assert next_delay(attempts, Verdict.FAILURE, None, middle) == base
    assert next_delay(attempts, Verdict.FAILURE, None, lambda: 0.0) == base * 0.8
    high = next_delay(attempts, Verdict.FAILURE, None, lambda: 0.999999)
    assert high is not None and base < high <= base * 1.2


def test_gives_up_after_the_last_attempt_and_on_success_or_gone() -> None:
    assert next_delay(MAX_ATTEMPTS, Verdict.FAILURE, None, middle) is None
    assert next_delay(1, Verdict.SUCCESS, None, middle) is None
    assert next_delay(1, Verdict.GONE, None, middle) is None


def test_throttling_backs_off_harder() -> None:
    assert next_delay(1, Verdict.THROTTLED, None, middle) == timedelta(seconds=60)  # 2 x 5 s < one minute
    assert next_delay(3, Verdict.THROTTLED, None, middle) == SCHEDULE[2] * 2


def test_retry_after_slows_down_within_bounds_but_never_speeds_up() -> None:
    assert next_delay(1, Verdict.THROTTLED, timedelta(seconds=600), middle) == timedelta(seconds=600)
    assert next_delay(1, Verdict.THROTTLED, timedelta(days=30), middle) == timedelta(hours=6)
    assert next_delay(4, Verdict.THROTTLED, timedelta(seconds=1), middle) == SCHEDULE[3] * 2


def test_our_failures_spend_no_attempt_and_never_give_up() -> None:
    assert next_delay(MAX_ATTEMPTS, Verdict.OURS, None, middle) == OUR_FAILURE_PAUSE


def test_scale_shrinks_the_schedule_for_tests() -> None:
    assert next_delay(2, Verdict.FAILURE, None, middle, scale=0.01) == timedelta(seconds=3)


def test_endpoint_is_disabled_only_after_failing_for_the_whole_period() -> None:
    after = timedelta(hours=120)
    assert not endpoint_should_be_disabled(None, NOW, after)
    assert not endpoint_should_be_disabled(NOW - timedelta(hours=119), NOW, after)
    assert endpoint_should_be_disabled(NOW - timedelta(hours=120), NOW, after)


def test_partner_postback_deactivates_after_ten_consecutive_failures_within_72_hours() -> None:
    streak = FailureStreak(0, None)
    for i in range(9):
        streak = streak.after_failure(NOW + timedelta(hours=i))
    assert (streak.count, streak.deactivates) == (9, False)
    assert streak.after_failure(NOW + timedelta(hours=71)).deactivates
    restarted = streak.after_failure(NOW + timedelta(hours=73))
    assert (restarted.count, restarted.started_at, restarted.deactivates) == (1, NOW + timedelta(hours=73), False)
