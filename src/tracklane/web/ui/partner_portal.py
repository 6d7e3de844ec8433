"""The partner portal (`/ui/p/`): the partner's performance, the offers it may run (and asks access to), its
tracking links, its postbacks with their delivery log (a test sent on demand, a postback turned off or deleted),
its stats and its conversions.

Every read goes through the services with the partner's scope, and every page shows the partner's views
only (`OfferPartnerView`, `ConversionPartnerView`, the partner's report rows): a partner never sees revenue,
profit, `adv1..adv5` or the advertiser's landing pages, because the types it is shown lack them. A partner
whose application is pending, or who was rejected or blocked, sees its status and nothing else.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, Final

from fastapi import APIRouter, Query
from starlette.requests import Request
from starlette.responses import Response

from tracklane.domain import routing as click_routing
from tracklane.domain.errors import Conflict, InvalidParameter, NotFound
from tracklane.domain.macros import AMOUNT, partner_macros
from tracklane.domain.model import (
    AccessStatus,
    ConversionStatus,
    Offer,
    OfferAccess,
    Partner,
    PartnerStatus,
    Visibility,
)
from tracklane.domain.partner_postbacks import FiresOn, PostbackStatus
from tracklane.domain.traffic import BlockStatus
from tracklane.resources.decoding import convert
from tracklane.resources.deliveries import delivery_view
from tracklane.resources.offers import OfferAccessCreate, OfferPartnerView, offer_event_view_for, offer_partner_view
from tracklane.resources.partner_postbacks import PartnerPostbackCreate, PartnerPostbackUpdate, partner_postback_view
from tracklane.services.ports import Page
from tracklane.services.registry import Services
from tracklane.web.api.listing import PathId
from tracklane.web.ui import dates, portal
from tracklane.web.ui.portal import Kpi, change
from tracklane.web.ui.routing import PageRoute, page, redirect
from tracklane.web.ui.session import PartnerViewer, Viewer, notify, services_of, viewer_form

router = APIRouter(prefix="/ui/p", route_class=PageRoute, include_in_schema=False)
Text = Annotated[str | None, Query(max_length=100)]

STATS_GROUPS: Final = {"day": "Day", "offer": "Offer", "sub1": "Sub ID 1"}
#: Why a click of this partner would not reach the offer because of its access (the rest is the offer's state).
NO_ACCESS: Final = frozenset({"offer_access_not_approved", "offer_access_rejected"})
_ALL: Final = 500


@dataclass(frozen=True, slots=True)
class OfferSeen:
    """An offer as the partner sees it, with its access to it."""

    offer: OfferPartnerView
    access: OfferAccess | None
    may_run: bool

    @property
    def may_request(self) -> bool:
        return self.offer.visibility is Visibility.APPROVAL_REQUIRED and self.access is None


# the partner and its access


def _partner_id(viewer: Viewer) -> int:
    if viewer.scope.partner_id is None:
        raise NotFound("there is no such page")
    return viewer.scope.partner_id


async def _open(request: Request, viewer: Viewer, home: bool = False) -> tuple[Partner, Response | None]:
    """The viewer's partner, and the status page to answer instead while it is not active."""
    partner = await services_of(request).catalog.get_partner(_partner_id(viewer))
    if partner.status is PartnerStatus.ACTIVE:
        return partner, None
    return partner, page(request, viewer, "partner_status.html", 200 if home else 403, partner=partner)


async def _access(services: Services, partner_id: int) -> dict[int, OfferAccess]:
    """The partner's access to each offer it asked for or was given, by offer id."""
    found: dict[int, OfferAccess] = {}
    cursor: int | None = None
    while True:
        batch = await services.catalog.list_access(Page(limit=_ALL, cursor=cursor, filters={"partner_id": partner_id}))
        for access in batch:
            found.setdefault(access.offer_id, access)
        if len(batch) < _ALL:
            return found
        cursor = batch[-1].id


async def _seen(services: Services, partner: Partner, offers: list[Offer]) -> list[OfferSeen]:
    access = await _access(services, partner.id)
    payouts = await services.catalog.payouts_of_partner(partner.id, [o.id for o in offers])
    base_url = services.settings.base_url
    return [
        OfferSeen(
            offer_partner_view(o, partner.id, payouts, base_url),
            access.get(o.id),
            click_routing.reject_reason(o, partner, access.get(o.id)) not in NO_ACCESS,
        )
        for o in offers
    ]


