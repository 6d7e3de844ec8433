"""Column types that keep values exact on both dialects: money as scaled integers, times as UTC."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import BigInteger, DateTime
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator

from tracklane.domain.money import STORAGE_PLACES

_SCALE = Decimal(10) ** STORAGE_PLACES


class Money(TypeDecorator[Decimal]):
    """A Decimal stored as an integer count of 1/10,000 units, so SQL sums stay exact on SQLite too."""

    impl = BigInteger
    cache_ok = True

    def process_bind_param(self, value: Decimal | None, dialect: Dialect) -> int | None:
        return None if value is None else stored_units(value)

    def process_result_value(self, value: Any, dialect: Dialect) -> Decimal | None:
        return None if value is None else from_units(value)


def stored_units(amount: Decimal) -> int:
    """An amount as it is stored: an integer count of 1/10,000 units."""
    scaled = amount * _SCALE
    if scaled != scaled.to_integral_value():
        raise ValueError(f"money {amount} has more than {STORAGE_PLACES} decimal places")
    return int(scaled)


def from_units(value: int | Decimal) -> Decimal:
    """Turn a stored (or summed) integer amount back into a Decimal, with STORAGE_PLACES places."""
    return Decimal(int(value)).scaleb(-STORAGE_PLACES)


class UtcDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC datetime, stored naive in UTC on both dialects."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return None if value is None else naive_utc(value)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return None if value is None else value.replace(tzinfo=UTC)


def stored_time(dialect: str) -> Callable[[datetime], datetime | str]:
    """How the driver takes a naive UTC time for a `UtcDateTime` column: on SQLite the text SQLAlchemy writes
    (`YYYY-MM-DD HH:MM:SS.ffffff`, compared as text), on PostgreSQL the time itself."""
    return _sqlite_text if dialect == "sqlite" else _as_is


def _sqlite_text(moment: datetime) -> str:
    return moment.isoformat(" ", "microseconds")


def _as_is(moment: datetime) -> datetime:
    return moment


def naive_utc(moment: datetime) -> datetime:
    """An aware time as the naive UTC time a `UtcDateTime` column holds."""
    if moment.tzinfo is None:
        raise ValueError("naive datetimes are not stored; pass an aware UTC datetime")
    return moment.astimezone(UTC).replace(tzinfo=None)
