"""The performance report: what it counts (`ReportQuery`: dimensions, filters, time zone and date basis, read
from a query string by `report_query`), the time buckets of a zone (`ZoneOffsets`), what the storage counts
per group and currency (`ReportLine`), each role's view of it, and its CSV and JSON Lines encodings
(`csv_lines`, `jsonl_lines`: the API's downloads and the console's alike).

- The admin sees every metric (`ReportView`).
- An advertiser sees what it owes: revenue, pending revenue, the sale amount, revenue per click (RPC) and the
  average order value (AOV); never payout, profit, margin or EPC (a payout per click) (`ReportAdvertiserView`).
- A partner sees its traffic and what it earns: payout, pending payout and its EPC (payout per billable
  click); never revenue, profit, margin, RPC, the sale amount or AOV (`ReportPartnerView`).

Money is never added across currencies: every line is of one currency (a click's is its offer's, a
conversion's its own), every row names it, and the totals are one per currency (`totals_by_currency`;
`totals` is that one total when the report has a single currency). A row carries only the dimensions it was
grouped by (the others are absent), and always its currency. Money is a decimal string in its currency's
minor unit (JPY `"5"`, USD `"5.00"`, KWD `"5.000"`), with more places only where the amount has them.

Time buckets (`hour`, `day`, `week` from Monday, `month`) are taken in the query's IANA zone and keyed by
their local start with its offset (`2026-03-01T00:00:00+05:45`); `date` is the local calendar date
(`2026-03-01`), the shape `day` had before reports had zones.
"""

from __future__ import annotations

import csv
import gc
import io
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, tzinfo
from functools import cache
from itertools import islice
from types import MappingProxyType
from typing import Annotated, Any, Final, Generic, Literal, NamedTuple, TypeVar, get_args
from zoneinfo import ZoneInfo, available_timezones

import msgspec

from tracklane.domain.errors import InvalidParameter
from tracklane.domain.ids import MAX_ID, id_or_none
from tracklane.domain.model import ConversionStatus, Origin, Role
from tracklane.domain.money import STORAGE_PLACES, format_units, minor_units, parse_currency
from tracklane.domain.tenancy import Scope
from tracklane.resources.fields import UNSET, MoneyText, Unset, View

REPORT_CURRENCY: Final = "USD"  # the currency of a click whose offer does not exist
EMPTY_GROUP: Final[Mapping[str, object]] = MappingProxyType({})  # the group of a currency's totals

# The dimensions a report groups by, and the filters it takes (each a dimension too).
OWN_DIMENSIONS: Final = ("offer", "partner", "advertiser")
TIME_DIMENSIONS: Final = ("hour", "day", "week", "month", "date")
CLICK_DIMENSIONS: Final = (
    "sub1", "sub2", "sub3", "sub4", "sub5", "source_id", "country", "device", "device_type", "os", "browser",
)  # fmt: skip
CONVERSION_DIMENSIONS: Final = ("event", "status", "origin")
DIMENSIONS: Final = (*OWN_DIMENSIONS, *TIME_DIMENSIONS, *CLICK_DIMENSIONS, *CONVERSION_DIMENSIONS, "currency")
#: `device_type` is the name `device` had: both group and filter by the click's device type.
ALIASES: Final = {"device_type": "device"}
FILTERS: Final = (*(d for d in CLICK_DIMENSIONS if d not in ALIASES), *CONVERSION_DIMENSIONS, "currency")
ID_FILTERS: Final = ("offer_id", "partner_id", "advertiser_id")
DateBasis = Literal["conversion", "click"]
DATE_BASES: Final = get_args(DateBasis)
MAX_TEXT = 255  # the longest sub, source id, event name, ... a click or conversion holds

_HOUR, _DAY = timedelta(hours=1), timedelta(days=1)
_SPAN_MARGIN = timedelta(days=32)  # a bucket (a month at most) starts at most 31 days before an instant in it
_FIRST, _LAST = datetime(1, 1, 3), datetime(9999, 12, 29)  # the span any offset can be applied to


