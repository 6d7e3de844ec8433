"""Caps: limits on clicks or conversions per period, for an offer as a whole or per partner.

A cap is enforced by an atomic counter per (cap, scope, period start); this module says which
counter an action falls in. Periods are calendar periods in UTC; weeks start on Monday.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from tracklane.domain.errors import InvalidParameter


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

    @classmethod
    def parse(cls, raw: object, field: str) -> CapRule:
        if not isinstance(raw, dict):
            raise InvalidParameter(field, "must be an object with metric, period and limit")
        try:
            metric = CapMetric(str(raw.get("metric")))
        except ValueError:
            raise InvalidParameter(f"{field}.metric", "must be 'clicks' or 'conversions'") from None
        try:
            period = CapPeriod(str(raw.get("period")))
        except ValueError:
            raise InvalidParameter(f"{field}.period", "must be day, week, month or total") from None
        limit = raw.get("limit")
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 0:
            raise InvalidParameter(f"{field}.limit", "must be a non-negative integer")
        per_partner = raw.get("per_partner", False)
        if not isinstance(per_partner, bool):
            raise InvalidParameter(f"{field}.per_partner", "must be true or false")
        return cls(metric, period, limit, per_partner)

    def to_json(self) -> dict[str, object]:
        return {"metric": self.metric.value, "period": self.period.value, "limit": self.limit,
                "per_partner": self.per_partner}


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
