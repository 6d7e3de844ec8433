"""Customers seen through Segment calls, the messages a source received, the customer metrics report and the
custom events report, as the admin API shows them (only admins see them for now)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any, Literal

from tracklane.domain.money import format_money
from tracklane.domain.segment.model import Customer, MessageOutcome, StoredMessage
from tracklane.resources.fields import UNSET, MoneyText, Unset, View

CustomerGroup = Literal["partner", "offer", "source"]
CustomerEventGroup = Literal["partner", "offer", "source", "customer"]


class CustomerView(View, frozen=True):
    """A person: their ids, traits, group, audiences, status, the click that acquired them, and how many times
    they sent each custom event (`events`, by name)."""

    id: int
    source_id: int
    user_id: str | None
    anonymous_ids: list[str]
    previous_ids: list[str]
    traits: dict[str, Any]
    group_id: str | None
    group_traits: dict[str, Any]
    audiences: list[str]
    status: str
    transaction_id: str | None
    offer_id: int | None
    partner_id: int | None
    visits: int
    signed_up_at: datetime | None
    churned_at: datetime | None
    created_at: datetime
    updated_at: datetime
    events: dict[str, int]


def customer_view(c: Customer) -> CustomerView:
    return CustomerView(
        id=c.id, source_id=c.source_id, user_id=c.user_id, anonymous_ids=list(c.anonymous_ids),
        previous_ids=list(c.previous_ids), traits=dict(c.traits), group_id=c.group_id,
        group_traits=dict(c.group_traits), audiences=list(c.audiences), status=c.status,
        transaction_id=c.transaction_id, offer_id=c.offer_id, partner_id=c.partner_id, visits=c.visits,
        signed_up_at=c.signed_up_at, churned_at=c.churned_at, created_at=c.created_at, updated_at=c.updated_at,
        events=dict(c.events),
    )  # fmt: skip


class SegmentMessageView(View, frozen=True):
    """A received message: its ids, corrected timestamp, outcome and what it was mapped to."""

    id: int
    source_id: int
    message_id: str
    type: str
    event: str | None
    user_id: str | None
    anonymous_id: str | None
    timestamp: datetime
    original_timestamp: datetime
    sent_at: datetime | None
    received_at: datetime
    relayed: bool
    outcome: MessageOutcome
    detail: str | None
    conversion_id: int | None
    customer_id: int | None
    mapped: dict[str, Any]
    payload: dict[str, Any]
    created_at: datetime


def segment_message_view(m: StoredMessage) -> SegmentMessageView:
    return SegmentMessageView(
        id=m.id, source_id=m.source_id, message_id=m.message_id, type=m.type, event=m.event, user_id=m.user_id,
        anonymous_id=m.anonymous_id, timestamp=m.timestamp, original_timestamp=m.original_timestamp,
        sent_at=m.sent_at, received_at=m.received_at, relayed=m.relayed, outcome=m.outcome, detail=m.detail,
        conversion_id=m.conversion_id, customer_id=m.customer_id, mapped=dict(m.mapped), payload=dict(m.payload),
        created_at=m.created_at,
    )  # fmt: skip


class CustomerMetricsView(View, frozen=True):
    """Sums and derived metrics; money and ratios as decimal strings, a ratio null without new customers."""

    new_customers: int = 0
    paying_customers: int = 0
    payments: int = 0
    payment_amount: MoneyText = "0.00"
    refunds: int = 0
    refund_amount: MoneyText = "0.00"
    churned: int = 0
    payout: MoneyText = "0.00"
    net_revenue: MoneyText = "0.00"
    churn_rate: str | None = None
    acquisition_cost: MoneyText | None = None
    revenue_per_customer: MoneyText | None = None


class CustomerReportRow(CustomerMetricsView, frozen=True):
    """One group's metrics; the group's id is under its dimension's name (`partner`, `offer` or `source`)."""

    partner: int | Unset | None = UNSET
    offer: int | Unset | None = UNSET
    source: int | Unset | None = UNSET


class CustomerReportView(View, frozen=True):
    rows: list[CustomerReportRow]
    totals: CustomerMetricsView


_COUNTS = ("new_customers", "paying_customers", "payments", "refunds", "churned")
_AMOUNTS = ("payment_amount", "refund_amount", "payout", "net_revenue", "churn_rate", "acquisition_cost",
            "revenue_per_customer")  # fmt: skip


def customer_report_view(
    group_by: CustomerGroup, rows: Sequence[Mapping[str, Any]], totals: Mapping[str, Any]
) -> CustomerReportView:
    """The report from the metrics of each group (`domain.segment.metrics.customer_metrics`) and of all."""
    shown = [CustomerReportRow(**_metrics(row), **_group(group_by, row)) for row in rows]
    return CustomerReportView(rows=shown, totals=CustomerMetricsView(**_metrics(totals)))


def _group(group_by: CustomerGroup, row: Mapping[str, Any]) -> dict[str, Any]:
    key = row.get(group_by)
    return {group_by: None if key is None else int(key)}


def _metrics(row: Mapping[str, Any]) -> dict[str, Any]:
    values: dict[str, Any] = {name: int(row[name]) for name in _COUNTS if row.get(name) is not None}
    for name in _AMOUNTS:
        value = row.get(name)
        if value is not None:
            values[name] = format_money(Decimal(value), "USD")
    return values


class CustomerEventTotal(View, frozen=True):
    """One custom event over all groups: how many times it was sent, and by how many customers."""

    event: str
    count: int
    customers: int


class CustomerEventRow(CustomerEventTotal, frozen=True):
    """One custom event of one group; the group's id is under its dimension's name."""

    partner: int | Unset | None = UNSET
    offer: int | Unset | None = UNSET
    source: int | Unset | None = UNSET
    customer: int | Unset | None = UNSET


class CustomerEventReportView(View, frozen=True):
    rows: list[CustomerEventRow]
    totals: list[CustomerEventTotal]


def customer_event_report_view(
    group_by: CustomerEventGroup, rows: Sequence[Mapping[str, Any]], totals: Sequence[Mapping[str, Any]]
) -> CustomerEventReportView:
    shown = [
        CustomerEventRow(event=r["event"], count=int(r["count"]), customers=int(r["customers"]),
                         **{group_by: None if r.get(group_by) is None else int(r[group_by])})
        for r in rows
    ]  # fmt: skip
    return CustomerEventReportView(
        rows=shown,
        totals=[CustomerEventTotal(event=t["event"], count=int(t["count"]), customers=int(t["customers"]))
                for t in totals],
    )  # fmt: skip
