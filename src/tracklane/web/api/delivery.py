"""Routes of outbound delivery: webhook endpoints (+ secret rotation, their deliveries), partner postbacks,
and the delivery log (list, one with its attempts, resend, replay a time range)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request

from tracklane.bootstrap import Container
from tracklane.domain.errors import Forbidden, InvalidParameter, NotFound
from tracklane.domain.model import Role
from tracklane.domain.partner_postbacks import PartnerPostback
from tracklane.domain.tenancy import Scope, narrow, owns
from tracklane.services.ports import Page
from tracklane.web.api import representations as rep
from tracklane.web.api import schemas
from tracklane.web.api.auth import Admin, Caller, Services
from tracklane.web.api.listing import listed, page, parse_time, with_filters
from tracklane.web.params import json_object

router = APIRouter()
Paging = Annotated[Page, Depends(page)]


@router.post("/webhooks", status_code=201, tags=["webhooks"], openapi_extra=schemas.body_doc(schemas.WebhookIn))
async def create_webhook(request: Request, services: Services, _: Admin) -> dict[str, Any]:
    """Register an endpoint; the answer carries its `whsec_` secret, shown this once."""
    issued = await services.webhooks.create(await json_object(request))
    return rep.webhook_endpoint(issued.endpoint, issued.secret)


@router.get("/webhooks", tags=["webhooks"])
async def list_webhooks(services: Services, _: Admin, paging: Paging) -> dict[str, Any]:
    items = await services.webhooks.list(paging)
    return listed(items, [rep.webhook_endpoint(e) for e in items], paging.limit)


@router.get("/webhooks/{endpoint_id}", tags=["webhooks"])
async def get_webhook(endpoint_id: int, services: Services, _: Admin) -> dict[str, Any]:
    return rep.webhook_endpoint(await services.webhooks.get(endpoint_id))


@router.patch("/webhooks/{endpoint_id}", tags=["webhooks"], openapi_extra=schemas.body_doc(schemas.WebhookUpdate))
async def update_webhook(endpoint_id: int, request: Request, services: Services, _: Admin) -> dict[str, Any]:
    return rep.webhook_endpoint(await services.webhooks.update(endpoint_id, await json_object(request)))


@router.post("/webhooks/{endpoint_id}/rotate-secret", tags=["webhooks"],
             openapi_extra=schemas.body_doc(schemas.RotateSecretIn))
async def rotate_webhook_secret(endpoint_id: int, request: Request, services: Services, _: Admin) -> dict[str, Any]:
    """A new secret (shown once); the old one keeps signing too during the overlap (default 24 h)."""
    body = await json_object(request) if await request.body() else {}
    issued = await services.webhooks.rotate_secret(endpoint_id, body)
    return rep.webhook_endpoint(issued.endpoint, issued.secret)


@router.get("/webhooks/{endpoint_id}/deliveries", tags=["webhooks"])
async def list_webhook_deliveries(
    endpoint_id: int, services: Services, _: Admin, paging: Paging, status: Annotated[str | None, Query()] = None
) -> dict[str, Any]:
    await services.webhooks.get(endpoint_id)
    items = await services.deliveries.list(with_filters(paging, endpoint_id=endpoint_id, status=status))
    return listed(items, [rep.delivery(d) for d in items], paging.limit)


@router.post("/partner-postbacks", status_code=201, tags=["partner postbacks"],
             openapi_extra=schemas.body_doc(schemas.PartnerPostbackIn))
async def create_partner_postback(request: Request, services: Services, scope: Caller) -> dict[str, Any]:
    """An admin registers a postback for any partner; a partner key for itself (`partner_id` may be left out)."""
    body = dict(await json_object(request))
    if not scope.is_admin:
        body.update(narrow(_postback_owner(scope), {"partner_id": body.get("partner_id")}))
        if isinstance(body.get("offer_id"), int):
            await services.catalog.visible_offer(scope, body["offer_id"])
    return rep.partner_postback(await services.partner_postbacks.create(body))


@router.get("/partner-postbacks", tags=["partner postbacks"])
async def list_partner_postbacks(
    services: Services, scope: Caller, paging: Paging, partner_id: Annotated[int | None, Query()] = None
) -> dict[str, Any]:
    filters = narrow(_postback_owner(scope), {"partner_id": partner_id})
    items = await services.partner_postbacks.list(with_filters(paging, **filters))
    return listed(items, [rep.partner_postback(p) for p in items], paging.limit)


@router.get("/partner-postbacks/{postback_id}", tags=["partner postbacks"])
async def get_partner_postback(postback_id: int, services: Services, scope: Caller) -> dict[str, Any]:
    return rep.partner_postback(await _own_postback(services, scope, postback_id))


@router.patch("/partner-postbacks/{postback_id}", tags=["partner postbacks"],
              openapi_extra=schemas.body_doc(schemas.PartnerPostbackUpdate))
async def update_partner_postback(
    postback_id: int, request: Request, services: Services, scope: Caller
) -> dict[str, Any]:
    await _own_postback(services, scope, postback_id)
    body = await json_object(request)
    return rep.partner_postback(await services.partner_postbacks.update(postback_id, body))


def _postback_owner(scope: Scope) -> Scope:
    """Partner postbacks belong to partners: an admin manages all, a partner its own, an advertiser none."""
    if scope.role is Role.ADVERTISER:
        raise Forbidden("partner postbacks are managed by an admin or by the partner itself")
    return scope


async def _own_postback(services: Container, scope: Scope, postback_id: int) -> PartnerPostback:
    postback = await services.partner_postbacks.get(postback_id)
    if not owns(_postback_owner(scope), None, postback.partner_id):
        raise NotFound(f"partner postback {postback_id} does not exist")
    return postback


@router.get("/deliveries", tags=["deliveries"])
async def list_deliveries(
    services: Services, _: Admin, paging: Paging,
    status: Annotated[str | None, Query()] = None, kind: Annotated[str | None, Query()] = None,
    endpoint_id: Annotated[int | None, Query()] = None, postback_id: Annotated[int | None, Query()] = None,
    event_type: Annotated[str | None, Query()] = None,
) -> dict[str, Any]:
    filters = {"status": status, "kind": kind, "endpoint_id": endpoint_id, "postback_id": postback_id,
               "event_type": event_type}
    items = await services.deliveries.list(with_filters(paging, **filters))
    return listed(items, [rep.delivery(d) for d in items], paging.limit)


@router.get("/deliveries/{delivery_id}", tags=["deliveries"])
async def get_delivery(delivery_id: int, services: Services, _: Admin) -> dict[str, Any]:
    """One delivery with its body and every attempt (status, latency, error class, first KB of the answer)."""
    delivery, attempts = await services.deliveries.get(delivery_id)
    return rep.delivery(delivery, attempts)


@router.post("/deliveries/{delivery_id}/resend", tags=["deliveries"])
async def resend_delivery(delivery_id: int, services: Services, _: Admin) -> dict[str, Any]:
    """Send again now, with the same `webhook-id`."""
    return rep.delivery(await services.deliveries.resend(delivery_id))


@router.post("/deliveries/replay", tags=["deliveries"], openapi_extra=schemas.body_doc(schemas.ReplayIn))
async def replay_deliveries(request: Request, services: Services, _: Admin) -> dict[str, Any]:
    """Queue again the failed and skipped deliveries created in [from, to), keeping their `webhook-id`."""
    body = await json_object(request)
    statuses = body.get("statuses")
    if statuses is not None and not isinstance(statuses, str):
        raise InvalidParameter("statuses", "must be a comma-separated string")
    count = await services.deliveries.replay(
        parse_time(body.get("from"), "from"), parse_time(body.get("to"), "to"), statuses,
        _optional_id(body.get("endpoint_id"), "endpoint_id"), _optional_id(body.get("postback_id"), "postback_id"),
    )
    return {"replayed": count}


def _optional_id(raw: object, field: str) -> int | None:
    if raw is None:
        return None
    if isinstance(raw, bool) or not isinstance(raw, int) or raw <= 0:
        raise InvalidParameter(field, "must be a positive integer")
    return raw
