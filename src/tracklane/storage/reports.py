"""SQL for the performance report: clicks and conversions grouped by the asked dimensions and by currency, then
merged into one `ReportLine` per group and currency.

Everything is counted in SQL, distinct IP addresses included. A time bucket is grouped by its label (the local
wall time it starts at, as `bucket_label` writes it), computed in SQL from the zone's offsets over the span of
the data (`ZoneOffsets`: one offset, or a CASE over the instants it changes at), so the same labels come out
of SQLite and PostgreSQL and zones 30 or 45 minutes off the hour are exact; an hour is grouped by its offset
too (a local hour that clocks going back repeat is two buckets). Each label then becomes its key (the local
start with its offset), one per group.

A click's currency is its offer's (`REPORT_CURRENCY` when the offer does not exist), a conversion's its own.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Case,
    ColumnElement,
    Connection,
    DateTime,
    Integer,
    Interval,
    Select,
    String,
    and_,
    case,
    func,
    literal,
    literal_column,
    null,
    select,
    type_coerce,
)

from tracklane.resources.reports import (
    CLICK_DIMENSIONS,
    REPORT_CURRENCY,
    ReportLine,
    ReportQuery,
    ZoneOffsets,
    ordered,
)
from tracklane.storage.schema import clicks, conversions, offers
from tracklane.storage.types import from_units

OWN_COLUMNS = {"offer": "offer_id", "partner": "partner_id", "advertiser": "advertiser_id"}
#: The click column of each click dimension (`device` and its earlier name `device_type` are the same).
CLICK_COLUMNS = {**{d: d for d in CLICK_DIMENSIONS}, "device": "device_type"}
CONVERSION_COLUMNS = {"event": "event_name", "status": "status", "origin": "origin"}
_OFFSET = "hour_offset"  # the column holding an hour bucket's offset, where the zone's offset changes
_SQLITE_FORMATS = {"hour": "%Y-%m-%dT%H:00", "day": "%Y-%m-%d", "date": "%Y-%m-%d", "week": "%Y-%m-%d",
                   "month": "%Y-%m-01"}  # fmt: skip
_POSTGRES_FORMATS = {"hour": 'YYYY-MM-DD"T"HH24:00', "day": "YYYY-MM-DD", "date": "YYYY-MM-DD",
                     "week": "YYYY-MM-DD", "month": "YYYY-MM-DD"}  # fmt: skip


class SqlReports:
    conn: Connection

    def report(self, query: ReportQuery) -> list[ReportLine]:
        offsets = self._offsets(query) if query.times else None
        merged: dict[tuple[Any, ...], dict[str, Any]] = {}
        for select_ in (self._click_query(query, offsets), self._conversion_query(query, offsets)):
            for row in self.conn.execute(select_):
                mapping = dict(row._mapping)
                group = _group(mapping, query, offsets)
                key = (*group.values(), mapping["currency"])
                merged.setdefault(key, {"group": group}).update(mapping)
        return ordered((_line(row) for row in merged.values()), query.group_by)

    # --- time buckets

    def _offsets(self, query: ReportQuery) -> ZoneOffsets:
        """The zone's offsets over the span of the data the report counts."""
        if query.zone is UTC:
            return ZoneOffsets(UTC, ((None, 0),))
        columns = [clicks.c.created_at] + ([conversions.c.created_at] if query.date_basis == "conversion" else [])
        found: list[datetime] = []
        for column in columns:
            span = select(func.min(column), func.max(column))
            if query.created_from is not None:
                span = span.where(column >= query.created_from)
            if query.created_to is not None:
                span = span.where(column < query.created_to)
            found += [moment for moment in self.conn.execute(span).one() if moment is not None]
        start = min(found, default=query.created_from or datetime.now(UTC))
        return ZoneOffsets.over(query.zone, start, max(found, default=start))

    def _label(self, dimension: str, column: ColumnElement[Any], offsets: ZoneOffsets) -> ColumnElement[Any]:
        """A time bucket's label (`bucket_label`) of each row, from its time in UTC and the zone's offset."""
        if self.conn.dialect.name == "postgresql":
            shift = _by_offset(column, offsets, lambda s: literal_column(f"interval '{s} seconds'", Interval))
            wall = type_coerce(column, DateTime()) + shift
            if dimension in ("week", "month"):
                wall = func.date_trunc(dimension, wall)
            return func.to_char(wall, _POSTGRES_FORMATS[dimension])
        # SQLite reads a time to the millisecond, rounded: whole seconds, so that no time rounds into the next bucket
        seconds = func.substr(type_coerce(column, String()), 1, 19)
        modifier = _by_offset(column, offsets, lambda s: literal(f"{s:+d} seconds", String))
        steps = ("-6 days", "weekday 1") if dimension == "week" else ()
        return func.strftime(_SQLITE_FORMATS[dimension], seconds, modifier, *steps)

    def _times(
        self, query: ReportQuery, column: ColumnElement[Any], offsets: ZoneOffsets | None
    ) -> dict[str, ColumnElement[Any]]:
        """The labels of the asked time buckets, and an hour's offset where the zone's offset changes."""
        if offsets is None:
            return {}
        times = {d: self._label(d, column, offsets) for d in query.times}
        if "hour" in times and offsets.fixed is None:
            times[_OFFSET] = _by_offset(column, offsets, lambda s: literal(s, Integer))
        return times

    # --- the two queries

    def _click_query(self, query: ReportQuery, offsets: ZoneOffsets | None) -> Select[Any]:
        c = clicks.c
        billable = and_(c.verdict == "accepted", c.is_bot.is_(False))
        currency = func.coalesce(offers.c.currency, REPORT_CURRENCY)
        grouped = {
            **{d: c[OWN_COLUMNS[d]] for d in query.group_by if d in OWN_COLUMNS},
            **{d: c[CLICK_COLUMNS[d]] for d in query.group_by if d in CLICK_COLUMNS},
            **self._times(query, c.created_at, offsets),
            "currency": currency,
        }
        # a click has no event, status or origin: it is counted under none of them
        empty = [null().label(d) for d in query.group_by if d in CONVERSION_COLUMNS]
        select_: Select[Any] = (
            select(
                *(column.label(name) for name, column in grouped.items()), *empty,
                func.count().label("gross_clicks"),
                func.count(c.ip.distinct()).label("unique_clicks"),
                func.sum(_flag(billable)).label("clicks"),
                func.sum(_flag(c.is_bot.is_(True))).label("bot_clicks"),
                func.sum(_flag(c.verdict == "rejected")).label("rejected_clicks"),
                _units(c.revenue).label("click_revenue"),
                _units(c.payout).label("click_payout"),
            )
            .select_from(clicks.outerjoin(offers, offers.c.id == c.offer_id))
            .group_by(*grouped.values())
        )  # fmt: skip
        select_ = _restrict(select_, clicks.c, c.created_at, query)
        if "currency" in query.filters:
            select_ = select_.where(currency == query.filters["currency"])
        return select_

    def _conversion_query(self, query: ReportQuery, offsets: ZoneOffsets | None) -> Select[Any]:
        c = conversions.c
        base, approved, pending, counted = c.event_id.is_(None), c.status == "approved", c.status == "pending", \
            c.status != "rejected"  # fmt: skip
        basis = clicks.c.created_at if query.date_basis == "click" else c.created_at
        grouped = {
            **{d: c[OWN_COLUMNS[d]] for d in query.group_by if d in OWN_COLUMNS},
            **{d: clicks.c[CLICK_COLUMNS[d]] for d in query.group_by if d in CLICK_COLUMNS},
            **{d: c[CONVERSION_COLUMNS[d]] for d in query.group_by if d in CONVERSION_COLUMNS},
            **self._times(query, basis, offsets),
            "currency": c.currency,
        }
        select_: Select[Any] = (
            select(
                *(column.label(name) for name, column in grouped.items()),
                func.sum(_flag(and_(base, counted))).label("conversions"),
                func.sum(_flag(and_(c.event_id.is_not(None), counted))).label("events"),
                func.sum(_flag(and_(c.amount.is_not(None), counted))).label("orders"),
                func.sum(_flag(pending)).label("pending"),
                func.sum(_flag(c.status == "rejected")).label("rejected"),
                _units(case((approved, c.revenue), else_=0)).label("conversion_revenue"),
                _units(case((approved, c.payout), else_=0)).label("conversion_payout"),
                _units(case((pending, c.revenue), else_=0)).label("pending_revenue"),
                _units(case((pending, c.payout), else_=0)).label("pending_payout"),
                _units(case((counted, c.amount), else_=0)).label("sale_amount"),
            )
            .select_from(conversions.join(clicks, clicks.c.id == c.click_id))
            .group_by(*grouped.values())
        )
        select_ = _restrict(select_, c, basis, query)
        for name, column in CONVERSION_COLUMNS.items():
            if name in query.filters:
                select_ = select_.where(c[column] == query.filters[name])
        if "currency" in query.filters:
            select_ = select_.where(c.currency == query.filters["currency"])
        return select_


