"""Routes of the catalogue: advertisers and partners (each with its public sign-up and a verdict on it),
offers, offer events, partner payouts and offer access."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Response

from tracklane.domain.model import AccessStatus, Offer, OfferEvent, OfferStatus, PartnerPayout, PartnerStatus, Role
from tracklane.domain.tenancy import Scope, narrow
from tracklane.resources.advertisers import (
    AdvertiserCreate,
    AdvertiserSignUp,
    AdvertiserSignUpView,
    AdvertiserStatus,
    AdvertiserUpdate,
    AdvertiserView,
    advertiser_signup_view,
    advertiser_view,
)
from tracklane.resources.offers import (
    OfferAccessCreate,
    OfferAccessUpdate,
    OfferAccessView,
    OfferAdvertiserView,
    OfferCreate,
    OfferEventAdvertiserView,
    OfferEventCreate,
    OfferEventPartnerView,
    OfferEventRoleView,
    OfferEventUpdate,
    OfferEventView,
    OfferPartnerView,
    OfferRoleView,
    OfferUpdate,
    OfferView,
    PartnerPayoutCreate,
    PartnerPayoutView,
    offer_access_view,
    offer_event_view_for,
    offer_view,
    offer_view_for,
    partner_payout_view,
)
from tracklane.resources.partners import (
    PartnerAdminView,
    PartnerCreate,
    PartnerUpdate,
    PartnerView,
    Verdict,
    decided_by_key,
    partner_admin_view,
    partner_view,
)
from tracklane.services.catalog import CatalogService
from tracklane.services.ports import Page
from tracklane.web.api.auth import Admin, Caller, Services
from tracklane.web.api.contract import body, documented, encoded, listing
from tracklane.web.api.listing import PathId, QueryId, listed, page, with_filters

router = APIRouter()
Paging = Annotated[Page, Depends(page)]


AdvertiserList = listing(AdvertiserView, "AdvertiserList")
PartnerList = listing(PartnerAdminView, "PartnerList")


@router.post(
    "/advertisers",
    status_code=201,
    tags=["advertisers"],
    openapi_extra=documented(body=AdvertiserCreate, responses={201: AdvertiserView}, example={
        "name": "Acme Shop", "billing": {"billing_frequency": "monthly", "payment_terms_days": 30}}),
)  # fmt: skip
async def create_advertiser(
    _: Admin, payload: Annotated[AdvertiserCreate, Depends(body(AdvertiserCreate))], services: Services
) -> Response:
    return encoded(advertiser_view(await services.catalog.create_advertiser(payload)), 201)


@router.post(
    "/advertiser-signups",
    status_code=201,
    tags=["advertisers"],
    openapi_extra=documented(
        body=AdvertiserSignUp,
        responses={201: AdvertiserSignUpView},
        errors=[409],
        example={"name": "Acme Shop", "email": "growth@acme.example", "contact_name": "Ada Lovelace"},
    ),
)
async def advertiser_signup(
    payload: Annotated[AdvertiserSignUp, Depends(body(AdvertiserSignUp))], services: Services
) -> Response:
    """Public sign-up: the advertiser is `pending`, and takes no billable traffic, until an admin gives a
    verdict; its contact becomes an invited user of its portal."""
    advertiser = await services.catalog.sign_up_advertiser(payload)
    return encoded(advertiser_signup_view(advertiser, payload.email), 201)


@router.get("/advertisers", tags=["advertisers"], openapi_extra=documented(responses={200: AdvertiserList}))
async def list_advertisers(
    services: Services, _: Admin, paging: Paging, status: Annotated[AdvertiserStatus | None, Query()] = None
) -> Response:
    items = await services.catalog.list_advertisers(with_filters(paging, status=status))
    return encoded(listed(items, [advertiser_view(a) for a in items], paging.limit))


@router.get(
    "/advertisers/{advertiser_id}", tags=["advertisers"], openapi_extra=documented(responses={200: AdvertiserView})
)
async def get_advertiser(advertiser_id: PathId, services: Services, _: Admin) -> Response:
    return encoded(advertiser_view(await services.catalog.get_advertiser(advertiser_id)))


@router.patch(
    "/advertisers/{advertiser_id}",
    tags=["advertisers"],
    openapi_extra=documented(body=AdvertiserUpdate, responses={200: AdvertiserView}, example={"status": "inactive"}),
)
async def update_advertiser(
    advertiser_id: PathId,
    _: Admin,
    payload: Annotated[AdvertiserUpdate, Depends(body(AdvertiserUpdate))],
    services: Services,
) -> Response:
    return encoded(advertiser_view(await services.catalog.update_advertiser(advertiser_id, payload)))


@router.post(
    "/advertisers/{advertiser_id}/verdict",
    tags=["advertisers"],
    openapi_extra=documented(body=Verdict, responses={200: AdvertiserView}, example={"verdict": "approved"}),
)
async def advertiser_verdict(
    advertiser_id: PathId, _: Admin, payload: Annotated[Verdict, Depends(body(Verdict))], services: Services
) -> Response:
    """Approve (`active`) or reject (`rejected`) a sign-up; `advertiser.updated` carries the new status."""
    return encoded(advertiser_view(await services.catalog.advertiser_verdict(advertiser_id, payload)))


@router.post(
    "/partners",
    status_code=201,
    tags=["partners"],
    openapi_extra=documented(
        body=PartnerCreate,
        responses={201: PartnerAdminView},
        errors=[409],
        example={"name": "Deal Hunters", "email": "team@dealhunters.example",
                 "billing": {"billing_frequency": "monthly", "payment_method": "wire"}},
    ),
)  # fmt: skip
async def create_partner(
    _: Admin, payload: Annotated[PartnerCreate, Depends(body(PartnerCreate))], services: Services
) -> Response:
    return encoded(partner_admin_view(await services.catalog.create_partner(payload, PartnerStatus.ACTIVE)), 201)


@router.post(
    "/partner-signups",
    status_code=201,
    tags=["partners"],
    openapi_extra=documented(
        body=PartnerCreate,
        responses={201: PartnerView},
        errors=[409],
        example={"name": "Coupon Club", "email": "hello@couponclub.example"},
    ),
)
async def partner_signup(
    payload: Annotated[PartnerCreate, Depends(body(PartnerCreate))], services: Services
) -> Response:
    """Public sign-up: the partner starts as `pending` until an admin gives a verdict."""
    return encoded(partner_view(await services.catalog.create_partner(payload, PartnerStatus.PENDING)), 201)


@router.get("/partners", tags=["partners"], openapi_extra=documented(responses={200: PartnerList}))
async def list_partners(
    services: Services, _: Admin, paging: Paging, status: Annotated[PartnerStatus | None, Query()] = None
) -> Response:
    items = await services.catalog.list_partners(with_filters(paging, status=status))
    return encoded(listed(items, [partner_admin_view(p) for p in items], paging.limit))


@router.get("/partners/{partner_id}", tags=["partners"], openapi_extra=documented(responses={200: PartnerAdminView}))
async def get_partner(partner_id: PathId, services: Services, _: Admin) -> Response:
    return encoded(partner_admin_view(await services.catalog.get_partner(partner_id)))


@router.patch(
    "/partners/{partner_id}",
    tags=["partners"],
    openapi_extra=documented(
        body=PartnerUpdate, responses={200: PartnerAdminView}, errors=[409], example={"status": "blocked"}
    ),
)
async def update_partner(
    partner_id: PathId, _: Admin, payload: Annotated[PartnerUpdate, Depends(body(PartnerUpdate))], services: Services
) -> Response:
    return encoded(partner_admin_view(await services.catalog.update_partner(partner_id, payload)))


@router.post(
    "/partners/{partner_id}/verdict",
    tags=["partners"],
    openapi_extra=documented(body=Verdict, responses={200: PartnerAdminView}, example={"verdict": "approved"}),
)
async def partner_verdict(
    partner_id: PathId, key: Admin, payload: Annotated[Verdict, Depends(body(Verdict))], services: Services
) -> Response:
    """Approve or reject a sign-up; `partner.signup_verdict` names this API key as who decided."""
    partner = await services.catalog.partner_verdict(partner_id, payload, decided_by_key(key))
    return encoded(partner_admin_view(partner))


OfferList = listing(OfferView, "OfferList")
OfferAdvertiserList = listing(OfferAdvertiserView, "OfferAdvertiserList")
OfferPartnerList = listing(OfferPartnerView, "OfferPartnerList")
OfferEventList = listing(OfferEventView, "OfferEventList")
OfferEventAdvertiserList = listing(OfferEventAdvertiserView, "OfferEventAdvertiserList")
OfferEventPartnerList = listing(OfferEventPartnerView, "OfferEventPartnerList")
PartnerPayoutList = listing(PartnerPayoutView, "PartnerPayoutList")
OfferAccessList = listing(OfferAccessView, "OfferAccessList")

_PRICE = {"type": "cpa", "amount": "6.00"}
_OFFER_EXAMPLE = {
    "advertiser_id": 1, "name": "Spring trial", "destination_url": "https://shop.example/land?tid={transaction_id}",
    "revenue": {"type": "cpa_cps", "amount": "2.00", "percent": "10"}, "payout": _PRICE,
    "caps": [{"metric": "conversions", "period": "day", "limit": 100}],
}  # fmt: skip


@router.post(
    "/offers",
    status_code=201,
    tags=["offers"],
    openapi_extra=documented(body=OfferCreate, responses={201: OfferView}, example=_OFFER_EXAMPLE),
)
async def create_offer(
    services: Services, _: Admin, payload: Annotated[OfferCreate, Depends(body(OfferCreate))]
) -> Response:
    return encoded(offer_view(await services.catalog.create_offer(payload)), 201)


@router.get(
    "/offers",
    tags=["offers"],
    openapi_extra=documented(responses={200: OfferList | OfferAdvertiserList | OfferPartnerList}),
)
async def list_offers(
    services: Services,
    scope: Caller,
    paging: Paging,
    advertiser_id: QueryId = None,
    status: Annotated[OfferStatus | None, Query()] = None,
) -> Response:
    """All offers (admin), the advertiser's own, or those a partner may run with its tracking link and payout."""
    filters = {"advertiser_id": advertiser_id, "status": status}
    if scope.role is not Role.PARTNER:
        filters = narrow(scope, filters)
    items = await services.catalog.offers_seen_by(scope, with_filters(paging, **filters))
    return encoded(listed(items, await _offer_views(services, scope, items), paging.limit))