# home


@router.get("/")
async def home(request: Request, viewer: PartnerViewer) -> Response:
    partner, closed = await _open(request, viewer, home=True)
    if closed:
        return closed
    services, scope = services_of(request), viewer.scope
    zone = dates.program_zone(request)
    week = dates.last_days(7, zone)
    now, before, _ = await portal.performance(services, scope, week, "payout")
    chart_range = dates.last_days(30, zone)
    chart_rows = await portal.report_rows(services, scope, ("day",), chart_range)
    kpis = [
        Kpi("Clicks", now.clicks, change=change(now.clicks, before.clicks)),
        Kpi("Conversions", now.conversions, change=change(now.conversions, before.conversions)),
    ]
    for currency in sorted(set(now.currencies) | set(before.currencies)):
        kpis.append(
            Kpi("Payout", now.amount(currency), currency, change(now.amount(currency), before.amount(currency)))
        )
        kpis.append(Kpi("EPC", now.per_click(currency), currency,
                        change(now.per_click(currency), before.per_click(currency))))  # fmt: skip
        kpis.append(Kpi("Pending payout", now.pending_amount(currency), currency))
    latest = await services.conversions.list(scope, Page(limit=10))
    blocked = await services.traffic.blocks(scope, Page(limit=50, filters={"status": BlockStatus.ACTIVE.value}))
    return page(
        request,
        viewer,
        "partner_home.html",
        partner=partner,
        kpis=kpis,
        chart=portal.day_chart(chart_rows, chart_range, "payout", "Payout"),
        chart_range=chart_range,
        latest=latest,
        blocked=blocked,
        offer_names=await portal.offer_names(services, scope),
    )


# marketplace and offers


@router.get("/marketplace")
async def marketplace(
    request: Request, viewer: PartnerViewer, visibility: Text = None, cursor: Text = None
) -> Response:
    partner, closed = await _open(request, viewer)
    if closed:
        return closed
    services = services_of(request)
    shown = portal.choice(visibility, (Visibility.PUBLIC.value, Visibility.APPROVAL_REQUIRED.value), "visibility")
    offers = await services.catalog.offers_seen_by(viewer.scope, portal.list_page(portal.cursor_of(cursor),
                                                                                 visibility=shown))  # fmt: skip
    return page(
        request,
        viewer,
        "partner_marketplace.html",
        offers=await _seen(services, partner, offers),
        visibility=shown or "",
        next_page=portal.next_link("/ui/p/marketplace", {"visibility": shown}, offers),
    )


@router.post("/marketplace/{offer_id}/request")
async def request_access(request: Request, viewer: PartnerViewer, offer_id: PathId) -> Response:
    await viewer_form(request, viewer)
    partner, closed = await _open(request, viewer)
    if closed:
        return closed
    services = services_of(request)
    offer = await services.catalog.visible_offer(viewer.scope, offer_id)
    access = (await _access(services, partner.id)).get(offer.id)
    response = redirect("/ui/p/marketplace")
    if offer.visibility is not Visibility.APPROVAL_REQUIRED:
        notify(request, response, f"{offer.name} needs no approval: its tracking link is under My offers.")
    elif access is not None:
        notify(request, response, f"Your access to {offer.name} is already {access.status.value}.")
    else:
        await services.catalog.set_access(
            OfferAccessCreate(offer_id=offer.id, partner_id=partner.id, status=AccessStatus.REQUESTED)
        )
        notify(request, response, f"Access to {offer.name} requested: the program's manager will review it.")
    return response


@router.get("/offers")
async def offers(request: Request, viewer: PartnerViewer, cursor: Text = None) -> Response:
    partner, closed = await _open(request, viewer)
    if closed:
        return closed
    services = services_of(request)
    found = await services.catalog.offers_seen_by(viewer.scope, portal.list_page(portal.cursor_of(cursor)))
    runnable = [seen for seen in await _seen(services, partner, found) if seen.may_run]
    return page(
        request,
        viewer,
        "partner_offers.html",
        offers=runnable,
        next_page=portal.next_link("/ui/p/offers", {}, found),
    )


