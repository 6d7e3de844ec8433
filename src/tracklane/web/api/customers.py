"""Routes of customers seen through Segment calls, and the customer metrics report."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query

from tracklane.services.ports import Page
from tracklane.web.api import representations as rep
from tracklane.web.api.auth import Admin, Services
from tracklane.web.api.listing import listed, page, parse_time, with_filters

router = APIRouter()


@router.get("/customers", tags=["customers"])
async def list_customers(
    services: Services, _: Admin, paging: Annotated[Page, Depends(page)],
    source_id: Annotated[int | None, Query()] = None,
    partner_id: Annotated[int | None, Query()] = None,
    offer_id: Annotated[int | None, Query()] = None,
    user_id: Annotated[str | None, Query(description="the current userId")] = None,
    anonymous_id: Annotated[str | None, Query()] = None,
    status: Annotated[str | None, Query(description="active or churned")] = None,
) -> dict[str, Any]:
    identity = f"anonymous:{anonymous_id}" if anonymous_id else None
    filtered = with_filters(paging, source_id=source_id, partner_id=partner_id, offer_id=offer_id,
                            user_id=user_id, status=status, identity=identity)
    items = await services.customers.list(filtered)
    return listed(items, [rep.customer(c) for c in items], paging.limit)


@router.get("/customers/{customer_id}", tags=["customers"])
async def get_customer(customer_id: int, services: Services, _: Admin) -> dict[str, Any]:
    return rep.customer(await services.customers.get(customer_id))


@router.get("/reports/customers", tags=["reports"])
async def customer_report(
    services: Services, _: Admin,
    group_by: Annotated[str, Query(description="partner, offer or source")] = "partner",
    from_: Annotated[str | None, Query(alias="from")] = None,
    to: Annotated[str | None, Query()] = None,
    partner_id: Annotated[int | None, Query()] = None,
    offer_id: Annotated[int | None, Query()] = None,
    source_id: Annotated[int | None, Query()] = None,
) -> dict[str, Any]:
    """Per partner: new customers, payments, refunds, net revenue, churned, churn rate, acquisition cost
    (payout of Segment conversions / new customers) and revenue per customer."""
    filters = {k: v for k, v in {"partner_id": partner_id, "offer_id": offer_id, "source_id": source_id}.items()
               if v is not None}
    result = await services.customers.report(group_by, parse_time(from_, "from"), parse_time(to, "to"), filters)
    return {
        "rows": [{k: rep.report_value(v) for k, v in row.items()} for row in result["rows"]],
        "totals": {k: rep.report_value(v) for k, v in result["totals"].items()},
    }