def _by_offset(
    column: ColumnElement[Any], offsets: ZoneOffsets, value: Callable[[int], ColumnElement[Any]]
) -> ColumnElement[Any]:
    """`value(offset)` of the zone's offset at each row's time: one value, or a CASE over the changes."""
    if offsets.fixed is not None:
        return value(offsets.fixed)
    changes = offsets.changes
    whens = [(column < since.replace(tzinfo=UTC), value(changes[index][1]))
             for index, (since, _) in enumerate(changes[1:]) if since is not None]  # fmt: skip
    return case(*whens, else_=value(changes[-1][1]))


def _restrict(select_: Select[Any], columns: Any, time: ColumnElement[Any], query: ReportQuery) -> Select[Any]:
    """The time range (on the report's date basis), the id filters (on the table's own ids) and the click filters."""
    if query.created_from is not None:
        select_ = select_.where(time >= query.created_from)
    if query.created_to is not None:
        select_ = select_.where(time < query.created_to)
    ids = {"offer_id": query.offer_id, "partner_id": query.partner_id, "advertiser_id": query.advertiser_id}
    for column, id_ in ids.items():
        if id_ is not None:
            select_ = select_.where(columns[column] == id_)
    for name, value in query.filters.items():
        if name in CLICK_COLUMNS:
            select_ = select_.where(clicks.c[CLICK_COLUMNS[name]] == value)
    return select_


