"""Query parameters shared by every list (cursor, limit and the time range) and the id of a path or filter.

Every integer of a path or query string is ASCII digits only: pydantic alone would also read `1_000`
(and a sign, blanks or `+1`) as an integer.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime
from typing import Annotated, Any

import msgspec
from fastapi import Path, Query
from pydantic import BeforeValidator
from pydantic_core import PydanticCustomError

from tracklane.domain.errors import InvalidParameter
from tracklane.domain.ids import MAX_ID, id_or_none
from tracklane.resources.fields import instant
from tracklane.services.ports import Page

_DIGITS = re.compile(r"[0-9]{1,30}")


def _ascii_digits(raw: object) -> object:
    """Refuse any text but plain digits before pydantic reads it as an integer (its bounds then apply)."""
    if isinstance(raw, str) and _DIGITS.fullmatch(raw) is None:
        raise PydanticCustomError("int_parsing", "must be a whole number written with the digits 0-9 only")
    return raw


Digits = BeforeValidator(_ascii_digits)


def parse_time(raw: str | None, field: str) -> datetime | None:
    """ISO 8601 date or date-time; without a zone it is UTC."""
    return None if raw in (None, "") else instant(str(raw), field)


def page(
    limit: Annotated[int, Query(ge=1, le=500), Digits] = 50,
    cursor: Annotated[str | None, Query(description="next_cursor of the previous page")] = None,
    from_: Annotated[str | None, Query(alias="from", description="created at or after (ISO 8601)")] = None,
    to: Annotated[str | None, Query(description="created before (ISO 8601)")] = None,
) -> Page:
    after = None if cursor is None else id_or_none(cursor)
    if cursor is not None and after is None:
        raise InvalidParameter("cursor", "is not a cursor this API gave")
    return Page(
        limit=limit,
        cursor=after,
        created_from=parse_time(from_, "from"),
        created_to=parse_time(to, "to"),
    )


def with_filters(base: Page, **filters: Any) -> Page:
    return Page(
        base.limit, base.cursor, base.created_from, base.created_to, {k: v for k, v in filters.items() if v is not None}
    )


PathId = Annotated[int, Path(ge=1, le=MAX_ID, description="a positive integer id"), Digits]
QueryId = Annotated[int | None, Query(ge=1, le=MAX_ID), Digits]


def listed(items: Sequence[Any], data: Sequence[msgspec.Struct | dict[str, Any]], limit: int) -> dict[str, Any]:
    """`{"data", "next_cursor"}`: a cursor only when the page is full."""
    next_cursor = str(items[-1].id) if len(items) == limit and items else None
    return {"data": list(data), "next_cursor": next_cursor}
