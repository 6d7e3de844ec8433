"""Cursor pagination and time-range filters shared by every list query."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Select, Table

from tracklane.services.ports import Page


def paged(stmt: Select[Any], table: Table, page: Page) -> Select[Any]:
    """Newest first; the cursor is the last id seen; `created_from` inclusive, `created_to` exclusive."""
    if page.cursor is not None:
        stmt = stmt.where(table.c.id < page.cursor)
    if page.created_from is not None:
        stmt = stmt.where(table.c.created_at >= page.created_from)
    if page.created_to is not None:
        stmt = stmt.where(table.c.created_at < page.created_to)
    for name, value in page.filters.items():
        if value is not None:
            stmt = stmt.where(table.c[name] == value)
    return stmt.order_by(table.c.id.desc()).limit(page.limit)