# --- the query ---------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ReportQuery:
    """Which traffic the report counts and how it groups it; the id filters are narrowed to the caller's
    tenant by the service.

    `filters` maps a dimension of `FILTERS` to the value it must have. A filter on a conversion's dimension
    (event, status, origin) narrows the conversions and events only: clicks have none, and are counted as
    without it. `zone` is the zone of the time buckets; `date_basis` which time a conversion is bucketed and
    filtered by (its own, or its click's).
    """

    group_by: tuple[str, ...]
    created_from: datetime | None = None
    created_to: datetime | None = None
    offer_id: int | None = None
    partner_id: int | None = None
    advertiser_id: int | None = None
    filters: Mapping[str, str] = field(default_factory=dict)
    zone: tzinfo = UTC
    date_basis: DateBasis = "conversion"

    def __post_init__(self) -> None:
        for dimension in self.group_by:
            if dimension not in DIMENSIONS:
                raise InvalidParameter("group_by", f"{dimension!r} is not one of {', '.join(DIMENSIONS)}")
        if len({ALIASES.get(d, d) for d in self.group_by}) != len(self.group_by):
            raise InvalidParameter("group_by", "names a dimension twice")
        for name in self.filters:
            if name not in FILTERS:
                raise InvalidParameter(name, f"is not a report filter (one of {', '.join(FILTERS)})")
        if self.date_basis not in DATE_BASES:
            raise InvalidParameter("date_basis", f"must be one of {', '.join(DATE_BASES)}")

    @property
    def times(self) -> tuple[str, ...]:
        """The time buckets it groups by."""
        return tuple(d for d in self.group_by if d in TIME_DIMENSIONS)


#: Every query parameter of the report, with its description (the API documents them from this table).
PARAMETERS: Final = {
    "group_by": f"comma-separated dimensions (default `offer`; empty: totals only): {', '.join(DIMENSIONS)}",
    "from": "counted from this time on (ISO 8601; a date or a time without an offset is read in `tz`)",
    "to": "counted before this time (ISO 8601; a date or a time without an offset is read in `tz`)",
    "tz": "the IANA time zone of the time buckets and of `from`/`to` without an offset (default UTC)",
    "date_basis": "bucket and filter conversions by their own time (`conversion`, the default) or by their click's",
    "offer_id": "only this offer", "partner_id": "only this partner", "advertiser_id": "only this advertiser",
    **{f"sub{n}": f"only clicks with this sub{n}, and their conversions" for n in range(1, 6)},
    "source_id": "only clicks with this source id, and their conversions",
    "country": "only clicks from this country (ISO 3166 alpha-2), and their conversions",
    "device": "only clicks of this device type (desktop, mobile, tablet, ...), and their conversions",
    "device_type": "the same filter as `device` (its earlier name)",
    "os": "only clicks of this operating system, and their conversions",
    "browser": "only clicks of this browser, and their conversions",
    "event": "only conversion events of this name (clicks are counted as without it)",
    "status": "only conversions of this status: approved, pending, rejected (clicks are counted as without it)",
    "origin": "only conversions of this origin: postback, segment, sdk, api (clicks are counted as without it)",
    "currency": "only money of this currency (ISO 4217): clicks of its offers and its conversions",
}  # fmt: skip


