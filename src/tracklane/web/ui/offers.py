"""The admin's offers: the list with its search, the form that creates or changes everything an offer has (price
rules, caps, visibility, fallback, window, currency, conversion methods), its events, the postback URLs its
advertiser fires, and a tracking link builder for each partner.

The form's fields are decoded by the API's own request bodies (`OfferCreate`, `OfferUpdate`, `OfferEventCreate`,
`OfferEventUpdate`), so a page refuses exactly what the API refuses, naming the field; the form is shown again
with what was typed.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import Response

from tracklane.domain.caps import CapMetric, CapPeriod
from tracklane.domain.errors import Conflict, InvalidParameter
from tracklane.domain.model import ConversionMethod, OfferStatus, PartnerStatus, Visibility
from tracklane.domain.money import PriceType
from tracklane.resources.decoding import convert
from tracklane.resources.offers import (
    OfferCreate,
    OfferEventCreate,
    OfferEventUpdate,
    OfferUpdate,
    OfferView,
    offer_event_data,
    offer_view,
    postback_url,
    tracking_url,
)
from tracklane.services.ports import Page
from tracklane.web.api.listing import PathId
from tracklane.web.ui.reports import NAMES_LIMIT, optional_choice, optional_id
from tracklane.web.ui.routing import PageRoute, page, redirect
from tracklane.web.ui.session import AdminViewer, Viewer, notify, services_of, viewer_form
from tracklane.web.ui.targeting_form import (
    EMPTY_RULE_ROWS,
    NO_TARGETING_VALUES,
    TARGETING_CHOICES,
    shown_targeting,
    targeting_body,
    typed_targeting,
)

router = APIRouter(prefix="/ui", route_class=PageRoute, include_in_schema=False)

PAGE_SIZE = 50
EMPTY_CAP_ROWS = 2
MAX_CAP_ROWS = 50
SUB_IDS = ("sub1", "sub2", "sub3", "sub4", "sub5")
CHOICES = {
    "status": [s.value for s in OfferStatus],
    "visibility": [v.value for v in Visibility],
    "default_status": ["approved", "pending"],
    "price_types": [t.value for t in PriceType],
    "methods": [m.value for m in ConversionMethod],
    "cap_metrics": [m.value for m in CapMetric],
    "cap_periods": [p.value for p in CapPeriod],
}
NEW_OFFER: dict[str, Any] = {
    "name": "", "advertiser_id": "", "destination_url": "", "fallback_url": "", "status": "active",
    "visibility": "public", "currency": "USD", "attribution_window_days": "30", "allow_multiple_conversions": False,
    "default_status": "approved", "revenue_type": "cpa", "revenue_amount": "", "revenue_percent": "",
    "payout_type": "cpa", "payout_amount": "", "payout_percent": "", "conversion_methods": CHOICES["methods"],
    "share_amount_with_partners": False, "caps": [], "targeting": NO_TARGETING_VALUES,
}  # fmt: skip
Text = Annotated[str | None, Query(max_length=200)]


def public_base(request: Request) -> str:
    """The URL people and advertisers' servers reach this install at (for links to copy)."""
    return (services_of(request).settings.public_url or str(request.base_url)).rstrip("/")


# form values: what the form shows, and the body it sends


def _text(form: FormData, name: str) -> str:
    value = form.get(name)
    return value.strip() if isinstance(value, str) else ""


def _checked(form: FormData, name: str) -> bool:
    return form.get(name) in ("on", "true", "1")


def _typed(form: FormData) -> dict[str, Any]:
    """The offer form as typed (to show it again)."""
    names = ("name", "advertiser_id", "destination_url", "fallback_url", "status", "visibility", "currency",
             "attribution_window_days", "default_status", "revenue_type", "revenue_amount", "revenue_percent",
             "payout_type", "payout_amount", "payout_percent")  # fmt: skip
    values: dict[str, Any] = {name: _text(form, name) for name in names}
    caps = []
    rows = _text(form, "cap_rows")
    for index in range(min(int(rows), MAX_CAP_ROWS) if rows.isascii() and rows.isdigit() else 0):
        cap: dict[str, Any] = {key: _text(form, f"cap_{key}_{index}") for key in ("metric", "period", "limit")}
        cap["per_partner"] = _checked(form, f"cap_per_partner_{index}")
        if cap["limit"]:
            caps.append(cap)
    return {
        **values,
        "allow_multiple_conversions": _checked(form, "allow_multiple_conversions"),
        "share_amount_with_partners": _checked(form, "share_amount_with_partners"),
        "conversion_methods": [str(m) for m in form.getlist("conversion_methods")],
        "caps": caps,
        "targeting": typed_targeting(form),
    }


