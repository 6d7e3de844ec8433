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

from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
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
    or_,
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
from tracklane.storage.rollups import DAY, SHAPE_OF_DIMENSION, Span, cover
from tracklane.storage.schema import click_rollups, clicks, conversion_rollups, conversions, offers
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

    def report(self, query: ReportQuery, from_rollups: bool = True) -> list[ReportLine]:
        """The report's lines: from the rollup cells where they can answer it and the raw rows elsewhere."""
        planned = self._plan(query) if from_rollups else None
        if planned is None:
            offsets = self._offsets(query) if query.times else None
            selects = [self._click_query(query, offsets), self._conversion_query(query, offsets)]
        else:
            offsets, spans, shape = planned
            cells = [span for span in spans if span[0]]
            selects = [self._click_cells(query, offsets, cells, shape),
                       self._conversion_cells(query, offsets, cells, shape)]  # fmt: skip
            if raw := [(start, end) for grain, start, end in spans if not grain]:
                selects += [self._click_query(query, offsets, raw), self._conversion_query(query, offsets, raw)]
        merged: dict[tuple[Any, ...], dict[str, Any]] = {}
        times = frozenset(query.times) if offsets is not None else frozenset()
        for select_ in selects:
            for row in self.conn.execute(select_):
                mapping = dict(row._mapping)
                group = _group(mapping, query.group_by, times, offsets)
                key = (*group.values(), mapping["currency"])
                if (line := merged.get(key)) is None:
                    merged[key] = {"group": group, **mapping}
                else:
                    for name in _METRICS:
                        if name in mapping:
                            line[name] = (line.get(name) or 0) + (mapping[name] or 0)
        return ordered((_line(row) for row in merged.values()), query.group_by)

    # --- the rollup cells

    def _plan(self, query: ReportQuery) -> tuple[ZoneOffsets | None, list[Span], str] | None:
        """The zone's offsets, what makes up the report's range (cells and raw rows) and the cells' shape;
        None when no cell can answer it."""
        if query.date_basis != "conversion":
            return None
        asked = {d for d in (*query.group_by, *query.filters) if d in CLICK_COLUMNS}
        shapes = {SHAPE_OF_DIMENSION.get(d) for d in asked}
        if None in shapes or len(shapes) > 1:
            return None
        shape = str(shapes.pop()) if shapes else ""
        if (span := self._cell_span(query)) is None:
            return None
        start, end = span
        offsets = None
        if query.times:
            offsets = ZoneOffsets(UTC, ((None, 0),)) if query.zone is UTC else ZoneOffsets.over(query.zone, start, end)
        spans = cover(start, end, shape, query.times, offsets)
        return (offsets, spans, shape) if any(grain for grain, _, _ in spans) else None

    def _cell_span(self, query: ReportQuery) -> tuple[datetime, datetime] | None:
        """The report's range within the days that have cells; None when it holds none."""
        found: list[datetime] = []
        for table in (click_rollups, conversion_rollups):
            first_last = select(func.min(table.c.bucket), func.max(table.c.bucket)).where(
                table.c.shape == "", table.c.grain == DAY
            )
            found += [moment for moment in self.conn.execute(first_last).one() if moment is not None]
        if not found:
            return None
        start, end = min(found), max(found) + timedelta(days=1)
        if query.created_from is not None:
            start = max(start, query.created_from)
        if query.created_to is not None:
            end = min(end, query.created_to)
        return (start, end) if start < end else None

    def _click_cells(
        self, query: ReportQuery, offsets: ZoneOffsets | None, cells: list[Span], shape: str
    ) -> Select[Any]:
        r = click_rollups.c
        currency = func.coalesce(offers.c.currency, REPORT_CURRENCY)
        grouped = {
            **_cell_owners(r, query), **{d: func.nullif(r.value, "") for d in query.group_by if d in CLICK_COLUMNS},
            **self._times(query, r.bucket, offsets), "currency": currency,
        }  # fmt: skip
        empty = [null().label(d) for d in query.group_by if d in CONVERSION_COLUMNS]
        sums = [func.sum(r[m]).label(m) for m in ("gross_clicks", "unique_clicks", "clicks", "bot_clicks",
                                                 "rejected_clicks")]  # fmt: skip
        select_: Select[Any] = (
            select(*(column.label(name) for name, column in grouped.items()), *empty, *sums,
                   func.sum(r.revenue).label("click_revenue"), func.sum(r.payout).label("click_payout"))
            .select_from(click_rollups.outerjoin(offers, offers.c.id == r.offer_id))
            .group_by(*grouped.values())
        )  # fmt: skip
        select_ = _in_cells(select_, r, query, cells, shape)
        if "currency" in query.filters:
            select_ = select_.where(currency == query.filters["currency"])
        return select_

    def _conversion_cells(
        self, query: ReportQuery, offsets: ZoneOffsets | None, cells: list[Span], shape: str
    ) -> Select[Any]:
        r = conversion_rollups.c
        approved, pending, counted = r.status == "approved", r.status == "pending", r.status != "rejected"
        conversion_dimensions = {"event": func.nullif(r.event_name, ""), "status": r.status, "origin": r.origin}
        grouped = {
            **_cell_owners(r, query), **{d: func.nullif(r.value, "") for d in query.group_by if d in CLICK_COLUMNS},
            **{d: conversion_dimensions[d] for d in query.group_by if d in CONVERSION_COLUMNS},
            **self._times(query, r.bucket, offsets), "currency": r.currency,
        }  # fmt: skip

        def where(condition: ColumnElement[bool], column: ColumnElement[Any]) -> ColumnElement[Any]:
            return func.sum(case((condition, column), else_=0), type_=BigInteger)

        select_: Select[Any] = (
            select(
                *(column.label(name) for name, column in grouped.items()),
                where(and_(r.is_event.is_(False), counted), r.conversions).label("conversions"),
                where(and_(r.is_event.is_(True), counted), r.conversions).label("events"),
                where(counted, r.with_amount).label("orders"),
                where(pending, r.conversions).label("pending"),
                where(r.status == "rejected", r.conversions).label("rejected"),
                where(approved, r.revenue).label("conversion_revenue"),
                where(approved, r.payout).label("conversion_payout"),
                where(pending, r.revenue).label("pending_revenue"),
                where(pending, r.payout).label("pending_payout"),
                where(counted, r.amount).label("sale_amount"),
            )
            .select_from(conversion_rollups)
            .group_by(*grouped.values())
            .having(func.sum(r.conversions) != 0)  # a group whose conversions all moved to other statuses
        )
        select_ = _in_cells(select_, r, query, cells, shape)
        for name, column in conversion_dimensions.items():
            if name in query.filters:
                select_ = select_.where(column == query.filters[name])
        if "currency" in query.filters:
            select_ = select_.where(r.currency == query.filters["currency"])
        return select_

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

    def _click_query(
        self, query: ReportQuery, offsets: ZoneOffsets | None, within: list[tuple[datetime, datetime]] | None = None
    ) -> Select[Any]:
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
                func.sum(_flag(c.is_unique.is_(True))).label("unique_clicks"),
                func.sum(_flag(billable)).label("clicks"),
                func.sum(_flag(c.is_bot.is_(True))).label("bot_clicks"),
                func.sum(_flag(c.verdict == "rejected")).label("rejected_clicks"),
                _units(c.revenue).label("click_revenue"),
                _units(c.payout).label("click_payout"),
            )
            .select_from(clicks.outerjoin(offers, offers.c.id == c.offer_id))
            .group_by(*grouped.values())
        )  # fmt: skip
        select_ = _restrict(select_, clicks.c, c.created_at, query, within)
        if "currency" in query.filters:
            select_ = select_.where(currency == query.filters["currency"])
        return select_

    def _conversion_query(
        self, query: ReportQuery, offsets: ZoneOffsets | None, within: list[tuple[datetime, datetime]] | None = None
    ) -> Select[Any]:
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
        select_ = _restrict(select_, c, basis, query, within)
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


