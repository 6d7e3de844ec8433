"""Column types that keep values exact on both dialects: money as scaled integers, times as UTC."""

from __future__ import annotations

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
        if value is None:
            return None
        scaled = value * _SCALE
        if scaled != scaled.to_integral_value():
            raise ValueError(f"money {value} has more than {STORAGE_PLACES} decimal places")
        return int(scaled)

    def process_result_value(self, value: Any, dialect: Dialect) -> Decimal | None:
        return None if value is None else from_units(value)


def from_units(value: int | Decimal) -> Decimal:
    """Turn a stored (or summed) integer amount back into a Decimal, with STORAGE_PLACES places."""
    return Decimal(int(value)).scaleb(-STORAGE_PLACES)


class UtcDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC datetime, stored naive in UTC on both dialects."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetimes are not stored; pass an aware UTC datetime")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return None if value is None else value.replace(tzinfo=UTC)
