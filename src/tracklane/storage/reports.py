"""SQL for the performance report: clicks and conversions grouped by the asked dimensions and by currency into
one `ReportLine` per group and currency, with the totals of each currency, in one statement.

The clicks' and the conversions' counts (from the rollup cells, and the raw rows where no cell answers) are
parts of one `UNION ALL`, grouped again into the lines; the totals are summed from those lines, and the
database orders them all: the whole report is counted, merged and ordered in SQL, and the rows arrive as
the lines are (money in storage units, never through `Decimal`).

Everything is counted in SQL, distinct IP addresses included. A time bucket is grouped by its label (the local
wall time it starts at, as `bucket_label` writes it), computed in SQL from the zone's offsets over the span of
the data (`ZoneOffsets`: one offset, or a CASE over the instants it changes at), so the same labels come out
of SQLite and PostgreSQL and zones 30 or 45 minutes off the hour are exact; an hour is grouped by its offset
too (a local hour that clocks going back repeat is two buckets). Each label then becomes its key (the local
start with its offset), one per group.

A click's currency is its offer's (`REPORT_CURRENCY` when the offer does not exist), a conversion's its own.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import (
    BigInteger,
    Case,
    ColumnElement,
    Connection,
    DateTime,
    Integer,
    Interval,
    ScalarSelect,
    Select,
    String,
    Subquery,
    Table,
    and_,
    case,
    cast,
    func,
    literal,
    literal_column,
    null,
    or_,
    select,
    type_coerce,
    union_all,
)

from tracklane.resources.reports import (
    CLICK_DIMENSIONS,
    LINE_METRICS,
    REPORT_CURRENCY,
    TIME_DIMENSIONS,
    ReportLine,
    ReportQuery,
    ZoneOffsets,
    collector_paused,
    summed_totals,
)
from tracklane.services.ports import EVERY_HOUR
from tracklane.storage.rollups import DAY, NO_SHIFT, SHAPE_OF_DIMENSION, Piece, Span, cover_by_difference
from tracklane.storage.schema import (
    click_rollups,
    clicks,
    conversion_rollups,
    conversions,
    offers,
    report_versions,
)

OWN_COLUMNS = {"offer": "offer_id", "partner": "partner_id", "advertiser": "advertiser_id"}
#: The click column of each click dimension (`device` and its earlier name `device_type` are the same).
CLICK_COLUMNS = {**{d: d for d in CLICK_DIMENSIONS}, "device": "device_type"}
CONVERSION_COLUMNS = {"event": "event_name", "status": "status", "origin": "origin"}
_OFFSET = "hour_offset"  # the column holding an hour bucket's offset, where the zone's offset changes
_CLICK_CELL_METRICS = ("gross_clicks", "unique_clicks", "clicks", "bot_clicks", "rejected_clicks", "revenue", "payout")
_SQLITE_FORMATS = {"hour": "%Y-%m-%dT%H:00", "day": "%Y-%m-%d", "date": "%Y-%m-%d", "week": "%Y-%m-%d",
                   "month": "%Y-%m-01"}  # fmt: skip
_POSTGRES_FORMATS = {"hour": 'YYYY-MM-DD"T"HH24:00', "day": "YYYY-MM-DD", "date": "YYYY-MM-DD",
                     "week": "YYYY-MM-DD", "month": "YYYY-MM-DD"}  # fmt: skip


def _day_cells_bound(table: Table, bound: Callable[[Any], Any]) -> ScalarSelect[Any]:
    return select(bound(table.c.bucket)).where(table.c.shape == "", table.c.grain == DAY).scalar_subquery()


# Each bound its own subquery: a min or a max alone is read off the primary key's end (both in one select
# made SQLite visit every day cell: about 20 ms at 3 million clicks, on every report).
_FIRST_AND_LAST_DAYS = select(
    *(_day_cells_bound(table, bound) for table in (click_rollups, conversion_rollups) for bound in (func.min, func.max))
)


class SqlReports:
    conn: Connection

    def report(self, query: ReportQuery, from_rollups: bool = True) -> list[ReportLine]:
        """The report's lines: from the rollup cells where they can answer it and the raw rows elsewhere."""
        return self._counted(query, from_rollups, with_totals=False)[0]

    def report_with_totals(self, query: ReportQuery) -> tuple[list[ReportLine], list[ReportLine]]:
        """The report's lines and its totals (a line per currency), counted in one statement."""
        return self._counted(query, True, with_totals=bool(query.group_by))

    def report_versions(self, first: datetime, last: datetime) -> dict[datetime, int]:
        """The version of each UTC hour from `first` to `last` (their starts, aware) that has one, and that of
        every hour (`EVERY_HOUR`)."""
        v = report_versions.c
        found = select(v.bucket, v.version).where(
            or_(v.bucket == EVERY_HOUR, and_(v.bucket >= first, v.bucket <= last))
        )
        return {row.bucket: row.version for row in self.conn.execute(found)}

    def _counted(
        self, query: ReportQuery, from_rollups: bool, with_totals: bool
    ) -> tuple[list[ReportLine], list[ReportLine]]:
        planned = self._plan(query) if from_rollups else None
        if planned is None:
            offsets = self._offsets(query) if query.times else None
            parts = [self._click_query(query, offsets), self._conversion_query(query, offsets)]
        else:
            offsets, pieces, shape = planned
            parts = []
            for (sign, shift), cells in _by_sign_and_shift(pieces).items():
                span_by_span = self.conn.dialect.name == "sqlite"
                part = _Counted(offsets, cells, shape, sign, shift, span_by_span)
                parts += [self._click_cells(query, part), self._conversion_cells(query, part)]
            if raw := [(start, end) for grain, start, end, _, _ in pieces if not grain]:
                parts += [self._click_query(query, offsets, raw), self._conversion_query(query, offsets, raw)]
        layout = _Layout(query, offsets)
        group, first = layout.group, layout.first_metric
        if self.conn.dialect.name == "postgresql":  # the report's sort in memory, not in temporary files
            self.conn.exec_driver_sql(f"SET LOCAL work_mem = '{_REPORT_WORK_MEM}'")
        result = self.conn.execute(layout.statement(parts, self.conn.dialect.name))
        # Tens of thousands of rows and lines are made at once, none of them garbage: the collector's passes
        # over them would cost a quarter of the read (measured at 10 M clicks).
        with collector_paused():
            try:  # the driver's plain tuples: every column is an int or a text, with nothing to convert
                rows = result.cursor.fetchall()
            finally:
                result.close()
            lines = [ReportLine(group(row), *row[first:]) for row in rows]
        return lines, (summed_totals([lines]) if with_totals else lines)  # the lines part the report

    # --- the rollup cells

    def _plan(self, query: ReportQuery) -> tuple[ZoneOffsets | None, list[Piece], str] | None:
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
        pieces = cover_by_difference(start, end, shape, query.times, offsets)
        return (offsets, pieces, shape) if any(grain for grain, *_ in pieces) else None

    def _cell_span(self, query: ReportQuery) -> tuple[datetime, datetime] | None:
        """The report's range within the days that have cells; None when it holds none."""
        found = [moment for moment in self.conn.execute(_FIRST_AND_LAST_DAYS).one() if moment is not None]
        if not found:
            return None
        start, end = min(found), max(found) + timedelta(days=1)
        if query.created_from is not None:
            start = max(start, query.created_from)
        if query.created_to is not None:
            end = min(end, query.created_to)
        return (start, end) if start < end else None

    def _click_cells(self, query: ReportQuery, part: _Counted) -> Select[Any]:
        r = click_rollups.c
        sums = _report_cells(click_rollups, query, part, ["offer_id"], {m: r[m] for m in _CLICK_CELL_METRICS})
        c = sums.c
        currency = func.coalesce(offers.c.currency, REPORT_CURRENCY)  # looked up once per group, not per cell
        select_: Select[Any] = select(
            *_columns(query, self._cell_groups(query, c, part, currency), {m: c[m] for m in _CLICK_CELL_METRICS})
        ).select_from(sums.outerjoin(offers, offers.c.id == c.offer_id))
        if "currency" in query.filters:
            select_ = select_.where(currency == query.filters["currency"])
        return select_

    def _conversion_cells(self, query: ReportQuery, part: _Counted) -> Select[Any]:
        r = conversion_rollups.c
        approved, pending, counted = r.status == "approved", r.status == "pending", r.status != "rejected"

        def where(condition: ColumnElement[bool], column: ColumnElement[Any]) -> ColumnElement[Any]:
            return case((condition, column), else_=0)

        metrics = {
            "conversions": where(and_(r.is_event.is_(False), counted), r.conversions),
            "events": where(and_(r.is_event.is_(True), counted), r.conversions),
            "pending": where(pending, r.conversions),
            "rejected": where(r.status == "rejected", r.conversions),
            "orders": where(counted, r.with_amount),
            "revenue": where(approved, r.revenue),
            "payout": where(approved, r.payout),
            "pending_revenue": where(pending, r.revenue),
            "pending_payout": where(pending, r.payout),
            "sale_amount": where(counted, r.amount),
        }
        keys = ["currency", *(CONVERSION_COLUMNS[d] for d in query.group_by if d in CONVERSION_COLUMNS)]
        filters = [_kind(r, name) == value for name, value in query.filters.items() if name in CONVERSION_COLUMNS]
        if "currency" in query.filters:
            filters.append(r.currency == query.filters["currency"])
        sums = _report_cells(conversion_rollups, query, part, keys, metrics, filters)
        c = sums.c
        grouped = self._cell_groups(query, c, part, c.currency)
        grouped |= {d: _kind(c, d) for d in query.group_by if d in CONVERSION_COLUMNS}
        return select(*_columns(query, grouped, {m: c[m] for m in metrics})).select_from(sums)

    def _cell_groups(
        self, query: ReportQuery, summed: Any, part: _Counted, currency: ColumnElement[Any]
    ) -> dict[str, ColumnElement[Any]]:
        """A part's groups, from the columns of its summed cells: owners, the shape's value, time labels (of
        the instant `part.shift` after each cell's start)."""
        value = {d: func.nullif(summed.value, "") for d in query.group_by if d in CLICK_COLUMNS}
        times = self._times(query, summed.bucket, part.offsets, part.shift) if query.times else {}
        return {**_cell_owners(summed, query), **value, **times, "currency": currency}

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

    def _label(
        self, dimension: str, column: ColumnElement[Any], offsets: ZoneOffsets, shift: int = 0
    ) -> ColumnElement[Any]:
        """A time bucket's label (`bucket_label`) of each row, from its time in UTC (`shift` seconds later) and
        the zone's offset."""
        if self.conn.dialect.name == "postgresql":
            moved = _by_offset(column, offsets, lambda s: literal_column(f"interval '{s} seconds'", Interval), shift)
            wall = type_coerce(column, DateTime()) + moved
            if dimension in ("week", "month"):
                wall = func.date_trunc(dimension, wall)
            return func.to_char(wall, _POSTGRES_FORMATS[dimension])
        text = type_coerce(column, String())  # stored as `YYYY-MM-DD HH:MM:SS.ffffff` in UTC
        if offsets.fixed == 0 and not shift and dimension != "week":  # the label is in the text: no arithmetic
            day = func.substr(text, 1, 10)
            if dimension == "hour":
                return day + "T" + func.substr(text, 12, 2) + ":00"
            return func.substr(text, 1, 8) + "01" if dimension == "month" else day
        # SQLite reads a time to the millisecond, rounded: whole seconds, so that no time rounds into the next bucket
        seconds = func.substr(text, 1, 19)
        modifier = _by_offset(column, offsets, lambda s: literal(f"{s:+d} seconds", String), shift)
        steps = ("-6 days", "weekday 1") if dimension == "week" else ()
        return func.strftime(_SQLITE_FORMATS[dimension], seconds, modifier, *steps)

    def _times(
        self, query: ReportQuery, column: ColumnElement[Any], offsets: ZoneOffsets | None, shift: timedelta = NO_SHIFT
    ) -> dict[str, ColumnElement[Any]]:
        """The labels of the asked time buckets (of each row's time `shift` later), and an hour's offset where
        the zone's offset changes (an hour is never asked with a shift)."""
        if offsets is None:
            return {}
        seconds = int(shift.total_seconds())
        times = {d: self._label(d, column, offsets, seconds) for d in query.times}
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
        metrics = {
            "gross_clicks": func.count(),
            "unique_clicks": func.sum(_flag(c.is_unique.is_(True))),
            "clicks": func.sum(_flag(billable)),
            "bot_clicks": func.sum(_flag(c.is_bot.is_(True))),
            "rejected_clicks": func.sum(_flag(c.verdict == "rejected")),
            "revenue": _units(c.revenue),
            "payout": _units(c.payout),
        }
        select_: Select[Any] = (
            select(*_columns(query, grouped, metrics))
            .select_from(clicks.outerjoin(offers, offers.c.id == c.offer_id))
            .group_by(*grouped.values())
        )
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
        metrics = {
            "conversions": func.sum(_flag(and_(base, counted))),
            "events": func.sum(_flag(and_(c.event_id.is_not(None), counted))),
            "pending": func.sum(_flag(pending)),
            "rejected": func.sum(_flag(c.status == "rejected")),
            "orders": func.sum(_flag(and_(c.amount.is_not(None), counted))),
            "revenue": _units(case((approved, c.revenue), else_=0)),
            "payout": _units(case((approved, c.payout), else_=0)),
            "pending_revenue": _units(case((pending, c.revenue), else_=0)),
            "pending_payout": _units(case((pending, c.payout), else_=0)),
            "sale_amount": _units(case((counted, c.amount), else_=0)),
        }
        select_: Select[Any] = (
            select(*_columns(query, grouped, metrics))
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
    column: ColumnElement[Any], offsets: ZoneOffsets, value: Callable[[int], ColumnElement[Any]], shift: int = 0
) -> ColumnElement[Any]:
    """`value(seconds)` of the zone's offset at each row's time `shift` seconds later, plus `shift`: one
    value, or a CASE over the changes (each moved `shift` earlier, so the row's time is compared as it is)."""
    if offsets.fixed is not None:
        return value(offsets.fixed + shift)
    changes, moved = offsets.changes, timedelta(seconds=shift)
    whens = [(column < since.replace(tzinfo=UTC) - moved, value(changes[index][1] + shift))
             for index, (since, _) in enumerate(changes[1:]) if since is not None]  # fmt: skip
    return case(*whens, else_=value(changes[-1][1] + shift))


