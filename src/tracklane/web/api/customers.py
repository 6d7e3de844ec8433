"""Routes of customers seen through Segment calls, and the customer metrics report (admin only for now)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Response

from tracklane.resources.customers import CustomerReportView, CustomerView, customer_report_view, customer_view
from tracklane.services.ports import Page
from tracklane.web.api.auth import Admin, Services
from tracklane.web.api.contract import documented, encoded, listing
from tracklane.web.api.listing import PathId, QueryId, listed, page, parse_time, with_filters

router = APIRouter()

CustomerList = listing(CustomerView, "CustomerList")


@router.get("/customers", tags=["customers"], openapi_extra=documented(responses={200: CustomerList}))
async def list_customers(
    services: Services,
    _: Admin,
    paging: Annotated[Page, Depends(page)],
    source_id: QueryId = None,
    partner_id: QueryId = None,
    offer_id: QueryId = None,
    user_id: Annotated[str | None, Query(description="the current userId")] = None,
    anonymous_id: Annotated[str | None, Query()] = None,
    status: Annotated[str | None, Query(description="active or churned")] = None,
) -> Response:
    identity = f"anonymous:{anonymous_id}" if anonymous_id else None
    filtered = with_filters(paging, source_id=source_id, partner_id=partner_id, offer_id=offer_id,
                            user_id=user_id, status=status, identity=identity)  # fmt: skip
    items = await services.customers.list(filtered)
    return encoded(listed(items, [customer_view(c) for c in items], paging.limit))


@router.get("/customers/{customer_id}", tags=["customers"], openapi_extra=documented(responses={200: CustomerView}))
async def get_customer(customer_id: PathId, services: Services, _: Admin) -> Response:
    return encoded(customer_view(await services.customers.get(customer_id)))


@router.get("/reports/customers", tags=["reports"], openapi_extra=documented(responses={200: CustomerReportView}))
async def customer_report(
    services: Services,
    _: Admin,
    group_by: Annotated[str, Query(description="partner, offer or source")] = "partner",
    from_: Annotated[str | None, Query(alias="from")] = None,
    to: Annotated[str | None, Query()] = None,
    partner_id: QueryId = None,
    offer_id: QueryId = None,
    source_id: QueryId = None,
) -> Response:
    """Per partner: new customers, payments, refunds, net revenue, churned, churn rate, acquisition cost
    (payout of Segment conversions / new customers) and revenue per customer."""
    filters = {k: v for k, v in {"partner_id": partner_id, "offer_id": offer_id, "source_id": source_id}.items()
               if v is not None}  # fmt: skip
    report = await services.customers.report(group_by, parse_time(from_, "from"), parse_time(to, "to"), filters)
    return encoded(customer_report_view(report.group_by, report.rows, report.totals))
