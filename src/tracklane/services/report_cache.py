"""The days of reports kept between reports, while what they count stays the same.

A report grouped first by day and counted by conversion date is its days in order, each day's lines its own.
Each whole day's rows (as one role sees them, for one narrowed query) and totals are kept with the versions
of the UTC hours it spans and the version of every hour (`Repository.report_versions`). Every write that
changes what a report counts in a UTC hour raises that hour's version in the same transaction (a change to
every hour, the one of every hour), and a version is never lowered, so a kept day whose versions are
unchanged is exactly what counting it again would give, whichever process wrote. By the hour, so that a
write counts again only the local day it falls in: a day in New York spans two UTC days. A report takes
its kept days, counts the others (and the range's ends that are not whole days) in one read, and sums its
totals from its days'. The versions are read before the lines, so a day counted after a write it read no
version of is kept under the older version, and counted again next time.

At most `max_rows` rows are kept, the least recently used day dropped first; 0 keeps none.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from typing import Any

from tracklane.resources.fields import View
from tracklane.resources.reports import ReportLine, ReportQuery

Key = tuple[Any, ...]


@dataclass(frozen=True, slots=True)
class Day:
    """A whole local day of a report's range: its label (as a line's `day` holds it), its instants [start,
    end) and the starts of the UTC hours they fall in."""

    label: str
    start: datetime
    end: datetime
    utc_hours: tuple[datetime, ...]


@dataclass(frozen=True, slots=True)
class KeptDay:
    """A day's rows as one role sees them and its totals (a line per currency), as of `versions`."""

    versions: tuple[int, ...]
    rows: list[View]
    totals: list[ReportLine]


def kept_by_day(query: ReportQuery) -> bool:
    """Whether a report is made of its days: grouped first by day, counted by conversion date, over a range."""
    return (
        bool(query.group_by)
        and query.group_by[0] == "day"
        and query.date_basis == "conversion"
        and query.created_from is not None
        and query.created_to is not None
    )


def whole_days(query: ReportQuery) -> list[Day]:
    """The local days (in the query's zone) wholly inside its range, in order."""
    assert query.created_from is not None and query.created_to is not None
    zone, days = query.zone, []
    local = query.created_from.astimezone(zone).date()
    while (end := _local_start(local + timedelta(days=1), zone)) <= query.created_to:
        if (start := _local_start(local, zone)) >= query.created_from:
            days.append(Day(local.isoformat(), start, end, _utc_hours(start, end)))
        local += timedelta(days=1)
    return days


def day_key(role: object, query: ReportQuery, day: Day) -> Key:
    """What a kept day is found by: the role, and everything of the narrowed query but its range."""
    return (role, query.group_by, query.offer_id, query.partner_id, query.advertiser_id,
            tuple(sorted(query.filters.items())), query.zone, day.start, day.end)  # fmt: skip


class ReportCache:
    """Kept days by `day_key`, at most `max_rows` rows in all, least recently used dropped first."""

    def __init__(self, max_rows: int) -> None:
        self.max_rows = max_rows
        self.rows = 0
        self.hits = 0
        self.misses = 0
        self._days: OrderedDict[Key, KeptDay] = OrderedDict()

    def clear(self) -> None:
        """Keep nothing (what was kept is counted again)."""
        self._days.clear()
        self.rows = 0

    def get(self, key: Key, versions: tuple[int, ...]) -> KeptDay | None:
        """The day kept under `key` if it was made at `versions`."""
        kept = self._days.get(key)
        if kept is None or kept.versions != versions:
            self.misses += 1
            return None
        self._days.move_to_end(key)
        self.hits += 1
        return kept

    def put(self, key: Key, kept: KeptDay) -> None:
        if len(kept.rows) > self.max_rows:
            return
        if (earlier := self._days.pop(key, None)) is not None:
            self.rows -= len(earlier.rows)
        self._days[key] = kept
        self.rows += len(kept.rows)
        while self.rows > self.max_rows:
            _, dropped = self._days.popitem(last=False)
            self.rows -= len(dropped.rows)


def _local_start(day: date, zone: tzinfo) -> datetime:
    """The first instant of a local day. Where clocks skip its midnight, the wall time is read at the offset
    before the change: exactly the instant of the change, the day's first."""
    return datetime.combine(day, time(), zone).astimezone(UTC)


def _utc_hours(start: datetime, end: datetime) -> tuple[datetime, ...]:
    """The starts of the UTC hours [start, end) falls in (those of a zone off the hour: partly)."""
    first = start.replace(minute=0, second=0, microsecond=0)
    last = (end - timedelta(microseconds=1)).replace(minute=0, second=0, microsecond=0)
    return tuple(first + timedelta(hours=n) for n in range((last - first) // timedelta(hours=1) + 1))
