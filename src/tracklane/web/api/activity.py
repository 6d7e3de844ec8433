"""Routes over what traffic did: clicks, conversions (list, status changes with reason) and reports."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request

from tracklane.bootstrap import Container
from tracklane.domain.errors import Forbidden, InvalidParameter, NotFound
from tracklane.domain.model import Conversion, Role
from tracklane.domain.tenancy import Scope, narrow, owns, redact, scope_of
from tracklane.services.ports import Page
from tracklane.services.reports import DIMENSIONS
from tracklane.web.api import representations as rep
from tracklane.web.api import schemas
from tracklane.web.api.auth import Caller, Key, Services
from tracklane.web.api.listing import listed, page, parse_time, with_filters
from tracklane.web.params import json_object

router = APIRouter()


@router.get("/clicks", tags=["clicks"])
async def list_clicks(
    services: Services, scope: Caller, paging: Annotated[Page, Depends(page)],
    offer_id: Annotated[int | None, Query()] = None,
    partner_id: Annotated[int | None, Query()] = None,
    advertiser_id: Annotated[int | None, Query()] = None,
    verdict: Annotated[Literal["accepted", "rejected"] | None, Query()] = None,
    reject_reason: Annotated[str | None, Query()] = None,
    source_id: Annotated[str | None, Query()] = None,
    sub1: Annotated[str | None, Query()] = None,
) -> dict[str, Any]:
    """Raw clicks, newest first, filtered by offer, partner, advertiser, verdict, reason, source or sub1."""
    filters = {"offer_id": offer_id, "partner_id": partner_id, "advertiser_id": advertiser_id, "verdict": verdict,
               "reject_reason": reject_reason, "source_id": source_id, "sub1": sub1}
    items = await services.reports.clicks(with_filters(paging, **narrow(scope, filters)))
    currencies = {offer_id: (await services.catalog.get_offer(offer_id)).currency
                  for offer_id in {c.offer_id for c in items if c.advertiser_id is not None}}
    data = [redact(scope, rep.click(c, currencies.get(c.offer_id, "USD"))) for c in items]
    return listed(items, data, paging.limit)


@router.get("/clicks/{transaction_id}", tags=["clicks"])
async def get_click(transaction_id: str, services: Services, scope: Caller) -> dict[str, Any]:
    click = await services.reports.click(transaction_id)
    if not owns(scope, click.advertiser_id, click.partner_id):
        raise NotFound(f"no click has transaction_id {transaction_id}")
    currency = "USD"
    if click.advertiser_id is not None:
        currency = (await services.catalog.get_offer(click.offer_id)).currency
    return redact(scope, rep.click(click, currency))


@router.get("/conversions", tags=["conversions"])
async def list_conversions(
    services: Services, scope: Caller, paging: Annotated[Page, Depends(page)],
    transaction_id: Annotated[str | None, Query()] = None,
    offer_id: Annotated[int | None, Query()] = None,
    partner_id: Annotated[int | None, Query()] = None,
    advertiser_id: Annotated[int | None, Query()] = None,
    event_id: Annotated[int | None, Query()] = None,
    status: Annotated[str | None, Query()] = None,
    order_id: Annotated[str | None, Query()] = None,
) -> dict[str, Any]:
    filters = {"transaction_id": transaction_id, "offer_id": offer_id, "partner_id": partner_id,
               "advertiser_id": advertiser_id, "event_id": event_id, "status": status, "order_id": order_id}
    items = await services.conversions.list(with_filters(paging, **narrow(scope, filters)))
    return listed(items, [redact(scope, rep.conversion(c)) for c in items], paging.limit)


@router.get("/conversions/{conversion_id}", tags=["conversions"])
async def get_conversion(conversion_id: int, services: Services, scope: Caller) -> dict[str, Any]:
    return redact(scope, rep.conversion(await _own_conversion(services, scope, conversion_id)))


async def _own_conversion(services: Container, scope: Scope, conversion_id: int) -> Conversion:
    conversion = await services.conversions.get(conversion_id)
    if not owns(scope, conversion.advertiser_id, conversion.partner_id):
        raise NotFound(f"conversion {conversion_id} does not exist")
    return conversion


@router.patch("/conversions/{conversion_id}", tags=["conversions"],
              openapi_extra=schemas.body_doc(schemas.ConversionStatusIn))
async def change_conversion_status(
    conversion_id: int, request: Request, services: Services, key: Key
) -> dict[str, Any]:
    """Approve, hold or reject a conversion (admin, or the advertiser it belongs to); the change and its
    reason are appended to the trace."""
    scope = scope_of(key)
    if scope.role is Role.PARTNER:
        raise Forbidden("a partner key cannot change a conversion's status")
    await _own_conversion(services, scope, conversion_id)
    body = await json_object(request)
    reason = body.get("reason")
    if reason is not None and not isinstance(reason, str):
        raise InvalidParameter("reason", "must be a string")
    conversion = await services.conversions.change_status(
        conversion_id, str(body.get("status")), reason, f"api key #{key.id} ({key.role.value})"
    )
    return redact(scope, rep.conversion(conversion))


@router.get("/reports", tags=["reports"])
async def report(
    services: Services, scope: Caller,
    group_by: Annotated[str, Query(description=f"comma-separated: {', '.join(DIMENSIONS)}")] = "offer",
    from_: Annotated[str | None, Query(alias="from")] = None,
    to: Annotated[str | None, Query()] = None,
    offer_id: Annotated[int | None, Query()] = None,
    partner_id: Annotated[int | None, Query()] = None,
    advertiser_id: Annotated[int | None, Query()] = None,
) -> dict[str, Any]:
    """Clicks (gross, billable, bot, rejected), conversions, events, revenue, payout, profit, CVR, EPC."""
    dimensions = [d.strip() for d in group_by.split(",") if d.strip()]
    filters = narrow(scope, {"offer_id": offer_id, "partner_id": partner_id, "advertiser_id": advertiser_id})
    result = await services.reports.run(dimensions, parse_time(from_, "from"), parse_time(to, "to"), filters)
    return {
        "rows": [redact(scope, {k: rep.report_value(v) for k, v in row.items()}) for row in result["rows"]],
        "totals": redact(scope, {k: rep.report_value(v) for k, v in result["totals"].items()}),
    }
