"""Caps: limits on clicks or conversions per period, for an offer as a whole or per partner.

A cap is enforced by an atomic counter per (cap, scope, period start); this module says which
counter an action falls in. Periods are calendar periods in UTC; weeks start on Monday.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum


class CapMetric(StrEnum):
    CLICKS = "clicks"
    CONVERSIONS = "conversions"


class CapPeriod(StrEnum):
    DAY = "day"
    WEEK = "week"
    MONTH = "month"
    TOTAL = "total"


@dataclass(frozen=True, slots=True)
class CapRule:
    """A limit as configured on an offer (before it is stored and gets an id)."""

    metric: CapMetric
    period: CapPeriod
    limit: int
    per_partner: bool = False


@dataclass(frozen=True, slots=True)
class Cap:
    """A stored cap."""

    id: int
    rule: CapRule


@dataclass(frozen=True, slots=True)
class CapCounterKey:
    cap_id: int
    scope: int
    period_start: str


def period_start(period: CapPeriod, now: datetime) -> str:
    """The first day (ISO date) of the period `now` falls in; `-` for a total cap."""
    day = now.date()
    if period is CapPeriod.DAY:
        return day.isoformat()
    if period is CapPeriod.WEEK:
        return (day - timedelta(days=day.weekday())).isoformat()
    if period is CapPeriod.MONTH:
        return day.replace(day=1).isoformat()
    return "-"


def counter_key(cap: Cap, partner_id: int, now: datetime) -> CapCounterKey:
    """The counter that one action of `partner_id` at `now` counts against (scope 0 = whole offer)."""
    scope = partner_id if cap.rule.per_partner else 0
    return CapCounterKey(cap.id, scope, period_start(cap.rule.period, now))
