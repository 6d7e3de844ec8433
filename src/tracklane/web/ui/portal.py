"""What the partner portal and the advertiser portal share: the performance of a range of days against the one
before it (the KPI tiles), the day chart, the names of the offers a viewer sees, the query values of a list's
filters and its "Next" link.

Days are local days of the program's zone (`dates.DateRange`): a report the portal reads is bounded by them and
buckets its days in that zone, so a chart's day is the local date.

The money of a report is that of the viewer's side only (a partner's payout, an advertiser's revenue): the
role's report view has no other money field, and the summary reads only the one it is given. Money is never
added across currencies: each total is kept per currency.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import tzinfo
from decimal import Decimal
from typing import Any, Final, Literal
from urllib.parse import urlencode

from tracklane.domain.errors import InvalidParameter
from tracklane.domain.ids import parse_id
from tracklane.domain.tenancy import Scope
from tracklane.resources.reports import REPORT_CURRENCY, ReportQuery
from tracklane.services.ports import Page
from tracklane.services.registry import Services
from tracklane.web.ui.dates import DateRange, date_range

LIST_LIMIT: Final = 50
_ALL: Final = 500  # the page size of reads that take every row of a small list (offers, access)

MoneyField = Literal["payout", "revenue"]


def optional_id(raw: str | None, name: str) -> int | None:
    """An id filter of a page: empty means no filter."""
    return None if raw is None or raw == "" else parse_id(raw, name)


def cursor_of(raw: str | None) -> int | None:
    return optional_id(raw, "cursor")


def choice(raw: str | None, allowed: Iterable[str], name: str) -> str | None:
    """A select's value: empty means none; anything not offered is refused naming the parameter."""
    if raw is None or raw == "":
        return None
    options = tuple(allowed)
    if raw not in options:
        raise InvalidParameter(name, f"must be one of {', '.join(options)}")
    return raw


def next_link(path: str, params: Mapping[str, object], items: Sequence[Any], limit: int = LIST_LIMIT) -> str | None:
    """The link to the next page of a list when this one is full (its cursor: the last id shown)."""
    if len(items) < limit or not items:
        return None
    kept = {name: str(value) for name, value in params.items() if value not in (None, "") and name != "cursor"}
    return f"{path}?{urlencode({**kept, 'cursor': str(items[-1].id)})}"


def list_page(cursor: int | None, created: DateRange | None = None, **filters: object) -> Page:
    """A page of a list: newest first, after `cursor`, within the range, with the filters that are set."""
    return Page(
        limit=LIST_LIMIT,
        cursor=cursor,
        created_from=created.created_from if created else None,
        created_to=created.created_to if created else None,
        filters={name: value for name, value in filters.items() if value is not None},
    )


async def offer_names(services: Services, scope: Scope) -> dict[int, str]:
    """The names of every offer the viewer may see, by id."""
    names: dict[int, str] = {}
    cursor: int | None = None
    while True:
        found = await services.catalog.offers_seen_by(scope, Page(limit=_ALL, cursor=cursor))
        names.update((offer.id, offer.name) for offer in found)
        if len(found) < _ALL:
            return names
        cursor = found[-1].id


# performance


@dataclass(slots=True)
class Totals:
    """Counts and the viewer's side's money of a set of report rows; money per currency."""

    clicks: int = 0
    gross_clicks: int = 0
    conversions: int = 0
    events: int = 0
    pending: int = 0
    rejected: int = 0
    money: dict[str, Decimal] = field(default_factory=dict)
    pending_money: dict[str, Decimal] = field(default_factory=dict)

    def add(self, row: Any, money_field: MoneyField) -> None:
        currency = currency_of(row)
        self.clicks += row.clicks
        self.gross_clicks += row.gross_clicks
        self.conversions += row.conversions
        self.events += row.events
        self.pending += row.pending
        self.rejected += row.rejected
        self.money[currency] = self.money.get(currency, Decimal(0)) + Decimal(getattr(row, money_field))
        pending = Decimal(getattr(row, f"pending_{money_field}"))
        self.pending_money[currency] = self.pending_money.get(currency, Decimal(0)) + pending

    @property
    def currencies(self) -> list[str]:
        return sorted(self.money) or [REPORT_CURRENCY]

    def amount(self, currency: str) -> Decimal:
        return self.money.get(currency, Decimal(0))

    def pending_amount(self, currency: str) -> Decimal:
        return self.pending_money.get(currency, Decimal(0))

    def per_click(self, currency: str) -> Decimal | None:
        """The money per billable click (a partner's EPC); None without billable clicks."""
        return (self.amount(currency) / self.clicks).quantize(Decimal("0.0001")) if self.clicks else None

    @property
    def cvr(self) -> Decimal | None:
        """Conversions per 100 billable clicks."""
        return (Decimal(self.conversions) * 100 / self.clicks).quantize(Decimal("0.01")) if self.clicks else None