@router.get(
    "/offers/{offer_id}",
    tags=["offers"],
    openapi_extra=documented(responses={200: OfferView | OfferAdvertiserView | OfferPartnerView}),
)
async def get_offer(offer_id: PathId, services: Services, scope: Caller) -> Response:
    """The offer as the caller's role sees it; an offer the caller may not see is not found."""
    (view,) = await _offer_views(services, scope, [await services.catalog.visible_offer(scope, offer_id)])
    return encoded(view)


async def _offer_views(services: Services, scope: Scope, offers: list[Offer]) -> list[OfferRoleView]:
    payouts = await _own_payouts(services.catalog, scope, [o.id for o in offers])
    return [offer_view_for(scope, o, payouts, services.settings.base_url) for o in offers]


async def _own_payouts(catalog: CatalogService, scope: Scope, offer_ids: list[int]) -> list[PartnerPayout]:
    """A partner's partner-specific payouts on these offers (no one else's view shows them)."""
    if scope.role is not Role.PARTNER or scope.partner_id is None:
        return []
    return await catalog.payouts_of_partner(scope.partner_id, offer_ids)


@router.patch(
    "/offers/{offer_id}",
    tags=["offers"],
    openapi_extra=documented(
        body=OfferUpdate, responses={200: OfferView}, example={"status": "paused", "fallback_url": None}
    ),
)
async def update_offer(
    offer_id: PathId, services: Services, _: Admin, payload: Annotated[OfferUpdate, Depends(body(OfferUpdate))]
) -> Response:
    return encoded(offer_view(await services.catalog.update_offer(offer_id, payload)))


