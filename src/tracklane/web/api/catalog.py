"""Routes of the catalogue: advertisers, partners (+ verdict, public sign-up), offers, offer events,
partner payouts and offer access."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response

from tracklane.bootstrap import Container
from tracklane.domain.model import Offer, PartnerStatus
from tracklane.domain.tenancy import Scope, narrow, redact
from tracklane.services.ports import Page
from tracklane.web.api import representations as rep
from tracklane.web.api import schemas
from tracklane.resources.advertisers import AdvertiserCreate, AdvertiserUpdate, AdvertiserView, advertiser_view
from tracklane.resources.partners import PartnerCreate, PartnerUpdate, PartnerView, Verdict, partner_view
from tracklane.web.api.auth import Admin, Caller, Services
from tracklane.web.api.contract import body, documented, encoded, listing
from tracklane.web.api.listing import PathId, listed, page, with_filters
from tracklane.web.params import json_object

router = APIRouter()
Paging = Annotated[Page, Depends(page)]


AdvertiserList = listing(AdvertiserView, "AdvertiserList")
PartnerList = listing(PartnerView, "PartnerList")


@router.post("/advertisers", status_code=201, tags=["advertisers"], openapi_extra=documented(
    body=AdvertiserCreate, responses={201: AdvertiserView}, example={"name": "Acme Shop"}))
async def create_advertiser(
    payload: Annotated[AdvertiserCreate, Depends(body(AdvertiserCreate))], services: Services, _: Admin
) -> Response:
    return encoded(advertiser_view(await services.catalog.create_advertiser(payload)), 201)


@router.get("/advertisers", tags=["advertisers"], openapi_extra=documented(responses={200: AdvertiserList}))
async def list_advertisers(services: Services, _: Admin, paging: Paging) -> Response:
    items = await services.catalog.list_advertisers(paging)
    return encoded(listed(items, [advertiser_view(a) for a in items], paging.limit))


@router.get("/advertisers/{advertiser_id}", tags=["advertisers"],
            openapi_extra=documented(responses={200: AdvertiserView}))
async def get_advertiser(advertiser_id: PathId, services: Services, _: Admin) -> Response:
    return encoded(advertiser_view(await services.catalog.get_advertiser(advertiser_id)))


@router.patch("/advertisers/{advertiser_id}", tags=["advertisers"], openapi_extra=documented(
    body=AdvertiserUpdate, responses={200: AdvertiserView}, example={"status": "inactive"}))
async def update_advertiser(
    advertiser_id: PathId, payload: Annotated[AdvertiserUpdate, Depends(body(AdvertiserUpdate))],
    services: Services, _: Admin,
) -> Response:
    return encoded(advertiser_view(await services.catalog.update_advertiser(advertiser_id, payload)))


@router.post("/partners", status_code=201, tags=["partners"], openapi_extra=documented(
    body=PartnerCreate, responses={201: PartnerView}, errors=[409],
    example={"name": "Deal Hunters", "email": "team@dealhunters.example"}))
async def create_partner(
    payload: Annotated[PartnerCreate, Depends(body(PartnerCreate))], services: Services, _: Admin
) -> Response:
    return encoded(partner_view(await services.catalog.create_partner(payload, PartnerStatus.ACTIVE)), 201)


@router.post("/partner-signups", status_code=201, tags=["partners"], openapi_extra=documented(
    body=PartnerCreate, responses={201: PartnerView}, errors=[409],
    example={"name": "Coupon Club", "email": "hello@couponclub.example"}))
async def partner_signup(payload: Annotated[PartnerCreate, Depends(body(PartnerCreate))], services: Services) -> Response:
    """Public sign-up: the partner starts as `pending` until an admin gives a verdict."""
    return encoded(partner_view(await services.catalog.create_partner(payload, PartnerStatus.PENDING)), 201)


@router.get("/partners", tags=["partners"], openapi_extra=documented(responses={200: PartnerList}))
async def list_partners(
    services: Services, _: Admin, paging: Paging, status: Annotated[PartnerStatus | None, Query()] = None
) -> Response:
    items = await services.catalog.list_partners(with_filters(paging, status=status))
    return encoded(listed(items, [partner_view(p) for p in items], paging.limit))


@router.get("/partners/{partner_id}", tags=["partners"], openapi_extra=documented(responses={200: PartnerView}))
async def get_partner(partner_id: PathId, services: Services, _: Admin) -> Response:
    return encoded(partner_view(await services.catalog.get_partner(partner_id)))


@router.patch("/partners/{partner_id}", tags=["partners"], openapi_extra=documented(
    body=PartnerUpdate, responses={200: PartnerView}, errors=[409], example={"status": "blocked"}))
async def update_partner(
    partner_id: PathId, payload: Annotated[PartnerUpdate, Depends(body(PartnerUpdate))], services: Services, _: Admin
) -> Response:
    return encoded(partner_view(await services.catalog.update_partner(partner_id, payload)))


@router.post("/partners/{partner_id}/verdict", tags=["partners"], openapi_extra=documented(
    body=Verdict, responses={200: PartnerView}, example={"verdict": "approved"}))
async def partner_verdict(
    partner_id: PathId, payload: Annotated[Verdict, Depends(body(Verdict))], services: Services, _: Admin
) -> Response:
    return encoded(partner_view(await services.catalog.partner_verdict(partner_id, payload)))


@router.post("/offers", status_code=201, tags=["offers"], openapi_extra=schemas.body_doc(schemas.OfferIn))
async def create_offer(request: Request, services: Services, _: Admin) -> dict[str, Any]:
    return rep.offer(await services.catalog.create_offer(await json_object(request)))


@router.get("/offers", tags=["offers"])
async def list_offers(
    services: Services, scope: Caller, paging: Paging,
    advertiser_id: Annotated[int | None, Query()] = None, status: Annotated[str | None, Query()] = None,
) -> dict[str, Any]:
    """All offers (admin), the advertiser's own, or those a partner may run, with its tracking link."""
    if scope.partner_id is not None:
        filters = {"advertiser_id": advertiser_id, "status": status}
        items = await services.catalog.list_offers_visible_to(scope.partner_id, with_filters(paging, **filters))
    else:
        filters = narrow(scope, {"advertiser_id": advertiser_id, "status": status})
        items = await services.catalog.list_offers(with_filters(paging, **filters))
    return listed(items, [_offer_view(services, scope, o) for o in items], paging.limit)