def _cell_owners(columns: Any, query: ReportQuery) -> dict[str, ColumnElement[Any]]:
    """The offer, partner and advertiser a cell counts (0: no advertiser)."""
    owners = {
        "offer": columns.offer_id,
        "partner": columns.partner_id,
        "advertiser": func.nullif(columns.advertiser_id, 0),
    }
    return {d: owners[d] for d in query.group_by if d in owners}


def _in_cells(select_: Select[Any], columns: Any, query: ReportQuery, cells: list[Span], shape: str) -> Select[Any]:
    """Only the cells of the report's shape and range, its id filters and its click filter (on the shape)."""
    ranges = [
        and_(columns.grain == grain, columns.bucket >= first, columns.bucket < end) for grain, first, end in cells
    ]
    select_ = _owned(select_.where(columns.shape == shape, or_(*ranges)), columns, query)
    for name, value in query.filters.items():
        if name in CLICK_COLUMNS:
            select_ = select_.where(columns.value == value)
    return select_


def _owned(select_: Select[Any], columns: Any, query: ReportQuery) -> Select[Any]:
    """The id filters, on the table's own offer, partner and advertiser ids."""
    ids = {"offer_id": query.offer_id, "partner_id": query.partner_id, "advertiser_id": query.advertiser_id}
    for column, id_ in ids.items():
        if id_ is not None:
            select_ = select_.where(columns[column] == id_)
    return select_


def _restrict(
    select_: Select[Any],
    columns: Any,
    time: ColumnElement[Any],
    query: ReportQuery,
    within: list[tuple[datetime, datetime]] | None = None,
) -> Select[Any]:
    """The time range (on the report's date basis; or only the spans `within` it), the id filters (on the
    table's own ids) and the click filters."""
    if within is not None:
        select_ = select_.where(or_(*(and_(time >= start, time < end) for start, end in within)))
    if query.created_from is not None:
        select_ = select_.where(time >= query.created_from)
    if query.created_to is not None:
        select_ = select_.where(time < query.created_to)
    select_ = _owned(select_, columns, query)
    for name, value in query.filters.items():
        if name in CLICK_COLUMNS:
            select_ = select_.where(clicks.c[CLICK_COLUMNS[name]] == value)
    return select_


def _group(
    mapping: dict[str, Any], group_by: Sequence[str], times: frozenset[str], offsets: ZoneOffsets | None
) -> dict[str, Any]:
    """A row's dimension values by name, each time bucket by its key."""
    group = {}
    for dimension in group_by:
        value = mapping.get(dimension)
        if dimension in times and value is not None:
            assert offsets is not None
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


_METRICS = (*_COUNTS, *_MONEY)


def _line(row: dict[str, Any]) -> ReportLine:
    """Absent metrics are zero; the money is approved conversions plus CPC clicks (added up as stored units)."""
    get = row.get
    return ReportLine(
        row["group"], row["currency"],
        **{name: int(get(name) or 0) for name in _COUNTS},
        revenue=_money(int(get("click_revenue") or 0) + int(get("conversion_revenue") or 0)),
        payout=_money(int(get("click_payout") or 0) + int(get("conversion_payout") or 0)),
        pending_revenue=_money(int(get("pending_revenue") or 0)),
        pending_payout=_money(int(get("pending_payout") or 0)),
        sale_amount=_money(int(get("sale_amount") or 0)),
    )  # fmt: skip


_ZERO = from_units(0)


def _money(units: int) -> Decimal:
    return from_units(units) if units else _ZERO