def _cell_owners(columns: Any, query: ReportQuery) -> dict[str, ColumnElement[Any]]:
    """The offer, partner and advertiser a cell counts, those the report is grouped by (0: no advertiser)."""
    owners = {d: columns[column] for d, column in OWN_COLUMNS.items() if d in query.group_by}
    if "advertiser" in owners:
        owners["advertiser"] = func.nullif(owners["advertiser"], 0)
    return owners


def _kind(columns: Any, dimension: str) -> ColumnElement[Any]:
    """A conversion cell's event (none for a base conversion), status or origin."""
    column = columns[CONVERSION_COLUMNS[dimension]]
    return func.nullif(column, "") if dimension == "event" else column


@dataclass(frozen=True)
class _Counted:
    """Cells of a report counted alike: the zone's offsets, their spans and shape, the sign they are counted
    with and how far after its start each cell is labelled (`rollups.cover_by_difference`). With
    `span_by_span`, several spans are read one by one (`UNION ALL`) rather than as one `OR`: SQLite reads an
    `OR` with a set of the rows read so far, to drop repeats (a third of a New York report's time), and
    PostgreSQL plans the `OR` far better than many parts."""

    offsets: ZoneOffsets | None
    cells: list[Span]
    shape: str
    sign: int = 1
    shift: timedelta = NO_SHIFT
    span_by_span: bool = False


