"""Query parameters shared by every list: cursor, limit and the time range."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Annotated, Any

import msgspec
from fastapi import Path, Query

from tracklane.domain.errors import InvalidParameter
from tracklane.resources.fields import MAX_ID
from tracklane.services.ports import Page


def parse_time(raw: str | None, field: str) -> datetime | None:
    """ISO 8601 date or date-time; without a zone it is UTC."""
    if raw in (None, ""):
        return None
    try:
        value = datetime.fromisoformat(str(raw).replace("Z", "+00:00"))
    except ValueError:
        raise InvalidParameter(field, "must be an ISO 8601 date or date-time") from None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def page(
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor: Annotated[str | None, Query(description="next_cursor of the previous page")] = None,
    from_: Annotated[str | None, Query(alias="from", description="created at or after (ISO 8601)")] = None,
    to: Annotated[str | None, Query(description="created before (ISO 8601)")] = None,
) -> Page:
    if cursor is not None and not cursor.isdigit():
        raise InvalidParameter("cursor", "is not a cursor this API gave")
    return Page(
        limit=limit,
        cursor=int(cursor) if cursor else None,
        created_from=parse_time(from_, "from"),
        created_to=parse_time(to, "to"),
    )


def with_filters(base: Page, **filters: Any) -> Page:
    return Page(
        base.limit, base.cursor, base.created_from, base.created_to, {k: v for k, v in filters.items() if v is not None}
    )


PathId = Annotated[int, Path(ge=1, le=MAX_ID, description="a positive integer id")]
QueryId = Annotated[int | None, Query(ge=1, le=MAX_ID)]


def listed(items: Sequence[Any], data: Sequence[msgspec.Struct | dict[str, Any]], limit: int) -> dict[str, Any]:
    """`{"data", "next_cursor"}`: a cursor only when the page is full."""
    next_cursor = str(items[-1].id) if len(items) == limit and items else None
    return {"data": list(data), "next_cursor": next_cursor}