def _rule(values: dict[str, Any], prefix: str) -> dict[str, Any]:
    rule = {"type": values[f"{prefix}_type"]}
    for part in ("amount", "percent"):
        if values[f"{prefix}_{part}"]:
            rule[part] = values[f"{prefix}_{part}"]
    return rule


def _body(values: dict[str, Any]) -> dict[str, Any]:
    """The request body of the typed offer form."""
    body = {name: values[name] for name in ("name", "destination_url", "status", "visibility", "default_status",
                                            "allow_multiple_conversions", "share_amount_with_partners",
                                            "conversion_methods")}  # fmt: skip
    body["fallback_url"] = values["fallback_url"] or None
    body["currency"] = values["currency"].upper()
    body["attribution_window_days"] = values["attribution_window_days"]
    body["revenue"], body["payout"] = _rule(values, "revenue"), _rule(values, "payout")
    body["caps"] = [{"metric": c["metric"], "period": c["period"], "limit": c["limit"],
                     "per_partner": c["per_partner"]} for c in values["caps"]]  # fmt: skip
    body["targeting"] = targeting_body(values["targeting"])
    return body


def _shown(o: OfferView) -> dict[str, Any]:
    """An offer as its form shows it."""
    return {
        "name": o.name, "advertiser_id": str(o.advertiser_id), "destination_url": o.destination_url,
        "fallback_url": o.fallback_url or "", "status": o.status.value, "visibility": o.visibility.value,
        "currency": o.currency, "attribution_window_days": str(o.attribution_window_days),
        "allow_multiple_conversions": o.allow_multiple_conversions, "default_status": o.default_status.value,
        "revenue_type": o.revenue.type.value, "revenue_amount": o.revenue.amount or "",
        "revenue_percent": o.revenue.percent or "", "payout_type": o.payout.type.value,
        "payout_amount": o.payout.amount or "", "payout_percent": o.payout.percent or "",
        "conversion_methods": [m.value for m in o.conversion_methods],
        "share_amount_with_partners": o.share_amount_with_partners,
        "caps": [{"metric": c.metric.value, "period": c.period.value, "limit": str(c.limit),
                  "per_partner": c.per_partner} for c in o.caps],
        "targeting": shown_targeting(o.targeting),
    }  # fmt: skip


def _event_body(form: FormData) -> dict[str, Any]:
    values = {name: _text(form, name) for name in ("revenue_type", "revenue_amount", "revenue_percent", "payout_type",
                                                  "payout_amount", "payout_percent")}  # fmt: skip
    return {"name": _text(form, "name"), "revenue": _rule(values, "revenue"), "payout": _rule(values, "payout"),
            "allow_multiple_per_click": _checked(form, "allow_multiple_per_click")}  # fmt: skip


# pages


@router.get("/offers")
async def list_offers(
    request: Request,
    viewer: AdminViewer,
    q: Text = None,
    status: Text = None,
    advertiser_id: Text = None,
    cursor: Text = None,
) -> Response:
    """Offers, newest first; `q` finds those whose name contains it (among the newest 500)."""
    services = services_of(request)
    filters = {"status": optional_choice(status, "status", CHOICES["status"]),
               "advertiser_id": optional_id(advertiser_id, "advertiser_id")}  # fmt: skip
    search = (q or "").strip()
    found = await services.catalog.list_offers(
        Page(limit=NAMES_LIMIT if search else PAGE_SIZE, cursor=None if search else optional_id(cursor, "cursor"),
             filters={k: v for k, v in filters.items() if v is not None})
    )  # fmt: skip
    if search:
        found = [o for o in found if search.casefold() in o.name.casefold()]
    next_cursor = found[-1].id if not search and len(found) == PAGE_SIZE else None
    advertisers = {a.id: a.name for a in await services.catalog.list_advertisers(Page(limit=NAMES_LIMIT))}
    return page(request, viewer, "admin_offers.html", offers=[offer_view(o) for o in found], advertisers=advertisers,
                q=search, state=filters["status"] or "", advertiser_id=filters["advertiser_id"],
                next_cursor=next_cursor, choices=CHOICES)  # fmt: skip


async def _form_page(
    request: Request, viewer: Viewer, values: dict[str, Any], status: int = 200, error: str | None = None
) -> Response:
    advertisers = await services_of(request).catalog.list_advertisers(Page(limit=NAMES_LIMIT))
    return page(request, viewer, "admin_offer_new.html", status, values=values, advertisers=advertisers,
                choices=CHOICES, error=error, empty_caps=EMPTY_CAP_ROWS, targeting_choices=TARGETING_CHOICES,
                empty_rules=EMPTY_RULE_ROWS)  # fmt: skip


@router.get("/offers/new")
async def new_offer(request: Request, viewer: AdminViewer, advertiser_id: Text = None) -> Response:
    chosen = optional_id(advertiser_id, "advertiser_id")
    return await _form_page(request, viewer, {**NEW_OFFER, "advertiser_id": str(chosen or "")})


