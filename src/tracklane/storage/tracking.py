"""SQL for clicks, exact cap counters and conversions."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, NamedTuple

from sqlalchemy import Connection, bindparam, exists, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from tracklane.domain.caps import CapCounterKey
from tracklane.domain.model import Click, Conversion, ConversionStatus
from tracklane.domain.trace import TraceStep, stored_steps
from tracklane.services.ports import DuplicateKey, NewClick, NewConversion, Page
from tracklane.storage import rows
from tracklane.storage.driver import DriverRow, DriverStatement, DriverTable
from tracklane.storage.paging import paged
from tracklane.storage.rollups import UNIQUE_CLICK_WINDOW, RollupDeltas
from tracklane.storage.schema import cap_counters, clicks, conversions
from tracklane.storage.types import from_units, naive_utc, stored_time, stored_units

# Built once so that SQLAlchemy reuses their compiled form on the hot path.
_CLICK_COLUMNS = tuple(c.name for c in clicks.columns if c.name != "id")
_INSERT_CLICK = DriverStatement(
    f"INSERT INTO clicks ({', '.join(_CLICK_COLUMNS)}) VALUES ({', '.join('?' * len(_CLICK_COLUMNS))}) RETURNING id"
)
_SEEN_VISITOR = DriverStatement(  # by ix_clicks_visitor
    "SELECT EXISTS (SELECT 1 FROM clicks WHERE offer_id = ? AND partner_id = ? AND ip = ? AND created_at > ?)"
)
_CLICK_DIMENSIONS = DriverStatement("SELECT sub1, country, device_type FROM clicks WHERE id = ?")
_CLICK_ROWS = DriverTable(clicks)
_CLICK_BY_TRANSACTION = _CLICK_ROWS.select("transaction_id = ?")
_CONVERSION_ROWS = DriverTable(conversions)
_CONVERSION_BY_DEDUP_KEY = _CONVERSION_ROWS.select("dedup_key = ?")
# A conversion whose dedup key another writer (another process) took first inserts nothing and returns no row.
_INSERT_CONVERSION = _CONVERSION_ROWS.insert("ON CONFLICT (dedup_key) DO NOTHING")
# NO KEY: the rows that refer to the conversion (its outbox and delivery rows) can still be added meanwhile.
_HELD_CONVERSION = (
    select(conversions).where(conversions.c.id == bindparam("conversion_id")).with_for_update(key_share=True)
)
_HAS_BASE_CONVERSION = select(
    exists().where(conversions.c.click_id == bindparam("click_id"), conversions.c.event_id.is_(None))
)
_ENSURE_COUNTER = {
    name: upsert(cap_counters)
    .values(cap_id=bindparam("k_cap"), scope=bindparam("k_scope"), period_start=bindparam("k_period"), used=0)
    .on_conflict_do_nothing()
    for name, upsert in (("postgresql", pg_insert), ("sqlite", sqlite_insert))
}
_TAKE_FROM_COUNTER = (
    update(cap_counters)
    .where(
        cap_counters.c.cap_id == bindparam("k_cap"),
        cap_counters.c.scope == bindparam("k_scope"),
        cap_counters.c.period_start == bindparam("k_period"),
        cap_counters.c.used < bindparam("k_limit"),
    )
    .values(used=cap_counters.c.used + 1)
)


class SqlTracking:
    conn: Connection
    rollups: RollupDeltas

    def insert_click(self, click: NewClick) -> Click:
        values: dict[str, Any] = {
            "transaction_id": click.transaction_id, "offer_id": click.offer_id, "partner_id": click.partner_id,
            "advertiser_id": click.advertiser_id, "source_id": click.source_id, "ip": click.ip,
            "user_agent": click.user_agent, "device_type": click.device.device_type, "os": click.device.os,
            "browser": click.device.browser, "is_bot": click.device.is_bot, "country": click.country,
            "referrer": click.referrer, "verdict": click.verdict, "reject_reason": click.reject_reason,
            "revenue": click.revenue, "payout": click.payout, "created_at": click.created_at,
        }  # fmt: skip
        values.update({f"sub{i}": sub for i, sub in enumerate(click.subs, start=1)})
        values["is_unique"] = self._is_unique(click)
        stored = {**values, "revenue": stored_units(click.revenue), "payout": stored_units(click.payout),
                  "created_at": stored_time(self.conn.dialect.name)(naive_utc(click.created_at))}  # fmt: skip
        (click_id,) = _INSERT_CLICK.execute(self.conn, [stored[name] for name in _CLICK_COLUMNS]).fetchone()
        inserted = DriverRow({**values, "id": click_id})
        self.rollups.add_click(inserted)
        return rows.click(inserted)  # type: ignore[arg-type]

    def _is_unique(self, click: NewClick) -> bool:
        """The first click from its IP address for its offer and partner in `UNIQUE_CLICK_WINDOW`."""
        if click.ip is None:
            return False
        since = stored_time(self.conn.dialect.name)(naive_utc(click.created_at - UNIQUE_CLICK_WINDOW))
        (seen,) = _SEEN_VISITOR.execute(self.conn, (click.offer_id, click.partner_id, click.ip, since)).fetchone()
        return not seen

    def get_click(self, transaction_id: str) -> Click | None:
        row = _CLICK_BY_TRANSACTION.execute(self.conn, (transaction_id,)).fetchone()
        return None if row is None else rows.click(_CLICK_ROWS.row(self.conn.dialect.name, row))  # type: ignore[arg-type]

    def list_clicks(self, page: Page) -> list[Click]:
        return [rows.click(r) for r in self.conn.execute(paged(select(clicks), clicks, page))]

    def take_caps(self, counters: Sequence[tuple[CapCounterKey, int]]) -> bool:
        """Count one action against every counter, or against none when one of them is full."""
        if not counters:
            return True
        try:
            with self.conn.begin_nested():
                for key, limit in counters:
                    if not self._take(key, limit):
                        raise _CapFull
        except _CapFull:
            return False
        return True

    def _take(self, key: CapCounterKey, limit: int) -> bool:
        """Count one action against a cap counter unless it is full; atomic on both dialects."""
        params = {"k_cap": key.cap_id, "k_scope": key.scope, "k_period": key.period_start, "k_limit": limit}
        self.conn.execute(_ENSURE_COUNTER[self.conn.dialect.name], params)
        return bool(self.conn.execute(_TAKE_FROM_COUNTER, params).rowcount)

    def find_conversion_by_dedup_key(self, key: str) -> Conversion | None:
        row = _CONVERSION_BY_DEDUP_KEY.execute(self.conn, (key,)).fetchone()
        if row is None:
            return None
        return rows.conversion(_CONVERSION_ROWS.row(self.conn.dialect.name, row))  # type: ignore[arg-type]

    def has_base_conversion(self, click_id: int) -> bool:
        return bool(self.conn.execute(_HAS_BASE_CONVERSION, {"click_id": click_id}).scalar())

    def insert_conversion(self, conversion: NewConversion) -> Conversion:
        values: dict[str, Any] = {
            name: getattr(conversion, name) for name in NewConversion.__dataclass_fields__ if name not in ("advs",)
        }
        values["status"] = conversion.status.value
        values["trace"] = stored_steps(conversion.trace)
        values["updated_at"] = conversion.created_at
        values.update({f"adv{i}": adv for i, adv in enumerate(conversion.advs, start=1)})
        dialect = self.conn.dialect.name
        inserted = _INSERT_CONVERSION.execute(self.conn, _CONVERSION_ROWS.values_of(dialect, values)).fetchone()
        if inserted is None:  # a concurrent writer (another process) took the dedup key first
            raise DuplicateKey(str(conversion.dedup_key))
        # The row as it reads back: money with its stored places, the times in UTC (and the trace it was
        # given: its steps read back equal, and parsing them again cost more than the rest of the row).
        row = DriverRow({
            **values, "id": inserted[0], "revenue": _stored(values["revenue"]), "payout": _stored(values["payout"]),
            "amount": _stored(values["amount"]), "created_at": _utc(values["created_at"]),
            "updated_at": _utc(values["updated_at"]), "trace": (),
        })  # fmt: skip
        self.rollups.add_conversion(row, self._click_dimensions(conversion.click_id))
        return replace(rows.conversion(row), trace=conversion.trace)  # type: ignore[arg-type]

    def _click_dimensions(self, click_id: int) -> _Dimensions:
        """What a conversion's rollup cells are split by, of its click."""
        return _Dimensions(*_CLICK_DIMENSIONS.execute(self.conn, (click_id,)).fetchone())

    def get_conversion(self, conversion_id: int) -> Conversion | None:
        row = self.conn.execute(select(conversions).where(conversions.c.id == conversion_id)).one_or_none()
        return None if row is None else rows.conversion(row)

    def hold_conversion(self, conversion_id: int) -> Conversion | None:
        """On PostgreSQL the row is locked until the transaction ends: another server's writer waits, then
        reads the changed row (SQLite has one writer at a time)."""
        row = self.conn.execute(_HELD_CONVERSION, {"conversion_id": conversion_id}).one_or_none()
        return None if row is None else rows.conversion(row)

    def list_conversions(self, page: Page) -> list[Conversion]:
        return [rows.conversion(r) for r in self.conn.execute(paged(select(conversions), conversions, page))]

    def update_conversion_status(
        self,
        conversion_id: int,
        status: ConversionStatus,
        reason: str | None,
        trace: Sequence[TraceStep],
        now: datetime,
    ) -> None:
        """Change a conversion's status, and move it to its new status's rollup cells."""
        self._update_conversion(conversion_id, status=status.value, status_reason=reason,
                                trace=stored_steps(trace), updated_at=now)  # fmt: skip

    def update_conversion_money(
        self,
        conversion_id: int,
        amount: Decimal | None,
        revenue: Decimal,
        payout: Decimal,
        trace: Sequence[TraceStep],
        now: datetime,
    ) -> None:
        """Adjust a conversion's money, and move its sums in the rollup cells."""
        self._update_conversion(conversion_id, amount=amount, revenue=revenue, payout=payout,
                                trace=stored_steps(trace), updated_at=now)  # fmt: skip

    def _update_conversion(self, conversion_id: int, **values: Any) -> None:
        """Change a conversion's row and its rollup cells with it (out of the old cell, into the new)."""
        changed = update(conversions).where(conversions.c.id == conversion_id).values(**values)
        changed = changed.returning(*conversions.c)
        before = self.conn.execute(_HELD_CONVERSION, {"conversion_id": conversion_id}).one_or_none()  # what moves out
        after = self.conn.execute(changed).one_or_none()
        if before is not None and after is not None:
            dimensions = self._click_dimensions(before.click_id)
            self.rollups.add_conversion(before, dimensions, sign=-1)
            self.rollups.add_conversion(after, dimensions)


class _Dimensions(NamedTuple):
    sub1: str | None
    country: str | None
    device_type: str


class _CapFull(Exception):
    """Raised inside the cap savepoint to undo the counters already taken."""


def _stored(amount: Decimal | None) -> Decimal | None:
    """An amount as it reads back from its column (with the stored places)."""
    return None if amount is None else from_units(stored_units(amount))


def _utc(moment: datetime) -> datetime:
    return naive_utc(moment).replace(tzinfo=UTC)