def report_query(params: Mapping[str, str]) -> ReportQuery:
    """The query a query string asks for (`PARAMETERS`); an unknown or malformed parameter is refused naming it."""
    for name in params:
        if name not in PARAMETERS:
            raise InvalidParameter(name[:100], "is not a parameter of the report")
    zone = parse_zone(params.get("tz") or "UTC")
    filters: dict[str, str] = {}
    for name in (*FILTERS, *ALIASES):
        value = params.get(name, "")
        if value:
            canonical = ALIASES.get(name, name)
            if canonical in filters:
                raise InvalidParameter(name, f"is the same filter as {canonical}: give one of them")
            filters[canonical] = _filter_value(canonical, value, name)
    basis = params.get("date_basis") or "conversion"
    if basis not in DATE_BASES:
        raise InvalidParameter("date_basis", f"must be one of {', '.join(DATE_BASES)}")
    return ReportQuery(
        group_by=tuple(d.strip() for d in params.get("group_by", "offer").split(",") if d.strip()),
        created_from=local_instant(params.get("from"), "from", zone),
        created_to=local_instant(params.get("to"), "to", zone),
        offer_id=_report_id(params.get("offer_id"), "offer_id"),
        partner_id=_report_id(params.get("partner_id"), "partner_id"),
        advertiser_id=_report_id(params.get("advertiser_id"), "advertiser_id"),
        filters=filters, zone=zone, date_basis="click" if basis == "click" else "conversion",
    )  # fmt: skip


@cache
def _zone_names() -> frozenset[str]:
    """The IANA zone names of the system's database, or of the `tzdata` package where the system has none."""
    return frozenset(available_timezones())


def parse_zone(name: str, field: str = "tz") -> tzinfo:
    """An IANA time zone by its name (`Asia/Kathmandu`); `UTC` is always known."""
    if name == "UTC":
        return UTC
    if len(name) > 64 or name == "localtime" or name not in _zone_names():
        raise InvalidParameter(field, "must be an IANA time zone name, such as UTC or Asia/Kathmandu")
    return ZoneInfo(name)


def local_instant(raw: str | None, field: str, zone: tzinfo) -> datetime | None:
    """An ISO 8601 date or date-time as an aware UTC time; without an offset it is a local time of `zone`."""
    if raw is None or raw == "":
        return None
    try:
        value = datetime.fromisoformat(raw.replace("Z", "+00:00"))
        return (value.replace(tzinfo=zone) if value.tzinfo is None else value).astimezone(UTC)
    except ValueError:
        raise InvalidParameter(field, "must be an ISO 8601 date or date-time") from None
    except OverflowError:  # 0001-01-01T00:00+01:00 is a valid date-time before year 1 in UTC
        raise InvalidParameter(field, "is out of range once converted to UTC") from None


def _report_id(raw: str | None, field: str) -> int | None:
    if raw is None:
        return None
    value = id_or_none(raw)
    if value is None:
        raise InvalidParameter(field, f"must be a whole number from 1 to {MAX_ID}, written with the digits 0-9")
    return value


def _filter_value(name: str, value: str, field: str) -> str:
    if len(value) > MAX_TEXT:
        raise InvalidParameter(field, f"is longer than {MAX_TEXT} characters")
    if name == "status" and value not in set(ConversionStatus):
        raise InvalidParameter(field, f"must be one of {', '.join(ConversionStatus)}")
    if name == "origin" and value not in set(Origin):
        raise InvalidParameter(field, f"must be one of {', '.join(Origin)}")
    if name == "currency":
        return parse_currency(value, field)
    return value.upper() if name == "country" else value


