"""Customer metrics per partner (or offer, or source): new and paying customers, payments, refunds, net revenue,
churn, acquisition cost and revenue per customer, from the sums the storage aggregates (each customer counted
once as new, paying or churned: `domain/segment/activity.py`)."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

_CENT = Decimal("0.01")
_RATE = Decimal("0.0001")


def customer_metrics(row: Mapping[str, Any]) -> dict[str, Any]:
    """Add the derived metrics to one row of sums.

    The row carries `new_customers`, `paying_customers`, `payments`, `payment_amount`, `refunds`,
    `refund_amount`, `churned`, `payout`; net revenue is payments minus refunds, churn rate is churned / new
    customers, acquisition cost is payout / new customers, revenue per customer is net revenue / new customers.
    """
    result = dict(row)
    new = int(row.get("new_customers", 0))
    net = Decimal(row.get("payment_amount", 0)) - Decimal(row.get("refund_amount", 0))
    result["net_revenue"] = net
    result["churn_rate"] = (Decimal(int(row.get("churned", 0))) / new).quantize(_RATE) if new else None
    result["acquisition_cost"] = (Decimal(row.get("payout", 0)) / new).quantize(_CENT) if new else None
    result["revenue_per_customer"] = (net / new).quantize(_CENT) if new else None
    return result