def _by_sign_and_shift(pieces: Sequence[Piece]) -> dict[tuple[int, timedelta], list[Span]]:
    """The pieces of cells by the sign and shift they are counted with (the raw rows left out)."""
    grouped: dict[tuple[int, timedelta], list[Span]] = {}
    for grain, start, end, sign, shift in pieces:
        if grain:
            grouped.setdefault((sign, shift), []).append((grain, start, end))
    return grouped


def _report_cells(
    table: Table,
    query: ReportQuery,
    part: _Counted,
    keys: list[str],
    metrics: Mapping[str, ColumnElement[Any]],
    filters: Sequence[ColumnElement[bool]] = (),
) -> Subquery:
    """The report's cells of `table` with their raw key columns (the time bucket, owners and the shape's value
    the report asks for, then `keys`) and `metrics`; summed per group of those columns first when the report
    has no time bucket. Days of cells then collapse into far fewer rows for the final grouping to sort (a
    30-day report by sub1 on SQLite: half the time). With a time bucket nearly every cell is its own group,
    and summing twice only costs (PostgreSQL's hash aggregation: twice the time)."""
    r = table.c
    columns = ["bucket"] if query.times else []
    columns += [column for name, column in OWN_COLUMNS.items() if name in query.group_by]
    columns += ["value"] if any(d in CLICK_COLUMNS for d in query.group_by) else []
    columns += [key for key in keys if key not in columns]
    summing = not query.times
    signed = {n: m if part.sign > 0 else -m for n, m in metrics.items()}
    values = [(_summed(m) if summing else m).label(n) for n, m in signed.items()]
    selected = select(*(r[name] for name in columns), *values).select_from(table)
    if part.span_by_span and not summing and len(part.cells) > 1:
        spans = [_in_cells(selected, r, query, [span], part.shape).where(*filters) for span in part.cells]
        return union_all(*spans).subquery(f"{table.name}_cells")
    found = _in_cells(selected, r, query, part.cells, part.shape)
    found = found.where(*filters)
    if summing:
        found = found.group_by(*(r[name] for name in columns))
    return found.subquery(f"{table.name}_cells")


