"""SQL for what an event needs to know of its click's base conversions: whether there is one, and whether
any of them still counts (is not rejected)."""

from __future__ import annotations

from sqlalchemy import Connection, bindparam, select

from tracklane.domain.model import ConversionStatus
from tracklane.storage.schema import conversions

_BASE_STATUSES = (
    select(conversions.c.status)
    .distinct()
    .where(conversions.c.click_id == bindparam("click_id"), conversions.c.event_id.is_(None))
)


class SqlPriorConversions:
    conn: Connection

    def base_conversion_statuses(self, click_id: int) -> frozenset[ConversionStatus]:
        found = self.conn.execute(_BASE_STATUSES, {"click_id": click_id}).scalars()
        return frozenset(ConversionStatus(status) for status in found)
