"""Report rollups: clicks and conversions summed per cell, kept in step with every write, so that a report
reads cells instead of raw rows and gives the same numbers.

- A cell's *shape* is the one click dimension it is split by beside offer, partner and advertiser: none
  (`""`), `sub1`, `country` or `device` (`SHAPES`).
- A cell's *grain* is its length in minutes: a UTC day, or a UTC hour for cells of no shape (`GRAINS`). Every
  click and conversion is counted once in each cell it falls in.
- Click cells count gross, unique, billable, bot and rejected clicks and the CPC money. Conversion cells are
  keyed also by currency, base conversion or event, event name, status and origin (bucketed by the
  conversion's own time), and count rows, rows with a sale amount, and the money: a change of status moves
  a conversion from one cell to another.

Deltas are gathered per write batch (`RollupDeltas`) and applied before its commit, one upsert per cell, in
key order (two writers on PostgreSQL take the locks of shared cells in the same order). `rebuild` recounts
every cell from the raw rows through the same code (after a bulk load or an import by SQL).

`cover` plans what a report reads: at each step the coarsest cell whose instants all fall in one bucket of
each asked time dimension in the report's zone, else the raw rows up to the next hour. A report in UTC reads
day cells; in a zone on the hour, hour cells; in a zone 30 or 45 minutes off the hour, hour cells and the raw
rows of the hour its day turns in; a bound inside an hour, the raw rows up to the hour.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, Final

from sqlalchemy import Connection, Table, delete, select, text

from tracklane.domain.money import STORAGE_PLACES
from tracklane.resources.reports import ZoneOffsets
from tracklane.services.ports import EVERY_HOUR
from tracklane.storage.schema import click_rollups, clicks, conversion_rollups, conversions
from tracklane.storage.types import naive_utc, stored_time

DAY, HOUR = 1440, 60
#: Each shape by its name, with the click column it splits cells by.
SHAPES: Final = {"": None, "sub1": "sub1", "country": "country", "device": "device_type"}
#: The grains of each shape's cells, coarsest first. Hour cells split by a click dimension would hold nearly
#: as many rows as the raw clicks: a report that needs them reads the raw rows.
GRAINS: Final = {"": (DAY, HOUR), "sub1": (DAY,), "country": (DAY,), "device": (DAY,)}
#: The report dimensions (and filters) each shape answers.
SHAPE_OF_DIMENSION: Final = {"sub1": "sub1", "country": "country", "device": "device", "device_type": "device"}
UNIQUE_CLICK_WINDOW: Final = timedelta(hours=24)

_SCALE = 10**STORAGE_PLACES
_CLICK_COLUMNS = ("offer_id", "partner_id", "advertiser_id", "sub1", "country", "device_type", "verdict", "is_bot",
                  "is_unique", "revenue", "payout", "created_at")  # fmt: skip
_CONVERSION_COLUMNS = ("offer_id", "partner_id", "advertiser_id", "currency", "event_id", "event_name", "status",
                       "origin", "revenue", "payout", "amount", "created_at")  # fmt: skip


def bucket(moment: datetime, grain: int) -> datetime:
    """The start of the cell of `grain` holding `moment` (aware UTC)."""
    moment = moment.astimezone(UTC)
    if grain == DAY:
        return moment.replace(hour=0, minute=0, second=0, microsecond=0)
    return moment.replace(minute=0, second=0, microsecond=0)


def _units(amount: Decimal | None) -> int:
    return 0 if amount is None else int(amount * _SCALE)


#: Every kind of cell a row is counted in: its shape, the shape's click column and its grain.
_KINDS: Final = tuple((shape, column, grain) for shape, column in SHAPES.items() for grain in GRAINS[shape])
Cells = dict[tuple[Any, ...], list[int]]


#: The click columns of the shapes that split cells by one (their order in a tally's key).
_SHAPE_COLUMNS: Final = tuple(column for column in SHAPES.values() if column)
#: Every kind of cell with where its value is in a tally's key (after hour and owner): None for no shape.
_PLACES: Final = tuple((shape, grain, None if column is None else _SHAPE_COLUMNS.index(column))
                       for shape, column, grain in _KINDS)  # fmt: skip


@dataclass(slots=True)
class RollupDeltas:
    """What a batch of writes adds to (or takes from) each cell (keyed with its start as naive UTC), until
    `flush` applies it.

    A row is first tallied by what places it in cells (its UTC hour, owner, click dimensions and the rest of
    the key), one dictionary step a row; `flush` spreads each tally over its cells (most rows of a batch
    share their cells: five steps a row were a tenth of a click's write)."""

    clicks: Cells = field(default_factory=dict)
    conversions: Cells = field(default_factory=dict)

    def add_click(self, click: Any) -> None:
        """Count a click (a row or an object with the click's columns as attributes)."""
        billable = click.verdict == "accepted" and not click.is_bot
        metrics = (1, int(bool(click.is_unique)), int(billable), int(bool(click.is_bot)),
                   int(click.verdict == "rejected"), _units(click.revenue), _units(click.payout))  # fmt: skip
        _tally(self.clicks, click, click, click.created_at, (), metrics)

    def add_conversion(self, conversion: Any, click: Any, sign: int = 1) -> None:
        """Count a conversion or event (`sign` -1 takes it back out, before a change) under its click's dimensions."""
        metrics = (sign, sign * (conversion.amount is not None), sign * _units(conversion.revenue),
                   sign * _units(conversion.payout), sign * _units(conversion.amount))  # fmt: skip
        status = getattr(conversion.status, "value", conversion.status)
        rest = (conversion.currency, conversion.event_id is not None, conversion.event_name or "", status,
                conversion.origin)  # fmt: skip
        _tally(self.conversions, conversion, click, conversion.created_at, rest, metrics)

    def cells(self) -> tuple[Cells, Cells]:
        """The click cells and the conversion cells the tallies add up to, each keyed as its table's key."""
        return _cells(self.clicks), _cells(self.conversions)

    def clear(self) -> None:
        self.clicks.clear()
        self.conversions.clear()

    def flush(self, conn: Connection, versions: bool = True) -> None:
        """Apply the deltas, one upsert per cell in key order, raise the version of each UTC hour they touch
        (unless `versions` is False: a recount raises every hour's at once) and start again from none."""
        dialect = conn.dialect.name
        stored = stored_time(dialect)
        hours: set[datetime] = set()
        for table, tallies in ((click_rollups, self.clicks), (conversion_rollups, self.conversions)):
            if tallies:
                cells = _cells(tallies)
                rows = [(*key[:2], stored(key[2]), *key[3:], *cells[key]) for key in sorted(cells)]
                conn.exec_driver_sql(_upsert(table, dialect), rows)
                hours.update(hour for hour, *_ in tallies)
        if versions and hours:  # last, and in order: the version rows' locks are held the shortest, taken alike
            conn.exec_driver_sql(_RAISE_VERSION[dialect], [(stored(hour),) for hour in sorted(hours)])
        self.clear()


def _tally(
    tallies: Cells, row: Any, click: Any, moment: datetime, rest: tuple[Any, ...], metrics: tuple[int, ...]
) -> None:
    """Add `metrics` to the tally of the rows placed in the same cells as `row` (counted under its click's
    dimensions)."""
    if moment.tzinfo is not UTC:
        moment = moment.astimezone(UTC)
    key = (moment.replace(minute=0, second=0, microsecond=0, tzinfo=None), row.offer_id, row.partner_id,
           row.advertiser_id or 0, *[getattr(click, column) or "" for column in _SHAPE_COLUMNS], *rest)  # fmt: skip
    found = tallies.get(key)
    if found is None:
        tallies[key] = list(metrics)
    else:
        for index, metric in enumerate(metrics):
            found[index] += metric


def _cells(tallies: Cells) -> Cells:
    """Each cell's sums from the tallies: every tally counts in one cell of each kind."""
    cells: Cells = {}
    dimensions = 4 + len(_SHAPE_COLUMNS)
    for key, metrics in tallies.items():
        hour, owner, values, rest = key[0], key[1:4], key[4:dimensions], key[dimensions:]
        starts = {DAY: hour.replace(hour=0), HOUR: hour}
        for shape, grain, place in _PLACES:
            cell = (shape, grain, starts[grain], *owner, "" if place is None else values[place], *rest)
            found = cells.get(cell)
            cells[cell] = list(metrics) if found is None else [a + b for a, b in zip(found, metrics, strict=True)]
    return cells


_UPSERTS: dict[tuple[str, str], str] = {}


def _upsert(table: Table, dialect: str) -> str:
    """`INSERT ... ON CONFLICT (cell) DO UPDATE SET metric = metric + excluded.metric`, in the driver's own
    parameter style (the hot path skips SQLAlchemy's per-row parameter processing)."""
    cached = _UPSERTS.get((table.name, dialect))
    if cached is None:
        keys = [c.name for c in table.primary_key.columns]
        metrics = [c.name for c in table.columns if not c.primary_key]
        markers = ", ".join(["?" if dialect == "sqlite" else "%s"] * len(keys + metrics))
        cached = (
            f"INSERT INTO {table.name} ({', '.join(keys + metrics)}) VALUES ({markers})"
            f" ON CONFLICT ({', '.join(keys)}) DO UPDATE SET "
            + ", ".join(f"{m} = {table.name}.{m} + excluded.{m}" for m in metrics)
        )
        _UPSERTS[(table.name, dialect)] = cached
    return cached


_DAY_BEFORE = {
    "sqlite": "strftime('%Y-%m-%d %H:%M:%f', clicks.created_at, '-1 day')",
    "postgresql": "clicks.created_at - interval '1 day'",
}


def flag_unique_clicks(conn: Connection) -> None:
    """Set every click's `is_unique` from the clicks before it (by id), as `insert_click` sets it."""
    conn.execute(text(
        "UPDATE clicks SET is_unique = (ip IS NOT NULL AND NOT EXISTS (SELECT 1 FROM clicks AS earlier"
        " WHERE earlier.offer_id = clicks.offer_id AND earlier.partner_id = clicks.partner_id"
        " AND earlier.ip = clicks.ip AND earlier.id < clicks.id"
        f" AND earlier.created_at > {_DAY_BEFORE[conn.dialect.name]}))"
    ))  # fmt: skip


_RAISE_VERSION: Final = {
    dialect: f"INSERT INTO report_versions (bucket, version) VALUES ({marker}, 1)"
    " ON CONFLICT (bucket) DO UPDATE SET version = report_versions.version + 1"
    for dialect, marker in (("sqlite", "?"), ("postgresql", "%s"))
}


def raise_every_version(conn: Connection) -> None:
    """Raise the version of every hour at once (what a report counts may have changed in any of them, those
    never written since versions were kept included)."""
    dialect = conn.dialect.name
    conn.exec_driver_sql(_RAISE_VERSION[dialect], [(stored_time(dialect)(naive_utc(EVERY_HOUR)),)])


def recount(conn: Connection) -> None:
    """After clicks were loaded or changed by SQL: their unique flags, then every cell, then every hour's
    version."""
    flag_unique_clicks(conn)
    rebuild(conn)
    raise_every_version(conn)


def rebuild(conn: Connection, chunk: int = 50_000) -> None:
    """Recount every cell from the raw rows (in the caller's transaction), through the code writes use."""
    conn.execute(delete(click_rollups))
    conn.execute(delete(conversion_rollups))
    deltas = RollupDeltas()
    for count, row in enumerate(_stream(conn, select(*(clicks.c[c] for c in _CLICK_COLUMNS))), start=1):
        deltas.add_click(row)
        if count % chunk == 0:
            deltas.flush(conn, versions=False)
    deltas.flush(conn, versions=False)
    dims = (clicks.c.sub1, clicks.c.country, clicks.c.device_type)
    joined = select(*(conversions.c[c] for c in _CONVERSION_COLUMNS), *dims).select_from(
        conversions.join(clicks, clicks.c.id == conversions.c.click_id)
    )
    for count, row in enumerate(_stream(conn, joined), start=1):
        deltas.add_conversion(row, row)
        if count % chunk == 0:
            deltas.flush(conn, versions=False)
    deltas.flush(conn, versions=False)


def _stream(conn: Connection, statement: Any) -> Iterable[Any]:
    """The rows of `statement`, fetched a page at a time (a server-side cursor on PostgreSQL)."""
    return conn.execute(statement.execution_options(yield_per=10_000))


# --- which cells a report reads ----------------------------------------------------------------------------------

Span = tuple[int, datetime, datetime]  # grain (0: the raw rows), start, end (exclusive)


def cover(start: datetime, end: datetime, shape: str, times: Sequence[str], offsets: ZoneOffsets | None) -> list[Span]:
    """What makes up [start, end) (aware UTC): at each step the coarsest whole cell of the shape, else the raw
    rows up to the next hour; consecutive steps of one grain joined into one span."""
    spans: list[Span] = []
    moment = start
    while moment < end:
        for grain in GRAINS[shape]:
            step = moment + timedelta(minutes=grain)
            if bucket(moment, grain) == moment and step <= end and _whole(moment, step, times, offsets):
                break
        else:
            grain, step = 0, min(end, bucket(moment, HOUR) + timedelta(minutes=HOUR))
        if spans and spans[-1][0] == grain and spans[-1][2] == moment:
            spans[-1] = (grain, spans[-1][1], step)
        else:
            spans.append((grain, moment, step))
        moment = step
    return spans


_INSTANT = timedelta(microseconds=1)

#: A span of cells counted with a sign, each labelled as the instant `shift` after its bucket (see
#: `cover_by_difference`): (grain, start, end, sign, shift). The raw rows are always counted as they fall.
Piece = tuple[int, datetime, datetime, int, timedelta]
NO_SHIFT = timedelta(0)


def cover_by_difference(
    start: datetime, end: datetime, shape: str, times: Sequence[str], offsets: ZoneOffsets | None
) -> list[Piece]:
    """`cover`, with fewer cells where a zone's buckets start inside a UTC day. A local day of New York, from
    05:00 UTC to 05:00 the next day, is 24 hour cells; it is also that UTC day's cell less its first 5 hour
    cells, plus the next day's first 5 (11 cells). A day of Berlin, from 23:00 UTC to 23:00 the next day, is
    the last hour of the first UTC day, plus the next UTC day's cell less its last hour (3 cells).

    So a bucket that starts less than 12 hours into a UTC day and holds the rest of it counts that day's cell
    and subtracts the hours before its start; one that ends less than 12 hours before a UTC day's end and
    holds all of it before counts that day's cell and subtracts the hours after its end. Each cell is
    labelled as an instant inside the bucket (its start moved by `shift`). Only hour cells can be subtracted,
    so only where the shape has them, the zone's buckets start on the hour and no hour is asked for;
    elsewhere, and where it would not read fewer cells, it is `cover`."""
    plain = [(grain, first, until, 1, NO_SHIFT) for grain, first, until in cover(start, end, shape, times, offsets)]
    if HOUR not in GRAINS[shape] or not times or "hour" in times or offsets is None:
        return plain
    if any(seconds % 3600 for _, seconds in offsets.changes) or any(
        since is not None and since.minute | since.second | since.microsecond for since, _ in offsets.changes
    ):
        return plain
    pieces: list[Piece] = []
    for first, until in _buckets(start, end, times, offsets):
        head, first = _from_the_day_before(first, until)
        tail, until = _from_the_day_after(first, until)
        pieces += head + [(g, s, e, 1, NO_SHIFT) for g, s, e in cover(first, until, shape, times, offsets)] + tail
    return pieces if _cells_read(pieces) < _cells_read(plain) else plain


_HALF_DAY = timedelta(hours=12)


def _from_the_day_before(first: datetime, until: datetime) -> tuple[list[Piece], datetime]:
    """For a bucket [first, until) that starts less than 12 hours into a UTC day and holds the rest of it:
    that day's cell and its hours before `first` (subtracted), labelled that many hours later; and where
    the rest of the bucket starts."""
    day = bucket(first, DAY)
    into = first - day
    if bucket(first, HOUR) == first and timedelta(0) < into < _HALF_DAY and day + timedelta(days=1) <= until:
        return [(DAY, day, day + timedelta(days=1), 1, into), (HOUR, day, first, -1, into)], day + timedelta(days=1)
    return [], first


def _from_the_day_after(first: datetime, until: datetime) -> tuple[list[Piece], datetime]:
    """For a bucket [first, until) that ends less than 12 hours before a UTC day's end and holds all of it
    before: that day's cell (labelled at its start) and its hours from `until` (subtracted, labelled as
    far before as the day's start is before `until`); and where the rest of the bucket ends."""
    day = bucket(until, DAY)
    left = day + timedelta(days=1) - until
    if bucket(until, HOUR) == until and until != day and left < _HALF_DAY and first <= day:
        return [(DAY, day, day + timedelta(days=1), 1, NO_SHIFT),
                (HOUR, until, day + timedelta(days=1), -1, day - until)], day  # fmt: skip
    return [], until


def _buckets(
    start: datetime, end: datetime, times: Sequence[str], offsets: ZoneOffsets
) -> list[tuple[datetime, datetime]]:
    """[start, end) cut where the label of an asked time dimension changes (on the hour, in this zone)."""
    edges = [start]
    moment = bucket(start, HOUR) + timedelta(hours=1)
    while moment < end:
        local_midnight = (moment + timedelta(seconds=offsets.at(moment))).hour == 0  # where every bucket starts
        if local_midnight and any(offsets.label(d, moment - _INSTANT) != offsets.label(d, moment) for d in times):
            edges.append(moment)
        moment += timedelta(hours=1)
    return list(zip(edges, [*edges[1:], end], strict=True))


def _cells_read(pieces: Sequence[Piece]) -> int:
    """How many cells of one key the pieces read (the raw rows counted as an hour's cell each)."""
    lengths = (round((until - first) / timedelta(minutes=grain or HOUR)) for grain, first, until, _, _ in pieces)
    return sum(max(1, length) for length in lengths)


def _whole(start: datetime, end: datetime, times: Sequence[str], offsets: ZoneOffsets | None) -> bool:
    """Whether every instant of the cell falls in one bucket of each time dimension (one offset throughout)."""
    if not times or offsets is None:
        return True
    last = end - _INSTANT
    if offsets.at(start) != offsets.at(last):
        return False
    return all(offsets.label(d, start) == offsets.label(d, last) for d in times)
