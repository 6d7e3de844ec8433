"""Routes of customers seen through Segment calls, the customer metrics report and the custom events report
(admin only for now)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Response

from tracklane.resources.customers import (
    CustomerEventReportView,
    CustomerReportView,
    CustomerView,
    customer_event_report_view,
    customer_report_view,
    customer_view,
)
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
    event: Annotated[str | None, Query(max_length=255, description="customers who sent this custom event")] = None,
) -> Response:
    identity = f"anonymous:{anonymous_id}" if anonymous_id else None
    filtered = with_filters(paging, source_id=source_id, partner_id=partner_id, offer_id=offer_id,
                            user_id=user_id, status=status, identity=identity, event=event or None)  # fmt: skip
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
    """Per partner (or offer, or source): new customers, paying customers, payments, refunds, net revenue,
    churned, churn rate, acquisition cost (payout of the group's Segment conversions / new customers) and
    revenue per customer; a customer counts once however many `signup` or `cancel` calls it sent."""
    filters = {k: v for k, v in {"partner_id": partner_id, "offer_id": offer_id, "source_id": source_id}.items()
               if v is not None}  # fmt: skip
    report = await services.customers.report(group_by, parse_time(from_, "from"), parse_time(to, "to"), filters)
    return encoded(customer_report_view(report.group_by, report.rows, report.totals))


@router.get(
    "/reports/customers/events", tags=["reports"], openapi_extra=documented(responses={200: CustomerEventReportView})
)
async def customer_event_report(
    services: Services,
    _: Admin,
    group_by: Annotated[str, Query(description="partner, offer, source or customer")] = "partner",
    from_: Annotated[str | None, Query(alias="from")] = None,
    to: Annotated[str | None, Query()] = None,
    partner_id: QueryId = None,
    offer_id: QueryId = None,
    source_id: QueryId = None,
    customer_id: QueryId = None,
    event: Annotated[str | None, Query(max_length=255, description="only this custom event")] = None,
) -> Response:
    """Custom events (tracks with no special meaning) per partner (or offer, source, customer) and event name:
    how many were sent (`count`) and by how many customers; `totals` per event name over all groups."""
    given = {"partner_id": partner_id, "offer_id": offer_id, "source_id": source_id, "customer_id": customer_id,
             "event": event or None}  # fmt: skip
    filters = {k: v for k, v in given.items() if v is not None}
    report = await services.customers.events(group_by, parse_time(from_, "from"), parse_time(to, "to"), filters)
    return encoded(customer_event_report_view(report.group_by, report.rows, report.totals))