@router.post(
    "/offers/{offer_id}/events",
    status_code=201,
    tags=["offers"],
    openapi_extra=documented(
        body=OfferEventCreate,
        responses={201: OfferEventView},
        errors=[409],
        example={
            "name": "purchase",
            "revenue": {"type": "cps", "percent": "30"},
            "payout": {"type": "cps", "percent": "20"},
            "allow_multiple_per_click": True,
        },
    ),
)
async def create_offer_event(
    offer_id: PathId,
    services: Services,
    _: Admin,
    payload: Annotated[OfferEventCreate, Depends(body(OfferEventCreate))],
) -> Response:
    event, offer = await services.catalog.create_offer_event(offer_id, payload)
    (view,) = await _event_views(services, Scope(Role.ADMIN), offer, [event])
    return encoded(view, 201)


@router.get(
    "/offers/{offer_id}/events",
    tags=["offers"],
    openapi_extra=documented(responses={200: OfferEventList | OfferEventAdvertiserList | OfferEventPartnerList}),
)
async def list_offer_events(offer_id: PathId, services: Services, scope: Caller) -> Response:
    """The offer's events as the caller's role sees them (a partner: its own payout for each); the admin's and
    the advertiser's views have each event's postback URL (the admin's with the advertiser's token)."""
    offer = await services.catalog.visible_offer(scope, offer_id)
    events = await services.catalog.list_offer_events(offer_id)
    return encoded({"data": await _event_views(services, scope, offer, events), "next_cursor": None})