# --- time buckets ------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ZoneOffsets:
    """A zone's UTC offsets over a span of time: `changes` holds (the first instant, naive UTC; the offset in
    seconds) in order, the first from the beginning of time. A bucket's label is the local wall time it
    starts at (`bucket_label`); storage computes it in SQL from the same offsets."""

    zone: tzinfo
    changes: tuple[tuple[datetime | None, int], ...]

    @classmethod
    def over(cls, zone: tzinfo, start: datetime, end: datetime) -> ZoneOffsets:
        """The offsets from `start` to `end` (aware), and 32 days before (where a month bucket may start).

        The zone is read once a day (no zone changes its offset twice a day) and each change to the second.
        """
        first = max(_FIRST + _SPAN_MARGIN, _naive_utc(start)) - _SPAN_MARGIN
        first = first.replace(hour=0, minute=0, second=0, microsecond=0)
        last = min(_LAST, _naive_utc(end)) + _DAY
        offset = _offset(zone, first)
        changes: list[tuple[datetime | None, int]] = [(None, offset)]
        moment = first
        while moment < last:
            following = moment + _DAY
            if (ahead := _offset(zone, following)) != offset:
                changes.append((_change(zone, moment, following, offset), ahead))
                offset = ahead
            moment = following
        return cls(zone, tuple(changes))

    @property
    def fixed(self) -> int | None:
        """The one offset, when it does not change over the span."""
        return self.changes[0][1] if len(self.changes) == 1 else None

    def at(self, instant: datetime) -> int:
        """The offset (seconds) at an instant (aware)."""
        moment, offset = _naive_utc(instant), self.changes[0][1]
        for since, seconds in self.changes[1:]:
            if since is None or since > moment:
                break
            offset = seconds
        return offset

    def label(self, dimension: str, instant: datetime) -> str:
        """The label of the bucket holding `instant` (aware): its local wall time, as SQL writes it."""
        return bucket_label(dimension, _naive_utc(instant) + timedelta(seconds=self.at(instant)))

    def key(self, dimension: str, label: str, offset: int | None = None) -> str:
        """A bucket's key: for an hour its local start with its offset (which tells which of a repeated local
        hour it is); for a day, week or month its local date (`day` keeps the shape it always had).
        The start is the first instant whose wall time is in it."""
        if dimension != "hour":
            return label
        wall = datetime.fromisoformat(label)
        end = _bucket_end(dimension, wall)
        for index, (since, seconds) in enumerate(self.changes):
            until = self.changes[index + 1][0] if index + 1 < len(self.changes) else None
            if dimension == "hour" and seconds != (self.fixed if offset is None else offset):
                continue
            shift = timedelta(seconds=seconds)
            if (since is None or since + shift < end) and (until is None or until + shift > wall):
                start = wall - shift if since is None else max(since, wall - shift)
                return start.replace(tzinfo=UTC).astimezone(self.zone).isoformat()
        return label  # not reached: every label comes from an instant of the span


def bucket_label(dimension: str, wall: datetime) -> str:
    """The label of a time bucket by a local wall time: hour `YYYY-MM-DDTHH:00`, day and date `YYYY-MM-DD`,
    week the date of its Monday, month `YYYY-MM-01`."""
    if dimension == "week":
        wall -= timedelta(days=wall.weekday())
    day = f"{wall.year:04d}-{wall.month:02d}-{wall.day:02d}"
    if dimension == "hour":
        return f"{day}T{wall.hour:02d}:00"
    return f"{day[:8]}01" if dimension == "month" else day


