"""Customers seen through Segment calls, the messages of a source, the customer metrics per partner, offer or
source, and the custom events per partner, offer, source or customer."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, get_args

from tracklane.domain.errors import InvalidParameter, NotFound
from tracklane.domain.segment.metrics import customer_metrics
from tracklane.domain.segment.model import Customer, StoredMessage
from tracklane.resources.customers import CustomerEventGroup, CustomerGroup
from tracklane.services.ports import Database, Page

GROUPS: tuple[CustomerGroup, ...] = get_args(CustomerGroup)
EVENT_GROUPS: tuple[CustomerEventGroup, ...] = get_args(CustomerEventGroup)
FILTERS = ("partner_id", "offer_id", "source_id")
EVENT_FILTERS = (*FILTERS, "customer_id", "event")


@dataclass(frozen=True, slots=True)
class CustomerReport:
    """The metrics of each group (`group_by` names the group's key in its row) and of all groups together."""

    group_by: CustomerGroup
    rows: list[dict[str, Any]]
    totals: dict[str, Any]


@dataclass(frozen=True, slots=True)
class CustomerEventReport:
    """Custom events per group and event name (`count`, `customers`), and per event name over all groups."""

    group_by: CustomerEventGroup
    rows: list[dict[str, Any]]
    totals: list[dict[str, Any]]


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

    async def events(
        self, group_by: str, created_from: datetime | None, created_to: datetime | None, filters: dict[str, Any]
    ) -> CustomerEventReport:
        """How many times each custom event was sent per partner (or offer, source, customer), and by how many
        customers; `filters` narrow by `partner_id`, `offer_id`, `source_id`, `customer_id` and `event`."""
        group = next((g for g in EVENT_GROUPS if g == group_by), None)
        if group is None:
            raise InvalidParameter("group_by", f"must be one of {', '.join(EVENT_GROUPS)}")
        unknown = sorted(set(filters) - set(EVENT_FILTERS))
        if unknown:
            raise InvalidParameter(unknown[0], "is not a filter of the custom events report")
        rows = await self._db.read(lambda repo: repo.customer_event_report(group, created_from, created_to, filters))
        totals: dict[str, dict[str, Any]] = {}
        for row in rows:
            total = totals.setdefault(row["event"], {"event": row["event"], "count": 0, "customers": 0})
            total["count"] += row["count"]
            total["customers"] += row["customers"]  # a customer counts for one partner, offer and source
        return CustomerEventReport(group, rows, [totals[name] for name in sorted(totals)])
