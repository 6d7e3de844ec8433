"""Customers seen through Segment calls, and the customer metrics per partner, offer or source."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from tracklane.domain.errors import InvalidParameter, NotFound
from tracklane.domain.segment.metrics import customer_metrics
from tracklane.domain.segment.model import Customer
from tracklane.services.ports import Database, Page

GROUPS = ("partner", "offer", "source")
FILTERS = ("partner_id", "offer_id", "source_id")


class CustomerService:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def get(self, customer_id: int) -> Customer:
        customer = await self._db.read(lambda repo: repo.get_customer(customer_id))
        if customer is None:
            raise NotFound(f"customer {customer_id} does not exist")
        return customer

    async def messages(self, page: Page) -> list[dict[str, Any]]:
        return await self._db.read(lambda repo: repo.list_segment_messages(page))

    async def list(self, page: Page) -> list[Customer]:
        return await self._db.read(lambda repo: repo.list_customers(page))

    async def report(
        self, group_by: str, created_from: datetime | None, created_to: datetime | None, filters: dict[str, int]
    ) -> dict[str, Any]:
        """New customers, payments, refunds, net revenue, churn, acquisition cost, revenue per customer."""
        if group_by not in GROUPS:
            raise InvalidParameter("group_by", f"must be one of {', '.join(GROUPS)}")
        rows = await self._db.read(lambda repo: repo.customer_report(group_by, created_from, created_to, filters))
        totals: dict[str, Any] = {}
        for row in rows:
            for name, value in row.items():
                if name != group_by and value is not None:
                    totals[name] = totals.get(name, 0) + value
        return {"rows": [customer_metrics(r) for r in rows], "totals": customer_metrics(totals)}