@router.get("/offers/{offer_id}")
async def offer(request: Request, viewer: PartnerViewer, offer_id: PathId) -> Response:
    partner, closed = await _open(request, viewer)
    if closed:
        return closed
    services = services_of(request)
    found = await services.catalog.visible_offer(viewer.scope, offer_id)
    (seen,) = await _seen(services, partner, [found])
    payouts = await services.catalog.payouts_of_partner(partner.id, [found.id])
    events = [offer_event_view_for(viewer.scope, e, found, payouts, services.settings.base_url, None)
              for e in await services.catalog.list_offer_events(found.id)]  # fmt: skip
    return page(request, viewer, "partner_offer.html", seen=seen, offer=seen.offer, events=events)


# postbacks


def _macros(amount_shared: bool) -> list[str]:
    return sorted(partner_macros(amount_shared))


async def _postbacks_page(
    request: Request, viewer: Viewer, cursor: str | None, error: str | None = None, values: dict[str, str] | None = None
) -> Response:
    services = services_of(request)
    postbacks = await services.partner_postbacks.list(viewer.scope, portal.list_page(portal.cursor_of(cursor)))
    names = await portal.offer_names(services, viewer.scope)
    sharing = [o for o in await _all_offers(services, viewer) if o.share_amount_with_partners]
    return page(
        request,
        viewer,
        "partner_postbacks.html",
        400 if error else 200,
        postbacks=[partner_postback_view(p) for p in postbacks],
        offer_names=names,
        macros=_macros(False),
        amount_macro=AMOUNT,
        sharing=sharing,
        error=error,
        values=values or {},
        fires_on=[f.value for f in FiresOn],
        next_page=portal.next_link("/ui/p/postbacks", {}, postbacks),
    )


async def _all_offers(services: Services, viewer: Viewer) -> list[Offer]:
    found: list[Offer] = []
    cursor: int | None = None
    while True:
        batch = await services.catalog.offers_seen_by(viewer.scope, Page(limit=_ALL, cursor=cursor))
        found.extend(batch)
        if len(batch) < _ALL:
            return found
        cursor = batch[-1].id


@router.get("/postbacks")
async def postbacks(request: Request, viewer: PartnerViewer, cursor: Text = None) -> Response:
    _, closed = await _open(request, viewer)
    if closed:
        return closed
    return await _postbacks_page(request, viewer, cursor)


_POSTBACK_FIELDS: Final = ("url", "offer_id", "on", "fire_status", "method", "delay_seconds", "success_body_contains")


@router.post("/postbacks")
async def create_postback(request: Request, viewer: PartnerViewer) -> Response:
    form = await viewer_form(request, viewer)
    _, closed = await _open(request, viewer)
    if closed:
        return closed
    values = {name: str(form.get(name, "")).strip() for name in _POSTBACK_FIELDS}
    body: dict[str, Any] = {name: value for name, value in values.items() if value}
    try:
        created = await services_of(request).partner_postbacks.create(
            viewer.scope, convert(body, PartnerPostbackCreate)
        )
    except InvalidParameter as refused:
        return await _postbacks_page(request, viewer, None, f"{refused.field}: {refused.detail}", values)
    response = redirect("/ui/p/postbacks")
    notify(request, response, f"Postback #{created.id} saved: it fires on your next {created.on.value}.")
    return response


@router.post("/postbacks/{postback_id}/status")
async def postback_status(request: Request, viewer: PartnerViewer, postback_id: PathId) -> Response:
    form = await viewer_form(request, viewer)
    _, closed = await _open(request, viewer)
    if closed:
        return closed
    wanted = portal.choice(str(form.get("status", "")), [s.value for s in PostbackStatus], "status")
    if wanted is None:
        raise InvalidParameter("status", "is required")
    changed = await services_of(request).partner_postbacks.update(
        viewer.scope, postback_id, PartnerPostbackUpdate(status=PostbackStatus(wanted))
    )
    response = redirect("/ui/p/postbacks")
    word = "active again" if changed.status is PostbackStatus.ACTIVE else "turned off: it fires no more"
    notify(request, response, f"Postback #{changed.id} is {word}.")
    return response