def _in_cells(select_: Select[Any], columns: Any, query: ReportQuery, cells: list[Span], shape: str) -> Select[Any]:
    """Only the cells of the report's shape and range, its id filters and its click filter (on the shape).
    Each span is a whole range of the primary key (the shape in each): SQLite reads several spans as one
    seek each, where a shape outside them had it read every cell of the shape."""
    ranges = [
        and_(columns.shape == shape, columns.grain == grain, columns.bucket >= first, columns.bucket < end)
        for grain, first, end in cells
    ]
    select_ = _owned(select_.where(or_(*ranges)), columns, query)
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


def _units(expression: ColumnElement[Any]) -> ColumnElement[Any]:
    """Sum money as raw integer units (not through the Money type), converted once in `_line`."""
    return func.sum(type_coerce(expression, BigInteger), type_=BigInteger)


def _summed(column: ColumnElement[Any]) -> ColumnElement[Any]:
    """A sum of a group's cells as an integer (PostgreSQL sums integers as numeric)."""
    return cast(func.sum(column), BigInteger)


def _flag(condition: ColumnElement[bool]) -> Case[int]:
    return case((condition, 1), else_=0)


_ZERO = literal_column("0", BigInteger)
_REPORT_WORK_MEM = "64MB"  # a report of 100,000 lines sorts in about 30 MB
_NEVER_NONE = frozenset({"offer", "partner", *TIME_DIMENSIONS})  # the dimensions every click and conversion has