def currency_of(row: Any) -> str:
    """The currency of a report row's money (a report that does not say is in its one currency)."""
    value = getattr(row, "currency", None)
    return value if isinstance(value, str) and value else REPORT_CURRENCY


def totals_of(rows: Iterable[Any], money_field: MoneyField) -> Totals:
    totals = Totals()
    for row in rows:
        totals.add(row, money_field)
    return totals


@dataclass(frozen=True, slots=True)
class Kpi:
    """One tile: a count or an amount of money, and its change against the previous range (in percent)."""

    label: str
    value: int | Decimal | None
    currency: str | None = None
    change: Decimal | None = None

    @property
    def trend(self) -> str:
        if self.change is None or self.change == 0:
            return ""
        return "up" if self.change > 0 else "down"


def change(now: int | Decimal | None, before: int | Decimal | None) -> Decimal | None:
    """The change from `before` to `now` in percent; None when there was nothing before."""
    if now is None or before is None or before == 0:
        return None
    return ((Decimal(now) - Decimal(before)) * 100 / Decimal(before)).quantize(Decimal("0.1"))


async def report_rows(
    services: Services, scope: Scope, group_by: tuple[str, ...], created: DateRange, offer_id: int | None = None
) -> list[Any]:
    """The viewer's report rows over the range, days bucketed in its zone (its role's view: only its side's
    money)."""
    query = ReportQuery(group_by=group_by, created_from=created.created_from, created_to=created.created_to,
                        offer_id=offer_id, zone=created.zone)  # fmt: skip
    view = await services.reports.run(scope, query)
    return list(view.rows)


def day_chart(rows: Iterable[Any], created: DateRange, money_field: MoneyField, money_label: str) -> dict[str, Any]:
    """The chart of clicks, conversions and the viewer's money per day (every day of the range, empty ones 0)."""
    days = [d.isoformat() for d in created.days()]
    index = {day: n for n, day in enumerate(days)}
    clicks, conversions = [0] * len(days), [0] * len(days)
    money: dict[str, list[Decimal]] = {}
    for row in rows:
        at = index.get(str(row.day)[:10])
        if at is None:
            continue
        clicks[at] += row.clicks
        conversions[at] += row.conversions
        values = money.setdefault(currency_of(row), [Decimal(0)] * len(days))
        values[at] += Decimal(getattr(row, money_field))
    series: list[dict[str, Any]] = [
        {"name": "Clicks", "values": clicks, "axis": "count"},
        {"name": "Conversions", "values": conversions, "axis": "count"},
    ]
    for currency in sorted(money) or [REPORT_CURRENCY]:
        values = money.get(currency, [Decimal(0)] * len(days))
        series.append({"name": f"{money_label} ({currency})", "values": [str(v) for v in values], "axis": "money"})
    return {"labels": days, "series": series}


async def performance(
    services: Services, scope: Scope, created: DateRange, money_field: MoneyField
) -> tuple[Totals, Totals, list[Any]]:
    """The totals of the range, those of the range before it, and the range's rows per day."""
    rows = await report_rows(services, scope, ("day",), created)
    before = await report_rows(services, scope, ("day",), created.before())
    return totals_of(rows, money_field), totals_of(before, money_field), rows


@dataclass(frozen=True, slots=True)
class StatsAsked:
    """What a portal's stats page was asked for, as its query gave it (read by `stats_context`)."""

    group_by: str | None
    from_: str | None
    to: str | None
    offer_id: str | None


async def stats_context(
    services: Services,
    scope: Scope,
    zone: tzinfo,
    asked: StatsAsked,
    groups: Mapping[str, str],
    money: tuple[MoneyField, str],
    label: Callable[[str, object, dict[int, str]], str],
) -> dict[str, Any]:
    """The context of a portal's stats page over local days of `zone` (`groups`: the groupings offered, by
    their labels): the rows of the chosen grouping with their labels (`label`), totals and a day chart of the
    role's money (`money`: its field and its label)."""
    money_field, money_label = money
    grouping = choice(asked.group_by, groups, "group_by") or "day"
    created = date_range(asked.from_, asked.to, zone)
    only = optional_id(asked.offer_id, "offer_id")
    rows = await report_rows(services, scope, (grouping,), created, only)
    names = await offer_names(services, scope)
    return {
        "rows": [(label(grouping, getattr(row, grouping), names), row, currency_of(row)) for row in rows],
        "totals": totals_of(rows, money_field),
        "groups": groups,
        "grouping": grouping,
        "created": created,
        "offer_id": only,
        "offer_names": names,
        "chart": day_chart(rows, created, money_field, money_label) if grouping == "day" else None,
    }
