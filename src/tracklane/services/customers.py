"""Customers seen through Segment calls, the messages of a source, and the customer metrics per partner,
offer or source."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, get_args

from tracklane.domain.errors import InvalidParameter, NotFound
from tracklane.domain.segment.metrics import customer_metrics
from tracklane.domain.segment.model import Customer, StoredMessage
from tracklane.resources.customers import CustomerGroup
from tracklane.services.ports import Database, Page

GROUPS: tuple[CustomerGroup, ...] = get_args(CustomerGroup)
FILTERS = ("partner_id", "offer_id", "source_id")


@dataclass(frozen=True, slots=True)
class CustomerReport:
    """The metrics of each group (`group_by` names the group's key in its row) and of all groups together."""

    group_by: CustomerGroup
    rows: list[dict[str, Any]]
    totals: dict[str, Any]


class CustomerService:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def get(self, customer_id: int) -> Customer:
        customer = await self._db.read(lambda repo: repo.get_customer(customer_id))
        if customer is None:
            raise NotFound(f"customer {customer_id} does not exist")
        return customer

    async def messages(self, page: Page) -> list[StoredMessage]:
        return await self._db.read(lambda repo: repo.list_segment_messages(page))

    async def list(self, page: Page) -> list[Customer]:
        return await self._db.read(lambda repo: repo.list_customers(page))

    async def report(
        self, group_by: str, created_from: datetime | None, created_to: datetime | None, filters: dict[str, int]
    ) -> CustomerReport:
        """New customers, payments, refunds, net revenue, churn, acquisition cost, revenue per customer."""
        group = next((g for g in GROUPS if g == group_by), None)
        if group is None:
            raise InvalidParameter("group_by", f"must be one of {', '.join(GROUPS)}")
        rows = await self._db.read(lambda repo: repo.customer_report(group, created_from, created_to, filters))
        totals: dict[str, Any] = {}
        for row in rows:
            for name, value in row.items():
                if name != group and value is not None:
                    totals[name] = totals.get(name, 0) + value
        return CustomerReport(group, [customer_metrics(r) for r in rows], customer_metrics(totals))
