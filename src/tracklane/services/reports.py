"""The performance report and click lookups: read-only use cases."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

from tracklane.domain.errors import InvalidParameter, NotFound
from tracklane.domain.model import Click
from tracklane.services.ports import Database, Page

DIMENSIONS = (
    "offer", "partner", "advertiser", "day",
    "sub1", "sub2", "sub3", "sub4", "sub5", "source_id", "country", "device_type",
)  # fmt: skip
FILTERS = ("offer_id", "partner_id", "advertiser_id")


class ReportService:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def run(
        self, group_by: Sequence[str], created_from: datetime | None, created_to: datetime | None,
        filters: Mapping[str, int],
    ) -> dict[str, Any]:
        """Rows per group with clicks, conversions, events, money, CVR and EPC, and their totals."""
        for dimension in group_by:
            if dimension not in DIMENSIONS:
                raise InvalidParameter("group_by", f"{dimension!r} is not one of {', '.join(DIMENSIONS)}")
        if len(set(group_by)) != len(group_by):
            raise InvalidParameter("group_by", "names a dimension twice")
        rows = await self._db.read(lambda repo: repo.report(group_by, created_from, created_to, filters))
        totals = _totals(rows)
        return {"rows": [_with_ratios(r) for r in rows], "totals": _with_ratios(totals)}

    async def clicks(self, page: Page) -> list[Click]:
        return await self._db.read(lambda repo: repo.list_clicks(page))

    async def click(self, transaction_id: str) -> Click:
        click = await self._db.read(lambda repo: repo.get_click(transaction_id))
        if click is None:
            raise NotFound(f"no click has transaction_id {transaction_id}")
        return click


def _totals(rows: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    totals: dict[str, Any] = {}
    for row in rows:
        for name, value in row.items():
            if isinstance(value, int | Decimal) and name not in DIMENSIONS:
                totals[name] = totals.get(name, 0) + value
    return totals


def _with_ratios(row: Mapping[str, Any]) -> dict[str, Any]:
    """Conversion rate (percent of billable clicks) and earnings per click (payout / clicks)."""
    clicks = int(row.get("clicks", 0))
    result = dict(row)
    conversions = Decimal(int(row.get("conversions", 0)))
    result["cvr"] = (conversions * 100 / clicks).quantize(Decimal("0.01")) if clicks else None
    result["epc"] = (Decimal(row.get("payout", 0)) / clicks).quantize(Decimal("0.0001")) if clicks else None
    return result