@router.get("/offers/{offer_id}", tags=["offers"])
async def get_offer(offer_id: int, services: Services, scope: Caller) -> dict[str, Any]:
    return _offer_view(services, scope, await services.catalog.visible_offer(scope, offer_id))


def _offer_view(services: Container, scope: Scope, offer: Offer) -> dict[str, Any]:
    body = redact(scope, rep.offer(offer))
    if scope.partner_id is not None:
        body["tracking_url"] = f"{services.settings.base_url}/r/{offer.id}/{scope.partner_id}"
    return body


@router.patch("/offers/{offer_id}", tags=["offers"], openapi_extra=schemas.body_doc(schemas.OfferUpdate))
async def update_offer(offer_id: int, request: Request, services: Services, _: Admin) -> dict[str, Any]:
    return rep.offer(await services.catalog.update_offer(offer_id, await json_object(request)))


@router.post("/offers/{offer_id}/events", status_code=201, tags=["offers"],
             openapi_extra=schemas.body_doc(schemas.OfferEventIn))
async def create_offer_event(offer_id: int, request: Request, services: Services, _: Admin) -> dict[str, Any]:
    event = await services.catalog.create_offer_event(offer_id, await json_object(request))
    offer = await services.catalog.get_offer(offer_id)
    return rep.offer_event(event, offer.currency)


@router.get("/offers/{offer_id}/events", tags=["offers"])
async def list_offer_events(offer_id: int, services: Services, scope: Caller) -> dict[str, Any]:
    offer = await services.catalog.visible_offer(scope, offer_id)
    events = await services.catalog.list_offer_events(offer_id)
    return {"data": [redact(scope, rep.offer_event(e, offer.currency)) for e in events], "next_cursor": None}


@router.patch("/offers/{offer_id}/events/{event_id}", tags=["offers"],
              openapi_extra=schemas.body_doc(schemas.OfferEventUpdate))
async def update_offer_event(
    offer_id: int, event_id: int, request: Request, services: Services, _: Admin
) -> dict[str, Any]:
    offer = await services.catalog.get_offer(offer_id)
    event = await services.catalog.update_offer_event(offer_id, event_id, await json_object(request))
    return rep.offer_event(event, offer.currency)


@router.post("/offers/{offer_id}/partner-payouts", status_code=201, tags=["offers"],
             openapi_extra=schemas.body_doc(schemas.PartnerPayoutIn))
async def set_partner_payout(offer_id: int, request: Request, services: Services, _: Admin) -> dict[str, Any]:
    """A partner-specific payout for the base conversion or one event; it replaces an earlier one."""
    payout = await services.catalog.set_partner_payout(offer_id, await json_object(request))
    offer = await services.catalog.get_offer(offer_id)
    return rep.partner_payout(payout, offer.currency)


@router.get("/offers/{offer_id}/partner-payouts", tags=["offers"])
async def list_partner_payouts(offer_id: int, services: Services, _: Admin) -> dict[str, Any]:
    offer = await services.catalog.get_offer(offer_id)
    payouts = await services.catalog.list_partner_payouts(offer_id)
    return {"data": [rep.partner_payout(p, offer.currency) for p in payouts], "next_cursor": None}


@router.delete("/offers/{offer_id}/partner-payouts/{payout_id}", status_code=204, tags=["offers"])
async def delete_partner_payout(offer_id: int, payout_id: int, services: Services, _: Admin) -> Response:
    await services.catalog.delete_partner_payout(payout_id)
    return Response(status_code=204)


@router.post("/offer-access", status_code=201, tags=["offer access"],
             openapi_extra=schemas.body_doc(schemas.OfferAccessIn))
async def set_access(request: Request, services: Services, _: Admin) -> dict[str, Any]:
    body = await json_object(request)
    access = await services.catalog.set_access(
        body.get("offer_id"), body.get("partner_id"), body.get("status", "approved"), body.get("reason")
    )
    return rep.access(access)


@router.get("/offer-access", tags=["offer access"])
async def list_access(
    services: Services, _: Admin, paging: Paging,
    offer_id: Annotated[int | None, Query()] = None, partner_id: Annotated[int | None, Query()] = None,
    status: Annotated[str | None, Query()] = None,
) -> dict[str, Any]:
    items = await services.catalog.list_access(
        with_filters(paging, offer_id=offer_id, partner_id=partner_id, status=status)
    )
    return listed(items, [rep.access(a) for a in items], paging.limit)


@router.patch("/offer-access/{access_id}", tags=["offer access"],
              openapi_extra=schemas.body_doc(schemas.OfferAccessUpdate))
async def update_access(access_id: int, request: Request, services: Services, _: Admin) -> dict[str, Any]:
    body = await json_object(request)
    current = await services.catalog.get_access(access_id)
    access = await services.catalog.set_access(current.offer_id, current.partner_id, body.get("status"),
                                               body.get("reason"))
    return rep.access(access)