@router.post("/postbacks/{postback_id}/test")
async def test_postback(request: Request, viewer: PartnerViewer, postback_id: PathId) -> Response:
    """Send a test of the postback (sample values) and show its delivery log."""
    await viewer_form(request, viewer)
    _, closed = await _open(request, viewer)
    if closed:
        return closed
    response = redirect(f"/ui/p/postbacks/{postback_id}")
    try:
        await services_of(request).partner_postbacks.test(viewer.scope, postback_id)
    except Conflict as waiting:
        notify(request, response, f"No new test: {waiting}.")
        return response
    notify(request, response, "Test sent to your URL with sample values: its outcome is in the log (marked test).")
    return response


@router.post("/postbacks/{postback_id}/delete")
async def delete_postback(request: Request, viewer: PartnerViewer, postback_id: PathId) -> Response:
    await viewer_form(request, viewer)
    _, closed = await _open(request, viewer)
    if closed:
        return closed
    await services_of(request).partner_postbacks.delete(viewer.scope, postback_id)
    response = redirect("/ui/p/postbacks")
    notify(request, response, f"Postback #{postback_id} deleted: it fires no more.")
    return response


@router.get("/postbacks/{postback_id}")
async def postback(request: Request, viewer: PartnerViewer, postback_id: PathId, cursor: Text = None) -> Response:
    _, closed = await _open(request, viewer)
    if closed:
        return closed
    services = services_of(request)
    found = await services.partner_postbacks.get(viewer.scope, postback_id)
    deliveries = await services.deliveries.list(portal.list_page(portal.cursor_of(cursor), postback_id=found.id))
    return page(
        request,
        viewer,
        "partner_postback.html",
        postback=partner_postback_view(found),
        offer_names=await portal.offer_names(services, viewer.scope),
        deliveries=[delivery_view(d) for d in deliveries],
        next_page=portal.next_link(f"/ui/p/postbacks/{found.id}", {}, deliveries),
    )


# stats and conversions


@router.get("/stats")
async def stats(
    request: Request,
    viewer: PartnerViewer,
    group_by: Text = None,
    from_: Annotated[str | None, Query(alias="from", max_length=40)] = None,
    to: Annotated[str | None, Query(max_length=40)] = None,
    offer_id: Text = None,
) -> Response:
    _, closed = await _open(request, viewer)
    if closed:
        return closed
    asked = portal.StatsAsked(group_by, from_, to, offer_id)
    context = await portal.stats_context(
        services_of(request),
        viewer.scope,
        dates.program_zone(request),
        asked,
        STATS_GROUPS,
        ("payout", "Payout"),
        _label,
    )
    return page(request, viewer, "partner_stats.html", **context)


def _label(grouping: str, value: object, names: dict[int, str]) -> str:
    if grouping == "offer":
        return names.get(value, f"Offer #{value}") if isinstance(value, int) else "(unknown offer)"
    if grouping == "day":
        return str(value)[:10]
    return str(value) if value not in (None, "") else "(none)"


@router.get("/conversions")
async def conversions(
    request: Request,
    viewer: PartnerViewer,
    status: Text = None,
    offer_id: Text = None,
    from_: Annotated[str | None, Query(alias="from", max_length=40)] = None,
    to: Annotated[str | None, Query(max_length=40)] = None,
    cursor: Text = None,
) -> Response:
    _, closed = await _open(request, viewer)
    if closed:
        return closed
    services = services_of(request)
    shown = portal.choice(status, [s.value for s in ConversionStatus], "status")
    only = portal.optional_id(offer_id, "offer_id")
    created = dates.date_range(from_, to, dates.program_zone(request)) if from_ or to else None
    found = await services.conversions.list(
        viewer.scope, portal.list_page(portal.cursor_of(cursor), created, status=shown, offer_id=only)
    )
    filters = {"status": shown, "offer_id": only, "from": from_, "to": to}
    return page(
        request,
        viewer,
        "partner_conversions.html",
        conversions=found,
        offer_names=await portal.offer_names(services, viewer.scope),
        statuses=[s.value for s in ConversionStatus],
        status_filter=shown or "",
        offer_id=only,
        created=created,
        next_page=portal.next_link("/ui/p/conversions", filters, found),
    )
