"""The advertiser portal (`/ui/a/`): what the advertiser owes and why, its offers, the review of its
conversions (approve, or reject with a reason), its stats, and how to send conversions (its postback token,
postback URLs per offer and event, the pixel, its Segment sources).

Every read goes through the services with the advertiser's scope, and every page shows the advertiser's
views only (`OfferAdvertiserView`, `ConversionAdvertiserView`, the advertiser's report rows): an advertiser
never sees payout or profit, because the types it is shown lack them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Final
from urllib.parse import urlencode

from fastapi import APIRouter, Query
from starlette.requests import Request
from starlette.responses import Response

from tracklane.domain.errors import InvalidParameter, NotFound
from tracklane.domain.model import ConversionMethod, ConversionStatus, Offer
from tracklane.resources.conversions import ConversionChange
from tracklane.resources.decoding import convert
from tracklane.resources.offers import (
    OfferAdvertiserView,
    OfferEventRoleView,
    offer_advertiser_view,
    offer_event_view_for,
)
from tracklane.services.ports import Page
from tracklane.services.registry import Services
from tracklane.web.api.listing import PathId
from tracklane.web.ui import dates, portal
from tracklane.web.ui.portal import Kpi, change
from tracklane.web.ui.routing import PageRoute, page, redirect
from tracklane.web.ui.session import AdvertiserViewer, Viewer, notify, services_of, viewer_form

router = APIRouter(prefix="/ui/a", route_class=PageRoute, include_in_schema=False)
Text = Annotated[str | None, Query(max_length=100)]

STATS_GROUPS: Final = {"day": "Day", "offer": "Offer", "partner": "Partner"}
#: The verdicts an advertiser gives from its conversion list.
REVIEW: Final = (ConversionStatus.APPROVED.value, ConversionStatus.REJECTED.value)
_ALL: Final = 500


def _advertiser_id(viewer: Viewer) -> int:
    if viewer.scope.advertiser_id is None:
        raise NotFound("there is no such page")
    return viewer.scope.advertiser_id


@router.get("/")
async def home(request: Request, viewer: AdvertiserViewer) -> Response:
    services, scope = services_of(request), viewer.scope
    advertiser = await services.catalog.get_advertiser(_advertiser_id(viewer))
    zone = dates.program_zone(request)
    week = dates.last_days(7, zone)
    now, before, _ = await portal.performance(services, scope, week, "revenue")
    chart_range = dates.last_days(30, zone)
    chart_rows = await portal.report_rows(services, scope, ("day",), chart_range)
    kpis = [
        Kpi("Clicks", now.clicks, change=change(now.clicks, before.clicks)),
        Kpi("Conversions", now.conversions, change=change(now.conversions, before.conversions)),
    ]
    for currency in sorted(set(now.currencies) | set(before.currencies)):
        kpis.append(Kpi("Revenue owed", now.amount(currency), currency,
                        change(now.amount(currency), before.amount(currency))))  # fmt: skip
        kpis.append(Kpi("Pending review", now.pending_amount(currency), currency))
    latest = await services.conversions.list(scope, Page(limit=10))
    return page(
        request,
        viewer,
        "advertiser_home.html",
        advertiser=advertiser,
        kpis=kpis,
        pending=now.pending,
        chart=portal.day_chart(chart_rows, chart_range, "revenue", "Revenue"),
        chart_range=chart_range,
        latest=latest,
        offer_names=await portal.offer_names(services, scope),
    )


@router.get("/offers")
async def offers(request: Request, viewer: AdvertiserViewer, status: Text = None, cursor: Text = None) -> Response:
    _advertiser_id(viewer)
    shown = portal.choice(status, ("active", "paused"), "status")
    found = await services_of(request).catalog.offers_seen_by(
        viewer.scope, portal.list_page(portal.cursor_of(cursor), status=shown)
    )
    return page(
        request,
        viewer,
        "advertiser_offers.html",
        offers=[offer_advertiser_view(o) for o in found],
        status_filter=shown or "",
        next_page=portal.next_link("/ui/a/offers", {"status": shown}, found),
    )


# conversions


@router.get("/conversions")
async def conversions(
    request: Request,
    viewer: AdvertiserViewer,
    status: Text = None,
    offer_id: Text = None,
    from_: Annotated[str | None, Query(alias="from", max_length=40)] = None,
    to: Annotated[str | None, Query(max_length=40)] = None,
    cursor: Text = None,
) -> Response:
    _advertiser_id(viewer)
    services = services_of(request)
    shown = portal.choice(status, [s.value for s in ConversionStatus], "status")
    only = portal.optional_id(offer_id, "offer_id")
    created = dates.date_range(from_, to, dates.program_zone(request)) if from_ or to else None
    found = await services.conversions.list(
        viewer.scope, portal.list_page(portal.cursor_of(cursor), created, status=shown, offer_id=only)
    )
    filters = {"status": shown, "offer_id": only, "from": from_, "to": to}
    here = "/ui/a/conversions" + (
        f"?{urlencode({k: v for k, v in filters.items() if v})}" if any(filters.values()) else ""
    )
    return page(
        request,
        viewer,
        "advertiser_conversions.html",
        conversions=found,
        offer_names=await portal.offer_names(services, viewer.scope),
        statuses=[s.value for s in ConversionStatus],
        status_filter=shown or "",
        offer_id=only,
        created=created,
        back=here,
        next_page=portal.next_link("/ui/a/conversions", filters, found),
    )


@router.get("/conversions/{conversion_id}")
async def conversion(request: Request, viewer: AdvertiserViewer, conversion_id: PathId) -> Response:
    _advertiser_id(viewer)
    services = services_of(request)
    found = await services.conversions.get(viewer.scope, conversion_id)
    names = await portal.offer_names(services, viewer.scope)
    return page(request, viewer, "advertiser_conversion.html", conversion=found, offer_names=names,
                back=f"/ui/a/conversions/{found.id}")  # fmt: skip


def _back(raw: object) -> str:
    """Where to go after a verdict: a page of the conversion list or a conversion (never anywhere else)."""
    target = str(raw or "")
    if target.startswith("/ui/a/conversions") and "//" not in target and "\\" not in target:
        return target
    return "/ui/a/conversions"


@router.post("/conversions/{conversion_id}/status")
async def change_status(request: Request, viewer: AdvertiserViewer, conversion_id: PathId) -> Response:
    form = await viewer_form(request, viewer)
    _advertiser_id(viewer)
    back = _back(form.get("back"))
    verdict = portal.choice(str(form.get("status", "")), REVIEW, "status")
    if verdict is None:
        raise InvalidParameter("status", "is required")
    reason = str(form.get("reason", "")).strip()
    body = {"status": verdict, **({"reason": reason} if reason else {})}
    actor = f"{viewer.user.email} (advertiser user #{viewer.user.id})"
    response = redirect(back)
    try:
        changed = await services_of(request).conversions.change(
            viewer.scope, conversion_id, convert(body, ConversionChange), actor
        )
    except InvalidParameter as refused:
        notify(request, response, f"Conversion #{conversion_id} was not changed: {refused.field} {refused.detail}.")
        return response
    notify(request, response, f"Conversion #{changed.id} is {changed.status.value}.")
    return response


# stats


@router.get("/stats")
async def stats(
    request: Request,
    viewer: AdvertiserViewer,
    group_by: Text = None,
    from_: Annotated[str | None, Query(alias="from", max_length=40)] = None,
    to: Annotated[str | None, Query(max_length=40)] = None,
    offer_id: Text = None,
) -> Response:
    _advertiser_id(viewer)
    asked = portal.StatsAsked(group_by, from_, to, offer_id)
    context = await portal.stats_context(
        services_of(request),
        viewer.scope,
        dates.program_zone(request),
        asked,
        STATS_GROUPS,
        ("revenue", "Revenue"),
        _label,
    )
    return page(request, viewer, "advertiser_stats.html", **context)


def _label(grouping: str, value: object, names: dict[int, str]) -> str:
    if grouping == "offer":
        return names.get(value, f"Offer #{value}") if isinstance(value, int) else "(unknown offer)"
    if grouping == "partner":
        return f"Partner #{value}" if value is not None else "(unknown partner)"
    return str(value)[:10]


# integration


@dataclass(frozen=True, slots=True)
class OfferIntegration:
    """An offer with its events and the ways it accepts conversions."""

    offer: OfferAdvertiserView
    events: list[OfferEventRoleView]

    @property
    def by_postback(self) -> bool:
        return ConversionMethod.POSTBACK in self.offer.conversion_methods

    @property
    def by_pixel(self) -> bool:
        return ConversionMethod.PIXEL in self.offer.conversion_methods

    @property
    def by_sdk(self) -> bool:
        return ConversionMethod.SDK in self.offer.conversion_methods

    @property
    def by_segment(self) -> bool:
        return ConversionMethod.SEGMENT in self.offer.conversion_methods


async def _offers(services: Services, viewer: Viewer) -> list[Offer]:
    found: list[Offer] = []
    cursor: int | None = None
    while True:
        batch = await services.catalog.offers_seen_by(viewer.scope, Page(limit=_ALL, cursor=cursor))
        found.extend(batch)
        if len(batch) < _ALL:
            return found
        cursor = batch[-1].id


@router.get("/integration")
async def integration(request: Request, viewer: AdvertiserViewer) -> Response:
    services = services_of(request)
    advertiser_id = _advertiser_id(viewer)
    advertiser = await services.catalog.get_advertiser(advertiser_id)
    offers = []
    base = services.settings.base_url
    for offer in await _offers(services, viewer):
        events = await services.catalog.list_offer_events(offer.id)
        offers.append(OfferIntegration(offer_advertiser_view(offer),
                                       [offer_event_view_for(viewer.scope, e, offer, [], base, None)
                                        for e in events]))  # fmt: skip
    sources = await services.sources.list(Page(limit=_ALL, filters={"advertiser_id": advertiser_id}))
    return page(
        request,
        viewer,
        "advertiser_integration.html",
        token=advertiser.postback_token,
        base_url=services.settings.base_url,
        offers=offers,
        sources=sources,
    )