def _bucket_end(dimension: str, wall: datetime) -> datetime:
    if dimension == "month":
        return wall.replace(year=wall.year + wall.month // 12, month=wall.month % 12 + 1)
    return wall + {"hour": _HOUR, "day": _DAY, "week": 7 * _DAY}[dimension]


def _naive_utc(instant: datetime) -> datetime:
    return instant.astimezone(UTC).replace(tzinfo=None) if instant.tzinfo is not None else instant


def _offset(zone: tzinfo, moment: datetime) -> int:
    offset = moment.replace(tzinfo=UTC).astimezone(zone).utcoffset()
    return int(offset.total_seconds()) if offset is not None else 0


def _change(zone: tzinfo, before: datetime, after: datetime, offset: int) -> datetime:
    """The first second after `before` (at `offset`) and not after `after` with another offset."""
    low, high = 0, int((after - before).total_seconds())
    while high - low > 1:
        middle = (low + high) // 2
        low, high = (middle, high) if _offset(zone, before + timedelta(seconds=middle)) == offset else (low, middle)
    return before + timedelta(seconds=high)


# --- what the storage counts -------------------------------------------------------------------------------------


class ReportLine(NamedTuple):
    """What the storage counted for one group (its dimension values in `group`, time buckets by their key) in
    one currency, or the totals of a currency (`group` empty).

    Money is in storage units (`STORAGE_PLACES` places: 12.50 is 125000), summed exactly as stored: approved
    conversions and events plus CPC clicks; `pending_*` is what is held for review. `unique_clicks` counts the
    clicks that were the first from their IP address for their offer and partner in 24 hours (flagged when
    recorded, so it adds up across groups); `orders` the conversions and events, not rejected, that carry a
    sale amount (the AOV's divisor). The counts come in the order of the views' first fields.
    """

    group: Mapping[str, object] = EMPTY_GROUP
    currency: str | None = REPORT_CURRENCY
    gross_clicks: int = 0
    unique_clicks: int = 0
    clicks: int = 0
    bot_clicks: int = 0
    rejected_clicks: int = 0
    conversions: int = 0
    events: int = 0
    pending: int = 0
    rejected: int = 0
    orders: int = 0
    revenue: int = 0
    payout: int = 0
    pending_revenue: int = 0
    pending_payout: int = 0
    sale_amount: int = 0


#: The metrics of a line, in its order (after its group).
LINE_METRICS: Final = ReportLine._fields[2:]


# --- each role's view --------------------------------------------------------------------------------------------

Ratio = Annotated[str, msgspec.Meta(description="a decimal string; null when there is nothing to divide by",
                                    examples=["2.50"])]  # fmt: skip
CurrencyCode = Annotated[str, msgspec.Meta(description="ISO 4217 code of the row's money; null only in the "
                                           "totals of a report without rows", examples=["USD"])]  # fmt: skip
IdValue = int | None | Unset
TextValue = str | None | Unset


class _ReportCounts(View, frozen=True):
    currency: CurrencyCode | None
    gross_clicks: int
    unique_clicks: int
    clicks: int
    bot_clicks: int
    rejected_clicks: int
    conversions: int
    events: int
    pending: int
    rejected: int
    cvr: Ratio | None


class ReportPartnerTotals(_ReportCounts, frozen=True):
    payout: MoneyText
    pending_payout: MoneyText
    epc: Ratio | None


class ReportAdvertiserTotals(_ReportCounts, frozen=True):
    revenue: MoneyText
    pending_revenue: MoneyText
    sale_amount: MoneyText
    rpc: Ratio | None
    aov: MoneyText | None


class ReportTotals(ReportAdvertiserTotals, frozen=True):
    payout: MoneyText
    pending_payout: MoneyText
    profit: MoneyText
    margin: Ratio | None
    epc: Ratio | None


# A row is its role's totals plus the dimensions it was grouped by (`DIMENSIONS`; `currency` is in every row);
# msgspec structs cannot combine two bases with fields, so each row type lists them.


class ReportPartnerRow(ReportPartnerTotals, frozen=True):
    offer: IdValue = UNSET
    partner: IdValue = UNSET
    advertiser: IdValue = UNSET
    hour: TextValue = UNSET
    day: TextValue = UNSET
    week: TextValue = UNSET
    month: TextValue = UNSET
    date: TextValue = UNSET
    sub1: TextValue = UNSET
    sub2: TextValue = UNSET
    sub3: TextValue = UNSET
    sub4: TextValue = UNSET
    sub5: TextValue = UNSET
    source_id: TextValue = UNSET
    country: TextValue = UNSET
    device: TextValue = UNSET
    device_type: TextValue = UNSET
    os: TextValue = UNSET
    browser: TextValue = UNSET
    event: TextValue = UNSET
    status: TextValue = UNSET
    origin: TextValue = UNSET


class ReportAdvertiserRow(ReportAdvertiserTotals, frozen=True):
    offer: IdValue = UNSET
    partner: IdValue = UNSET
    advertiser: IdValue = UNSET
    hour: TextValue = UNSET
    day: TextValue = UNSET
    week: TextValue = UNSET
    month: TextValue = UNSET
    date: TextValue = UNSET
    sub1: TextValue = UNSET
    sub2: TextValue = UNSET
    sub3: TextValue = UNSET
    sub4: TextValue = UNSET
    sub5: TextValue = UNSET
    source_id: TextValue = UNSET
    country: TextValue = UNSET
    device: TextValue = UNSET
    device_type: TextValue = UNSET
    os: TextValue = UNSET
    browser: TextValue = UNSET
    event: TextValue = UNSET
    status: TextValue = UNSET
    origin: TextValue = UNSET


class ReportRow(ReportTotals, frozen=True):
    offer: IdValue = UNSET
    partner: IdValue = UNSET
    advertiser: IdValue = UNSET
    hour: TextValue = UNSET
    day: TextValue = UNSET
    week: TextValue = UNSET
    month: TextValue = UNSET
    date: TextValue = UNSET
    sub1: TextValue = UNSET
    sub2: TextValue = UNSET
    sub3: TextValue = UNSET
    sub4: TextValue = UNSET
    sub5: TextValue = UNSET
    source_id: TextValue = UNSET
    country: TextValue = UNSET
    device: TextValue = UNSET
    device_type: TextValue = UNSET
    os: TextValue = UNSET
    browser: TextValue = UNSET
    event: TextValue = UNSET
    status: TextValue = UNSET
    origin: TextValue = UNSET


class ReportPartnerView(View, frozen=True):
    rows: list[ReportPartnerRow]
    totals: ReportPartnerTotals | None
    totals_by_currency: list[ReportPartnerTotals]


class ReportAdvertiserView(View, frozen=True):
    rows: list[ReportAdvertiserRow]
    totals: ReportAdvertiserTotals | None
    totals_by_currency: list[ReportAdvertiserTotals]


class ReportView(View, frozen=True):
    """`totals` is the report's one currency's totals (zeros without rows), null when it has several."""

    rows: list[ReportRow]
    totals: ReportTotals | None
    totals_by_currency: list[ReportTotals]


ReportRoleView = ReportView | ReportAdvertiserView | ReportPartnerView
RowT = TypeVar("RowT", bound=View)
TotalT = TypeVar("TotalT", bound=View)


# Each row's money and ratios come from integer arithmetic on the stored units, exactly as `Decimal` would
# compute them (half-even to 0.01 for a percentage and to 0.0001 per click; half-up to the minor unit for the
# AOV), each text made once per report: a report has tens of thousands of rows, and repeats its amounts.


class _MoneyTexts(dict[int, str]):
    """The texts of one currency's amounts by their storage units, each formatted once."""

    def __init__(self, currency: str) -> None:
        super().__init__()
        self.currency = currency
        self.step = 10 ** (STORAGE_PLACES - minor_units(currency))  # the minor unit, in storage units

    def __missing__(self, units: int) -> str:
        text = self[units] = format_units(units, self.currency)
        return text


class _Texts(dict[str | None, _MoneyTexts]):
    """Each currency's money texts (a line of no currency is shown in `REPORT_CURRENCY`)."""

    def __missing__(self, currency: str | None) -> _MoneyTexts:
        texts = self[currency] = _MoneyTexts(currency or REPORT_CURRENCY)
        return texts


class _Percents(dict[tuple[int, int], str | None]):
    """`part` as a percentage of `whole` by (part, whole): to 2 places, half-even; None when `whole` is 0."""

    def __missing__(self, key: tuple[int, int]) -> str | None:
        part, whole = key
        if not whole:
            text = None
        else:
            hundredths = _half_even(abs(part) * 10_000, abs(whole))
            sign = "-" if (part < 0) != (whole < 0) else ""  # as Decimal signs a quotient, zero included
            text = f"{sign}{hundredths // 100}.{hundredths % 100:02d}"
        self[key] = text
        return text


def _half_even(numerator: int, denominator: int) -> int:
    quotient, remainder = divmod(numerator, denominator)
    if 2 * remainder > denominator or (2 * remainder == denominator and quotient & 1):
        quotient += 1
    return quotient


def _per_click(units: int, clicks: int) -> int:
    """Money per click, to the storage unit (0.0001), half-even."""
    quotient = _half_even(abs(units), clicks)
    return -quotient if units < 0 else quotient


def _average(units: int, orders: int, step: int) -> int:
    """The average order value in storage units, rounded half-up to the currency's minor unit (`step` units)."""
    whole = abs(orders) * step
    quotient, remainder = divmod(abs(units), whole)
    quotient += 2 * remainder >= whole
    return quotient * step * (-1 if (units < 0) != (orders < 0) else 1)


def _partner_metrics(line: ReportLine, texts: _Texts, percents: _Percents) -> tuple[object, ...]:
    """A partner's row fields in order: the counts, the CVR, payout, pending payout and EPC."""
    money, clicks = texts[line.currency], line.clicks
    return (*line[1:11], percents[line.conversions, clicks], money[line.payout], money[line.pending_payout],
            money[_per_click(line.payout, clicks)] if clicks else None)  # fmt: skip


def _advertiser_metrics(line: ReportLine, texts: _Texts, percents: _Percents) -> tuple[object, ...]:
    """An advertiser's row fields in order: the counts, the CVR, revenue, pending revenue, sale amount, RPC and
    AOV."""
    money, clicks, orders = texts[line.currency], line.clicks, line.orders
    return (*line[1:11], percents[line.conversions, clicks], money[line.revenue], money[line.pending_revenue],
            money[line.sale_amount], money[_per_click(line.revenue, clicks)] if clicks else None,
            money[_average(line.sale_amount, orders, money.step)] if orders else None)  # fmt: skip


def _admin_metrics(line: ReportLine, texts: _Texts, percents: _Percents) -> tuple[object, ...]:
    """The admin's row fields in order: the advertiser's, then payout, pending payout, profit, margin and EPC."""
    money, clicks, revenue, payout = texts[line.currency], line.clicks, line.revenue, line.payout
    profit = revenue - payout
    return (*_advertiser_metrics(line, texts, percents), money[payout], money[line.pending_payout], money[profit],
            percents[profit, revenue], money[_per_click(payout, clicks)] if clicks else None)  # fmt: skip


def _one_total(totals: Sequence[ReportLine]) -> ReportLine | None:
    """The `totals` of the view: the one currency's, zeros (of no currency) without rows, none for several."""
    if len(totals) > 1:
        return None
    return totals[0] if totals else ReportLine(currency=None)


_Metrics = Callable[[ReportLine, _Texts, _Percents], tuple[object, ...]]


@contextmanager
def collector_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector (if it runs) while a report's rows are made; reference counting
    still frees everything."""
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def _rows_of(
    row: type[RowT], metrics: _Metrics, lines: Sequence[ReportLine], texts: _Texts, percents: _Percents
) -> list[RowT]:
    """Each line as the role's row type (its metrics positionally, its dimensions by name)."""
    with collector_paused():  # as when the lines were made: tens of thousands of rows, none of them garbage
        return [row(*metrics(line, texts, percents), **line.group) for line in lines]


@dataclass(frozen=True, slots=True)
class _RoleReport(Generic[RowT, TotalT]):
    """How one role sees a report: its row and totals types, their metrics and its view."""

    row: type[RowT]
    total: type[TotalT]
    metrics: _Metrics
    view: Callable[..., ReportRoleView]


_ROLE_REPORTS: Final[dict[Role, _RoleReport[Any, Any]]] = {
    Role.ADMIN: _RoleReport(ReportRow, ReportTotals, _admin_metrics, ReportView),
    Role.ADVERTISER: _RoleReport(ReportAdvertiserRow, ReportAdvertiserTotals, _advertiser_metrics,
                                 ReportAdvertiserView),
    Role.PARTNER: _RoleReport(ReportPartnerRow, ReportPartnerTotals, _partner_metrics, ReportPartnerView),
}  # fmt: skip


def report_rows_for(role: Role, lines: Sequence[ReportLine]) -> list[View]:
    """The lines as rows of `role`'s view (a part of its report, to be joined by `report_view_of`)."""
    parts = _ROLE_REPORTS[role]
    return _rows_of(parts.row, parts.metrics, lines, _Texts(), _Percents())


def report_view_of(role: Role, rows: list[View], totals: Sequence[ReportLine]) -> ReportRoleView:
    """`role`'s view of a report made of `rows` (from `report_rows_for`) and its totals, a line per currency."""
    parts = _ROLE_REPORTS[role]
    texts, percents = _Texts(), _Percents()
    one = _one_total(totals)
    return parts.view(
        rows=rows,
        totals=None if one is None else parts.total(*parts.metrics(one, texts, percents)),
        totals_by_currency=[parts.total(*parts.metrics(line, texts, percents)) for line in totals],
    )


def summed_totals(parts: Iterable[Sequence[ReportLine]]) -> list[ReportLine]:
    """The totals of a report made of parts, from each part's totals (a line per currency): a line per
    currency, in currency order."""
    lines = [line for totals in parts for line in totals]
    currencies = sorted({line.currency for line in lines}, key=lambda c: c or "")
    summed = []
    for currency in currencies:
        of_currency = lines if len(currencies) == 1 else [line for line in lines if line.currency == currency]
        # a metric at a time: the lines' columns (transposed by `zip`) summed in C, not a line at a time
        summed.append(ReportLine(EMPTY_GROUP, currency, *map(sum, islice(zip(*of_currency, strict=True), 2, None))))
    return summed


def report_view_for(
    scope: Scope, lines: Sequence[ReportLine], totals: Sequence[ReportLine] | ReportLine
) -> ReportRoleView:
    """The report as the caller's role sees it (its lines are already narrowed to the caller's tenant);
    `totals` holds a line per currency (or is the one currency's line)."""
    per_currency = [totals] if isinstance(totals, ReportLine) else list(totals)
    return report_view_of(scope.role, report_rows_for(scope.role, lines), per_currency)


# --- downloads ---------------------------------------------------------------------------------------------------

_ROW_TYPES: Final[dict[type[View], type[View]]] = {
    ReportView: ReportRow, ReportAdvertiserView: ReportAdvertiserRow, ReportPartnerView: ReportPartnerRow,
}  # fmt: skip
_FORMULA_START: Final = ("=", "+", "-", "@", "\t", "\r")


def report_columns(view: ReportRoleView, group_by: Sequence[str]) -> list[str]:
    """The columns of a download: the dimensions as grouped, the currency, then the role's metrics."""
    metrics = [name for name in _ROW_TYPES[type(view)].__struct_fields__ if name not in DIMENSIONS]
    return [*(d for d in group_by if d != "currency"), "currency", *metrics]


def csv_lines(view: ReportRoleView, group_by: Sequence[str]) -> Iterator[str]:
    """The rows as CSV lines (RFC 4180), the header first. A text cell a spreadsheet would read as a formula
    (it starts with `=`, `+`, `-`, `@`, a tab or a carriage return) gets a leading `'` (OWASP); the numbers the
    report computes are written as they are."""
    columns = report_columns(view, group_by)
    texts = set(columns) & set(DIMENSIONS)
    yield _csv_line(columns)
    for row in view.rows:
        yield _csv_line([_cell(getattr(row, name), name in texts) for name in columns])


def jsonl_lines(view: ReportRoleView) -> Iterator[str]:
    """The rows as JSON Lines: one JSON object per row, each its role's row."""
    for row in view.rows:
        yield msgspec.json.encode(row).decode() + "\n"


def _cell(value: object, text: bool) -> str:
    if value is None or value is UNSET:
        return ""
    shown = str(value)
    return "'" + shown if text and shown.startswith(_FORMULA_START) else shown


def _csv_line(cells: Sequence[str]) -> str:
    out = io.StringIO()
    csv.writer(out, lineterminator="\r\n").writerow(cells)
    return out.getvalue()
