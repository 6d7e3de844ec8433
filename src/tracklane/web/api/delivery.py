"""Routes of outbound delivery: webhook endpoints (+ secret rotation, their deliveries), partner postbacks,
and the delivery log (list, one with its attempts, resend, replay a time range)."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Response

from tracklane.domain.delivery import DeliveryKind, DeliveryStatus
from tracklane.resources.deliveries import (
    DeliveryDetailView,
    DeliveryView,
    Replay,
    ReplayResult,
    delivery_detail_view,
    delivery_view,
)
from tracklane.resources.partner_postbacks import (
    PartnerPostbackCreate,
    PartnerPostbackUpdate,
    PartnerPostbackView,
    partner_postback_view,
)
from tracklane.resources.webhooks import (
    RotateSecret,
    WebhookCreate,
    WebhookEndpointIssued,
    WebhookEndpointView,
    WebhookUpdate,
    webhook_endpoint_issued,
    webhook_endpoint_view,
)
from tracklane.services.ports import Page
from tracklane.web.api.auth import Admin, PartnerSide, Services
from tracklane.web.api.contract import body, documented, encoded, listing, optional_body
from tracklane.web.api.listing import PathId, QueryId, listed, page, with_filters

router = APIRouter()
Paging = Annotated[Page, Depends(page)]

WebhookEndpointList = listing(WebhookEndpointView, "WebhookEndpointList")
PartnerPostbackList = listing(PartnerPostbackView, "PartnerPostbackList")
DeliveryList = listing(DeliveryView, "DeliveryList")


@router.post(
    "/webhooks",
    status_code=201,
    tags=["webhooks"],
    openapi_extra=documented(
        body=WebhookCreate,
        responses={201: WebhookEndpointIssued},
        example={"url": "https://hooks.example.com/tracklane", "event_types": ["conversion.registered"]},
    ),
)
async def create_webhook(
    _: Admin, payload: Annotated[WebhookCreate, Depends(body(WebhookCreate))], services: Services
) -> Response:
    """Register an endpoint; the answer carries its `whsec_` secret, shown this once."""
    issued = await services.webhooks.create(payload)
    return encoded(webhook_endpoint_issued(issued.endpoint, issued.secret), 201)


@router.get("/webhooks", tags=["webhooks"], openapi_extra=documented(responses={200: WebhookEndpointList}))
async def list_webhooks(services: Services, _: Admin, paging: Paging) -> Response:
    items = await services.webhooks.list(paging)
    return encoded(listed(items, [webhook_endpoint_view(e) for e in items], paging.limit))


@router.get(
    "/webhooks/{endpoint_id}", tags=["webhooks"], openapi_extra=documented(responses={200: WebhookEndpointView})
)
async def get_webhook(endpoint_id: PathId, services: Services, _: Admin) -> Response:
    return encoded(webhook_endpoint_view(await services.webhooks.get(endpoint_id)))


@router.patch(
    "/webhooks/{endpoint_id}",
    tags=["webhooks"],
    openapi_extra=documented(body=WebhookUpdate, responses={200: WebhookEndpointView}, example={"status": "active"}),
)
async def update_webhook(
    endpoint_id: PathId,
    _: Admin,
    payload: Annotated[WebhookUpdate, Depends(body(WebhookUpdate))],
    services: Services,
) -> Response:
    """Change `url`, `event_types`, `description`; `"status": "active"` re-enables a disabled endpoint."""
    return encoded(webhook_endpoint_view(await services.webhooks.update(endpoint_id, payload)))


@router.post(
    "/webhooks/{endpoint_id}/rotate-secret",
    tags=["webhooks"],
    openapi_extra=documented(body=RotateSecret, responses={200: WebhookEndpointIssued}, example={"overlap_hours": 24}),
)
async def rotate_webhook_secret(
    endpoint_id: PathId,
    _: Admin,
    payload: Annotated[RotateSecret, Depends(optional_body(RotateSecret))],
    services: Services,
) -> Response:
    """A new secret (shown once); the old one keeps signing too during the overlap (default 24 h; the body may
    be left out)."""
    issued = await services.webhooks.rotate_secret(endpoint_id, payload)
    return encoded(webhook_endpoint_issued(issued.endpoint, issued.secret))


@router.get(
    "/webhooks/{endpoint_id}/deliveries", tags=["webhooks"], openapi_extra=documented(responses={200: DeliveryList})
)
async def list_webhook_deliveries(
    endpoint_id: PathId,
    services: Services,
    _: Admin,
    paging: Paging,
    status: Annotated[DeliveryStatus | None, Query()] = None,
) -> Response:
    await services.webhooks.get(endpoint_id)
    filters = {"endpoint_id": endpoint_id, "status": _value(status)}
    items = await services.deliveries.list(with_filters(paging, **filters))
    return encoded(listed(items, [delivery_view(d) for d in items], paging.limit))


@router.post(
    "/partner-postbacks",
    status_code=201,
    tags=["partner postbacks"],
    openapi_extra=documented(
        body=PartnerPostbackCreate,
        responses={201: PartnerPostbackView},
        example={
            "partner_id": 3,
            "offer_id": 1,
            "on": "conversion",
            "url": "https://track.partner.example/pb?click={transaction_id}&payout={payout}&s1={sub1}",
        },
    ),
)
async def create_partner_postback(
    scope: PartnerSide,
    payload: Annotated[PartnerPostbackCreate, Depends(body(PartnerPostbackCreate))],
    services: Services,
) -> Response:
    """An admin registers a postback for any partner (`partner_id` required); a partner key for itself
    (`partner_id` may be left out). The template may name only macros the partner may see."""
    return encoded(partner_postback_view(await services.partner_postbacks.create(scope, payload)), 201)


@router.get(
    "/partner-postbacks", tags=["partner postbacks"], openapi_extra=documented(responses={200: PartnerPostbackList})
)
async def list_partner_postbacks(
    services: Services, scope: PartnerSide, paging: Paging, partner_id: QueryId = None
) -> Response:
    """Every postback (admin, optionally of one partner), or the partner key's own."""
    items = await services.partner_postbacks.list(scope, paging, partner_id)
    return encoded(listed(items, [partner_postback_view(p) for p in items], paging.limit))