def _columns(
    query: ReportQuery, grouped: Mapping[str, ColumnElement[Any]], metrics: Mapping[str, ColumnElement[Any]]
) -> list[ColumnElement[Any]]:
    """A part's columns, as every part of the report has them: the dimensions (null where the part has none,
    as a click has no event), an hour's offset where the zone's changes, the currency, then the metrics of a
    line (0 where the part counts none of them)."""
    columns = [grouped.get(d, null()).label(d) for d in _names(query)]
    if _OFFSET in grouped:
        columns.append(grouped[_OFFSET].label(_OFFSET))
    columns.append(grouped["currency"].label("currency"))
    return columns + [metrics.get(m, _ZERO).label(m) for m in LINE_METRICS]


def _names(query: ReportQuery) -> tuple[str, ...]:
    """The dimensions a line's group holds: every one it is grouped by but its currency (the line's own)."""
    return tuple(d for d in query.group_by if d != "currency")


class _Layout:
    """The report's statement and how its rows are read: the dimensions, an hour's offset where the zone's
    changes, the currency, the metrics of a line."""

    def __init__(self, query: ReportQuery, offsets: ZoneOffsets | None) -> None:
        self.names = _names(query)
        self.offset = "hour" in query.times and offsets is not None and offsets.fixed is None
        self.first_metric = len(self.names) + self.offset  # the currency, then the metrics
        self.group = self._reader(offsets)

    def statement(self, parts: list[Select[Any]], dialect: str) -> Select[Any]:
        """The parts' rows grouped into the lines, in the report's order: grouped by the terms they are ordered
        by, so that one sort does both."""
        c = union_all(*parts).subquery("counted").c
        values = [_ordered(c[n], n, dialect).label(n) for n in self.names]
        offset = [c[_OFFSET]] if self.offset else []
        order = self._order(c, dialect)
        kept = or_(func.sum(c.gross_clicks) != 0, func.sum(c.conversions + c.events + c.rejected) != 0)
        return (
            select(*values, *offset, c.currency, *(_sum(c[m]).label(m) for m in LINE_METRICS))
            .group_by(*order, *offset)
            .having(kept)  # not a group whose conversions all moved to other statuses (their cells net to 0)
            .order_by(*order)
        )

    def _order(self, columns: Any, dialect: str) -> list[ColumnElement[Any]]:
        """Groups in the order of their values (none last; text by code point, on PostgreSQL too; time buckets
        in time: a repeated local hour first at its earlier offset), then by currency."""
        terms: list[ColumnElement[Any]] = []
        for name in self.names:
            if name not in _NEVER_NONE:
                terms.append(columns[name].is_(None))
            terms.append(_ordered(columns[name], name, dialect))
            if name == "hour" and self.offset:
                terms.append(-columns[_OFFSET])  # later offsets first: the earlier instant
        return [*terms, columns.currency]

    def _reader(self, offsets: ZoneOffsets | None) -> Callable[[Any], Mapping[str, object]]:
        """The group of a row: its dimension values by name, an hour by its key (made once per label)."""
        names, end = self.names, len(self.names)
        if "hour" not in names or offsets is None:
            return lambda row: dict(zip(names, row, strict=False))  # the dimensions come first
        keys: dict[tuple[str, int | None], str] = {}
        offset_at = end if self.offset else None

        def group(row: Any) -> Mapping[str, object]:
            values = dict(zip(names, row, strict=False))
            label, offset = values["hour"], None if offset_at is None else row[offset_at]
            if (key := keys.get((label, offset))) is None:
                key = keys[(label, offset)] = offsets.key("hour", label, offset)
            values["hour"] = key
            return values

        return group


def _ordered(column: ColumnElement[Any], name: str, dialect: str) -> ColumnElement[Any]:
    """A dimension's column as it is grouped and ordered: text by code point (PostgreSQL's `C` collation; the
    database's own may order by language rules)."""
    return column.collate("C") if dialect == "postgresql" and name not in OWN_COLUMNS else column


def _sum(column: ColumnElement[Any]) -> ColumnElement[Any]:
    """A sum as an integer (PostgreSQL sums integers as numeric), 0 for none (a conversion without an amount)."""
    return cast(func.coalesce(func.sum(column), 0), BigInteger)