@router.post("/offers/new")
async def create_offer(request: Request, viewer: AdminViewer) -> Response:
    form = await viewer_form(request, viewer)
    values = _typed(form)
    try:
        body = convert({**_body(values), "advertiser_id": values["advertiser_id"]}, OfferCreate)
        offer = await services_of(request).catalog.create_offer(body)
    except (InvalidParameter, Conflict) as refused:
        return await _form_page(request, viewer, values, 400, str(refused))
    response = redirect(f"/ui/offers/{offer.id}")
    notify(request, response, f"Offer {offer.name} created. Add its events and send partners their links.")
    return response


async def _offer_page(
    request: Request,
    viewer: Viewer,
    offer_id: int,
    partner_id: int | None = None,
    status: int = 200,
    values: dict[str, Any] | None = None,
    error: str | None = None,
    event_error: str | None = None,
) -> Response:
    services = services_of(request)
    offer = await services.catalog.get_offer(offer_id)
    advertiser = await services.catalog.get_advertiser(offer.advertiser_id)
    events = [offer_event_data(e, offer.currency) for e in await services.catalog.list_offer_events(offer_id)]
    partners = [p for p in await services.catalog.list_partners(Page(limit=NAMES_LIMIT))
                if p.status is PartnerStatus.ACTIVE]  # fmt: skip
    chosen = next((p for p in partners if p.id == partner_id), partners[0] if partners else None)
    access = None
    if chosen is not None:
        granted = await services.catalog.list_access(Page(limit=1, filters={"offer_id": offer_id,
                                                                            "partner_id": chosen.id}))  # fmt: skip
        access = granted[0] if granted else None
    base = public_base(request)
    view = offer_view(offer)
    return page(
        request,
        viewer,
        "admin_offer.html",
        status,
        offer=view,
        values=values or _shown(view),
        advertiser=advertiser,
        events=events,
        partners=partners,
        chosen=chosen,
        access=access,
        link=tracking_url(base, offer.id, chosen.id) if chosen else None,
        clk=f"{base}/clk?offer_id={offer.id}&partner_id={chosen.id}" if chosen else None,
        postback=postback_url(base, advertiser.postback_token),
        pixel=f"{base}/pixel?offer_id={offer.id}",
        sub_ids=SUB_IDS,
        choices=CHOICES,
        error=error,
        event_error=event_error,
        empty_caps=EMPTY_CAP_ROWS,
        targeting_choices=TARGETING_CHOICES,
        empty_rules=EMPTY_RULE_ROWS,
    )


@router.get("/offers/{offer_id}")
async def show_offer(request: Request, viewer: AdminViewer, offer_id: PathId, partner_id: Text = None) -> Response:
    return await _offer_page(request, viewer, offer_id, optional_id(partner_id, "partner_id"))


@router.post("/offers/{offer_id}")
async def update_offer(request: Request, viewer: AdminViewer, offer_id: PathId) -> Response:
    form = await viewer_form(request, viewer)
    values = _typed(form)
    try:
        offer = await services_of(request).catalog.update_offer(offer_id, convert(_body(values), OfferUpdate))
    except (InvalidParameter, Conflict) as refused:
        return await _offer_page(request, viewer, offer_id, None, 400, values, str(refused))
    response = redirect(f"/ui/offers/{offer.id}")
    notify(request, response, "Offer saved.")
    return response


@router.post("/offers/{offer_id}/events")
async def add_event(request: Request, viewer: AdminViewer, offer_id: PathId) -> Response:
    form = await viewer_form(request, viewer)
    try:
        event, _ = await services_of(request).catalog.create_offer_event(
            offer_id, convert(_event_body(form), OfferEventCreate)
        )
    except (InvalidParameter, Conflict) as refused:
        return await _offer_page(request, viewer, offer_id, None, 400, event_error=f"New event: {refused}")
    response = redirect(f"/ui/offers/{offer_id}#events")
    notify(request, response, f"Event {event.name} added.")
    return response


@router.post("/offers/{offer_id}/events/{event_id}")
async def update_event(request: Request, viewer: AdminViewer, offer_id: PathId, event_id: PathId) -> Response:
    form = await viewer_form(request, viewer)
    try:
        event, _ = await services_of(request).catalog.update_offer_event(
            offer_id, event_id, convert(_event_body(form), OfferEventUpdate)
        )
    except (InvalidParameter, Conflict) as refused:
        return await _offer_page(request, viewer, offer_id, None, 400, event_error=f"Event #{event_id}: {refused}")
    response = redirect(f"/ui/offers/{offer_id}#events")
    notify(request, response, f"Event {event.name} saved.")
    return response