async def _event_views(
    services: Services, scope: Scope, offer: Offer, events: list[OfferEvent]
) -> list[OfferEventRoleView]:
    payouts = await _own_payouts(services.catalog, scope, [offer.id])
    token = (await services.catalog.get_advertiser(offer.advertiser_id)).postback_token if scope.is_admin else None
    base = services.settings.base_url
    return [offer_event_view_for(scope, e, offer, payouts, base, token) for e in events]


@router.patch(
    "/offers/{offer_id}/events/{event_id}",
    tags=["offers"],
    openapi_extra=documented(
        body=OfferEventUpdate, responses={200: OfferEventView}, errors=[409], example={"allow_multiple_per_click": True}
    ),
)
async def update_offer_event(
    offer_id: PathId,
    event_id: PathId,
    services: Services,
    _: Admin,
    payload: Annotated[OfferEventUpdate, Depends(body(OfferEventUpdate))],
) -> Response:
    event, offer = await services.catalog.update_offer_event(offer_id, event_id, payload)
    (view,) = await _event_views(services, Scope(Role.ADMIN), offer, [event])
    return encoded(view)


@router.post(
    "/offers/{offer_id}/partner-payouts",
    status_code=201,
    tags=["offers"],
    openapi_extra=documented(
        body=PartnerPayoutCreate,
        responses={201: PartnerPayoutView},
        example={"partner_id": 1, "payout": {"type": "cpa", "amount": "7.50"}},
    ),
)
async def set_partner_payout(
    offer_id: PathId,
    services: Services,
    _: Admin,
    payload: Annotated[PartnerPayoutCreate, Depends(body(PartnerPayoutCreate))],
) -> Response:
    """A partner-specific payout for the base conversion or one event; it replaces an earlier one."""
    payout, offer = await services.catalog.set_partner_payout(offer_id, payload)
    return encoded(partner_payout_view(payout, offer.currency), 201)


@router.get(
    "/offers/{offer_id}/partner-payouts", tags=["offers"], openapi_extra=documented(responses={200: PartnerPayoutList})
)
async def list_partner_payouts(offer_id: PathId, services: Services, _: Admin) -> Response:
    payouts, offer = await services.catalog.list_partner_payouts(offer_id)
    return encoded({"data": [partner_payout_view(p, offer.currency) for p in payouts], "next_cursor": None})


@router.delete(
    "/offers/{offer_id}/partner-payouts/{payout_id}",
    status_code=204,
    tags=["offers"],
    openapi_extra=documented(responses={204: None}),
)
async def delete_partner_payout(offer_id: PathId, payout_id: PathId, services: Services, _: Admin) -> Response:
    await services.catalog.delete_partner_payout(offer_id, payout_id)
    return Response(status_code=204)


@router.post(
    "/offer-access",
    status_code=201,
    tags=["offer access"],
    openapi_extra=documented(
        body=OfferAccessCreate, responses={201: OfferAccessView}, example={"offer_id": 1, "partner_id": 1}
    ),
)
async def set_access(
    services: Services, _: Admin, payload: Annotated[OfferAccessCreate, Depends(body(OfferAccessCreate))]
) -> Response:
    """Give a partner access to an offer (default `approved`); it replaces the partner's earlier access."""
    return encoded(offer_access_view(await services.catalog.set_access(payload)), 201)


@router.get("/offer-access", tags=["offer access"], openapi_extra=documented(responses={200: OfferAccessList}))
async def list_access(
    services: Services,
    _: Admin,
    paging: Paging,
    offer_id: QueryId = None,
    partner_id: QueryId = None,
    status: Annotated[AccessStatus | None, Query()] = None,
) -> Response:
    items = await services.catalog.list_access(
        with_filters(paging, offer_id=offer_id, partner_id=partner_id, status=status)
    )
    return encoded(listed(items, [offer_access_view(a) for a in items], paging.limit))


@router.patch(
    "/offer-access/{access_id}",
    tags=["offer access"],
    openapi_extra=documented(
        body=OfferAccessUpdate,
        responses={200: OfferAccessView},
        example={"status": "rejected", "reason": "brand safety"},
    ),
)
async def update_access(
    access_id: PathId,
    services: Services,
    _: Admin,
    payload: Annotated[OfferAccessUpdate, Depends(body(OfferAccessUpdate))],
) -> Response:
    return encoded(offer_access_view(await services.catalog.update_access(access_id, payload)))
