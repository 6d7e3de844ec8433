"""The days the console and the portals show: whole local days of a time zone (`DateRange`), the one parser of
every page's `from` and `to`, and the program's time zone (`TRACKLANE_TIMEZONE`) they are counted in.

A page's days are local days of the program's zone, as a network's are in Everflow: "today" on the dashboard
begins at local midnight, a chart's day is a local date, and `from`/`to` name local dates. Instants are kept
in UTC; a range turns into the UTC instants its days begin and end at (`created_from`, `created_to`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from typing import Final

from starlette.requests import Request

from tracklane.domain.errors import InvalidParameter

DEFAULT_DAYS: Final = 30
#: The longest range a portal page reads; the admin's report builder reads up to `REPORT_MAX_DAYS`.
MAX_DAYS: Final = 366
REPORT_MAX_DAYS: Final = 366 * 3


def program_zone(request: Request) -> tzinfo:
    """The program's time zone, from the process's settings."""
    zone: tzinfo = request.app.state.services.settings.zone
    return zone


@dataclass(frozen=True, slots=True)
class DateRange:
    """Whole local days of `zone`, `first` to `last` both included."""

    first: date
    last: date
    zone: tzinfo

    @property
    def zone_name(self) -> str:
        return str(self.zone)

    @property
    def created_from(self) -> datetime:
        """The instant (UTC) the first day begins at."""
        return _start(self.first, self.zone)

    @property
    def created_to(self) -> datetime:
        """The instant (UTC) the day after the last begins at (excluded)."""
        return _start(self.last + timedelta(days=1), self.zone)

    @property
    def length(self) -> int:
        """How many days it holds."""
        return (self.last - self.first).days + 1

    def before(self) -> DateRange:
        """The range of the same length that ends the day before this one starts."""
        last = self.first - timedelta(days=1)
        return DateRange(last - timedelta(days=self.length - 1), last, self.zone)

    def days(self) -> list[date]:
        """Every day of the range, in order."""
        return [self.first + timedelta(days=n) for n in range(self.length)]

    def query(self) -> dict[str, str]:
        """The range as a page's query values."""
        return {"from": self.first.isoformat(), "to": self.last.isoformat()}


def _start(day: date, zone: tzinfo) -> datetime:
    """The UTC instant local `day` begins at in `zone` (a midnight a clock change skips is the instant after)."""
    return datetime.combine(day, time(), zone).astimezone(UTC)


def today(zone: tzinfo) -> date:
    """Today's local date in `zone`."""
    return datetime.now(zone).date()


def last_days(count: int, zone: tzinfo) -> DateRange:
    """The last `count` local days, today included."""
    end = today(zone)
    return DateRange(end - timedelta(days=count - 1), end, zone)


def date_range(
    raw_from: str | None,
    raw_to: str | None,
    zone: tzinfo,
    default_days: int = DEFAULT_DAYS,
    max_days: int = MAX_DAYS,
) -> DateRange:
    """The local days a page's `from` and `to` (dates, both included) ask for: by default the last
    `default_days` up to today (or up to `to`); only `from`, from it to today (or to itself, when it is later).
    Refused naming the field:
    a value that is not a date, `to` before `from`, a range longer than `max_days`."""
    given_first = _date(raw_from, "from")
    last = _date(raw_to, "to") or max(today(zone), given_first or date.min)
    first = given_first or last - timedelta(days=default_days - 1)
    if last < first:
        raise InvalidParameter("to", "must not be before from")
    if (last - first).days + 1 > max_days:
        raise InvalidParameter("from", f"the range may span at most {max_days} days")
    return DateRange(first, last, zone)


def _date(raw: str | None, name: str) -> date | None:
    if raw is None or not raw.strip():
        return None
    try:
        return date.fromisoformat(raw.strip())
    except ValueError:
        raise InvalidParameter(name, "must be a date written YYYY-MM-DD") from None
