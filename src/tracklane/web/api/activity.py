"""Routes over what traffic did: clicks and conversions (list, status changes with reason); the report is
`tracklane.web.api.reports`.

Each answer is the caller's role's view (`tracklane.resources.clicks`, `.conversions`). A click or
conversion of another tenant is a 404 on every verb, like one that does not exist; a list filter naming
another tenant (`advertiser_id=` of another advertiser, `partner_id=` of another partner) is a 403.
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Path, Query, Response

from tracklane.domain.model import ConversionStatus
from tracklane.domain.tenancy import scope_of
from tracklane.resources.clicks import ClickAdvertiserView, ClickPartnerView, ClickView
from tracklane.resources.conversions import (
    ConversionAdvertiserView,
    ConversionChange,
    ConversionPartnerView,
    ConversionView,
)
from tracklane.services.ports import Page
from tracklane.web.api.auth import Caller, Reviewer, Services
from tracklane.web.api.contract import body, documented, encoded, listing
from tracklane.web.api.listing import PathId, QueryId, listed, page, with_filters

router = APIRouter()
Paging = Annotated[Page, Depends(page)]
TransactionId = Annotated[str, Path(min_length=1, max_length=64, description="the click's transaction_id")]
Text = Annotated[str | None, Query(max_length=255)]

ClickList = listing(ClickView, "ClickList")
ClickAdvertiserList = listing(ClickAdvertiserView, "ClickAdvertiserList")
ClickPartnerList = listing(ClickPartnerView, "ClickPartnerList")
ConversionList = listing(ConversionView, "ConversionList")
ConversionAdvertiserList = listing(ConversionAdvertiserView, "ConversionAdvertiserList")
ConversionPartnerList = listing(ConversionPartnerView, "ConversionPartnerList")


@router.get(
    "/clicks",
    tags=["clicks"],
    openapi_extra=documented(responses={200: ClickList | ClickAdvertiserList | ClickPartnerList}),
)
async def list_clicks(
    services: Services,
    scope: Caller,
    paging: Paging,
    offer_id: QueryId = None,
    partner_id: QueryId = None,
    advertiser_id: QueryId = None,
    verdict: Annotated[Literal["accepted", "rejected"] | None, Query()] = None,
    reject_reason: Text = None,
    source_id: Text = None,
    sub1: Text = None,
) -> Response:
    """Raw clicks, newest first, filtered by offer, partner, advertiser, verdict, reason, source or sub1."""
    filters = {"offer_id": offer_id, "partner_id": partner_id, "advertiser_id": advertiser_id, "verdict": verdict,
               "reject_reason": reject_reason, "source_id": source_id, "sub1": sub1}  # fmt: skip
    views = await services.reports.clicks(scope, with_filters(paging, **filters))
    return encoded(listed(views, views, paging.limit))


@router.get(
    "/clicks/{transaction_id}",
    tags=["clicks"],
    openapi_extra=documented(responses={200: ClickView | ClickAdvertiserView | ClickPartnerView}),
)
async def get_click(transaction_id: TransactionId, services: Services, scope: Caller) -> Response:
    return encoded(await services.reports.click(scope, transaction_id))


@router.get(
    "/conversions",
    tags=["conversions"],
    openapi_extra=documented(responses={200: ConversionList | ConversionAdvertiserList | ConversionPartnerList}),
)
async def list_conversions(
    services: Services,
    scope: Caller,
    paging: Paging,
    transaction_id: Text = None,
    offer_id: QueryId = None,
    partner_id: QueryId = None,
    advertiser_id: QueryId = None,
    event_id: QueryId = None,
    status: Annotated[ConversionStatus | None, Query()] = None,
    order_id: Text = None,
) -> Response:
    """Conversions and events, newest first, each with its trace (as the caller's role may see it)."""
    filters = {
        "transaction_id": transaction_id,
        "offer_id": offer_id,
        "partner_id": partner_id,
        "advertiser_id": advertiser_id,
        "event_id": event_id,
        "status": status,
        "order_id": order_id,
    }
    views = await services.conversions.list(scope, with_filters(paging, **filters))
    return encoded(listed(views, views, paging.limit))


@router.get(
    "/conversions/{conversion_id}",
    tags=["conversions"],
    openapi_extra=documented(responses={200: ConversionView | ConversionAdvertiserView | ConversionPartnerView}),
)
async def get_conversion(conversion_id: PathId, services: Services, scope: Caller) -> Response:
    return encoded(await services.conversions.get(scope, conversion_id))


@router.patch(
    "/conversions/{conversion_id}",
    tags=["conversions"],
    openapi_extra=documented(
        body=ConversionChange,
        responses={200: ConversionView | ConversionAdvertiserView},
        example={"refund": "10.00", "reason": "ITEM_RETURNED: one of three items sent back"},
    ),
)
async def change_conversion(
    conversion_id: PathId,
    key: Reviewer,
    services: Services,
    payload: Annotated[ConversionChange, Depends(body(ConversionChange))],
) -> Response:
    """Approve, hold or reject a conversion, adjust its money (sale amount, partial refund, revenue, or,
    with an admin key, payout), or both in one write (the admin, or the advertiser it belongs to; a partner
    key is refused). Each change, who made it and why, is appended to the trace. Rejecting and adjusting need
    a reason."""
    actor = f"api key #{key.id} ({key.role.value})"
    return encoded(await services.conversions.change(scope_of(key), conversion_id, payload, actor))