def _group(mapping: dict[str, Any], query: ReportQuery, offsets: ZoneOffsets | None) -> dict[str, Any]:
    """A row's dimension values by name, each time bucket by its key."""
    group = {}
    for dimension in query.group_by:
        value = mapping.get(dimension)
        if offsets is not None and dimension in query.times and value is not None:
            value = offsets.key(dimension, value, mapping.get(_OFFSET))
        group[dimension] = value
    return group


def _units(expression: ColumnElement[Any]) -> ColumnElement[Any]:
    """Sum money as raw integer units (not through the Money type), converted once in `_line`."""
    return func.sum(type_coerce(expression, BigInteger), type_=BigInteger)


def _flag(condition: ColumnElement[bool]) -> Case[int]:
    return case((condition, 1), else_=0)


_COUNTS = ("gross_clicks", "unique_clicks", "clicks", "bot_clicks", "rejected_clicks", "conversions", "events",
           "orders", "pending", "rejected")  # fmt: skip
_MONEY = (
    "click_revenue",
    "click_payout",
    "conversion_revenue",
    "conversion_payout",
    "pending_revenue",
    "pending_payout",
    "sale_amount",
)


def _line(row: dict[str, Any]) -> ReportLine:
    """Absent metrics are zero; the money is approved conversions plus CPC clicks."""
    counts = {name: int(row.get(name) or 0) for name in _COUNTS}
    money = {name: from_units(row.get(name) or 0) for name in _MONEY}
    return ReportLine(
        group=row["group"], currency=row["currency"], **counts,
        revenue=money["click_revenue"] + money["conversion_revenue"],
        payout=money["click_payout"] + money["conversion_payout"],
        pending_revenue=money["pending_revenue"], pending_payout=money["pending_payout"],
        sale_amount=money["sale_amount"],
    )  # fmt: skip