@router.get(
    "/partner-postbacks/{postback_id}",
    tags=["partner postbacks"],
    openapi_extra=documented(responses={200: PartnerPostbackView}),
)
async def get_partner_postback(postback_id: PathId, services: Services, scope: PartnerSide) -> Response:
    return encoded(partner_postback_view(await services.partner_postbacks.get(scope, postback_id)))


@router.patch(
    "/partner-postbacks/{postback_id}",
    tags=["partner postbacks"],
    openapi_extra=documented(
        body=PartnerPostbackUpdate,
        responses={200: PartnerPostbackView},
        example={"method": "POST", "delay_seconds": 60},
    ),
)
async def update_partner_postback(
    postback_id: PathId,
    scope: PartnerSide,
    payload: Annotated[PartnerPostbackUpdate, Depends(body(PartnerPostbackUpdate))],
    services: Services,
) -> Response:
    """Change the template or options; `"status": "active"` re-activates a deactivated postback."""
    return encoded(partner_postback_view(await services.partner_postbacks.update(scope, postback_id, payload)))


@router.post(
    "/partner-postbacks/{postback_id}/test",
    status_code=202,
    tags=["partner postbacks"],
    openapi_extra=documented(responses={202: DeliveryView}, errors=(409,)),
)
async def test_partner_postback(postback_id: PathId, scope: PartnerSide, services: Services) -> Response:
    """Send a test now: the postback's URL (and for POST its body) with sample values, through the outbox, once,
    even while the postback is turned off. The answer is the queued delivery (`event_type` test); its outcome
    is in the delivery log. A 409 while an earlier test of the postback waits to be sent."""
    return encoded(delivery_view(await services.partner_postbacks.test(scope, postback_id)), 202)


@router.delete(
    "/partner-postbacks/{postback_id}",
    status_code=204,
    tags=["partner postbacks"],
    openapi_extra=documented(responses={204: None}),
)
async def delete_partner_postback(postback_id: PathId, scope: PartnerSide, services: Services) -> Response:
    """Delete the postback: it is listed and found no more and never fires again; its queued deliveries are
    skipped and its delivery log is kept for the admin (`GET /api/v1/deliveries?postback_id=`)."""
    await services.partner_postbacks.delete(scope, postback_id)
    return Response(status_code=204)


def _value(choice: StrEnum | None) -> str | None:
    """A filter's value as the column holds it."""
    return None if choice is None else choice.value


@router.get("/deliveries", tags=["deliveries"], openapi_extra=documented(responses={200: DeliveryList}))
async def list_deliveries(
    services: Services,
    _: Admin,
    paging: Paging,
    status: Annotated[DeliveryStatus | None, Query()] = None,
    kind: Annotated[DeliveryKind | None, Query()] = None,
    endpoint_id: QueryId = None,
    postback_id: QueryId = None,
    event_type: Annotated[str | None, Query()] = None,
) -> Response:
    filters = {"status": _value(status), "kind": _value(kind), "endpoint_id": endpoint_id,
               "postback_id": postback_id, "event_type": event_type}  # fmt: skip
    items = await services.deliveries.list(with_filters(paging, **filters))
    return encoded(listed(items, [delivery_view(d) for d in items], paging.limit))


@router.get(
    "/deliveries/{delivery_id}", tags=["deliveries"], openapi_extra=documented(responses={200: DeliveryDetailView})
)
async def get_delivery(delivery_id: PathId, services: Services, _: Admin) -> Response:
    """One delivery with its body and every attempt (status, latency, error class, first KB of the answer)."""
    delivery, attempts = await services.deliveries.get(delivery_id)
    return encoded(delivery_detail_view(delivery, attempts))


@router.post(
    "/deliveries/{delivery_id}/resend", tags=["deliveries"], openapi_extra=documented(responses={200: DeliveryView})
)
async def resend_delivery(delivery_id: PathId, services: Services, _: Admin) -> Response:
    """Send again now, with the same `webhook-id`."""
    return encoded(delivery_view(await services.deliveries.resend(delivery_id)))


@router.post(
    "/deliveries/replay",
    tags=["deliveries"],
    openapi_extra=documented(
        body=Replay,
        responses={200: ReplayResult},
        example={"from": "2026-01-01T00:00:00Z", "to": "2026-01-02T00:00:00Z", "statuses": "failed,skipped"},
    ),
)
async def replay_deliveries(
    _: Admin, payload: Annotated[Replay, Depends(body(Replay))], services: Services
) -> Response:
    """Queue again the failed and skipped deliveries created in [from, to), keeping their `webhook-id`."""
    return encoded(ReplayResult(replayed=await services.deliveries.replay(payload)))
