"""The admin's people pages: advertisers (their sign-up queue and its verdicts, their postback token and how to
integrate), partners (the sign-up queue and its verdicts, offer access, partner-specific payouts, their
postbacks) and the users who sign in (creation, invitation and password reset links to copy, disabling)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import Response

from tracklane.domain.errors import Conflict, InvalidParameter
from tracklane.domain.model import AccessStatus, Advertiser, LinkKind, PartnerStatus, Role, User, UserStatus
from tracklane.domain.segment.settings import PRESETS
from tracklane.resources.advertisers import AdvertiserCreate, AdvertiserUpdate
from tracklane.resources.decoding import convert
from tracklane.resources.offers import (
    OfferAccessCreate,
    OfferAccessUpdate,
    PartnerPayoutCreate,
    offer_event_data,
    offer_view,
    partner_payout_view,
)
from tracklane.resources.partners import PartnerCreate, PartnerUpdate, Verdict, decided_by_user
from tracklane.resources.users import UserCreate, UserUpdate, accept_url
from tracklane.services.ports import Page
from tracklane.web.api.listing import PathId
from tracklane.web.ui.offers import CHOICES, public_base
from tracklane.web.ui.reports import NAMES_LIMIT, catalog_names, optional_choice, optional_id, return_path
from tracklane.web.ui.routing import PageRoute, page, redirect
from tracklane.web.ui.session import AdminViewer, Viewer, notify, services_of, viewer_form

router = APIRouter(prefix="/ui", route_class=PageRoute, include_in_schema=False)

PAGE_SIZE = 50
QUEUE_SIZE = 100
Text = Annotated[str | None, Query(max_length=100)]
PARTNER_STATUSES = [s.value for s in PartnerStatus]
USER_STATUSES = [s.value for s in UserStatus]
ROLES = [r.value for r in Role]


def _text(form: FormData, name: str) -> str:
    value = form.get(name)
    return value.strip() if isinstance(value, str) else ""


def _given(form: FormData, *names: str) -> dict[str, str]:
    """The named fields that were filled in."""
    return {name: _text(form, name) for name in names if _text(form, name)}


# advertisers


async def _advertiser_queue(request: Request) -> list[tuple[Advertiser, list[User]]]:
    """The advertisers' sign-ups waiting for a verdict, each with its contacts."""
    services = services_of(request)
    waiting = await services.catalog.list_advertisers(Page(limit=QUEUE_SIZE, filters={"status": "pending"}))
    return [(a, await services.users.list(Page(limit=NAMES_LIMIT, filters={"advertiser_id": a.id})))
            for a in waiting]  # fmt: skip


@router.get("/advertisers")
async def list_advertisers(request: Request, viewer: AdminViewer, cursor: Text = None) -> Response:
    """The sign-ups waiting for a verdict first, then every advertiser."""
    found = await services_of(request).catalog.list_advertisers(
        Page(limit=PAGE_SIZE, cursor=optional_id(cursor, "cursor"))
    )
    return page(request, viewer, "admin_advertisers.html", advertisers=found, error=None, name="",
                waiting=await _advertiser_queue(request),
                next_cursor=found[-1].id if len(found) == PAGE_SIZE else None)  # fmt: skip


@router.post("/advertisers")
async def create_advertiser(request: Request, viewer: AdminViewer) -> Response:
    form = await viewer_form(request, viewer)
    catalog = services_of(request).catalog
    try:
        advertiser = await catalog.create_advertiser(convert({"name": _text(form, "name")}, AdvertiserCreate))
    except (InvalidParameter, Conflict) as refused:
        found = await catalog.list_advertisers(Page(limit=PAGE_SIZE))
        return page(request, viewer, "admin_advertisers.html", 400, advertisers=found, error=str(refused),
                    name=_text(form, "name"), waiting=[], next_cursor=None)  # fmt: skip
    response = redirect(f"/ui/advertisers/{advertiser.id}")
    notify(request, response, f"Advertiser {advertiser.name} created. Send its developers the integration below.")
    return response


@router.get("/advertisers/{advertiser_id}")
async def show_advertiser(request: Request, viewer: AdminViewer, advertiser_id: PathId) -> Response:
    services = services_of(request)
    advertiser = await services.catalog.get_advertiser(advertiser_id)
    offers = await services.catalog.list_offers(Page(limit=NAMES_LIMIT, filters={"advertiser_id": advertiser_id}))
    sources = await services.sources.list(Page(limit=NAMES_LIMIT, filters={"advertiser_id": advertiser_id}))
    users = await services.users.list(Page(limit=NAMES_LIMIT, filters={"advertiser_id": advertiser_id}))
    events = {o.id: [offer_event_data(e, o.currency) for e in await services.catalog.list_offer_events(o.id)]
              for o in offers}  # fmt: skip
    base = public_base(request)
    return page(request, viewer, "admin_advertiser.html", advertiser=advertiser, offers=[offer_view(o) for o in offers],
                events=events, sources=sources, users=users, base=base,
                host=base.split("://", 1)[-1], presets=PRESETS)  # fmt: skip


@router.post("/advertisers/{advertiser_id}")
async def update_advertiser(request: Request, viewer: AdminViewer, advertiser_id: PathId) -> Response:
    form = await viewer_form(request, viewer)
    values: dict[str, Any] = _given(form, "name", "status")
    if _text(form, "rotate_postback_token"):
        values["rotate_postback_token"] = True
    advertiser = await services_of(request).catalog.update_advertiser(advertiser_id, convert(values, AdvertiserUpdate))
    response = redirect(f"/ui/advertisers/{advertiser.id}")
    rotated = " Its postback token is new: the old one no longer converts." if "rotate_postback_token" in values else ""
    notify(request, response, f"Advertiser saved.{rotated}")
    return response


@router.post("/advertisers/{advertiser_id}/verdict")
async def advertiser_verdict(request: Request, viewer: AdminViewer, advertiser_id: PathId) -> Response:
    form = await viewer_form(request, viewer)
    verdict = convert(_given(form, "verdict", "reason"), Verdict)
    advertiser = await services_of(request).catalog.advertiser_verdict(advertiser_id, verdict)
    response = redirect(return_path(_text(form, "next"), f"/ui/advertisers/{advertiser_id}"))
    invite = " Send its contact an invitation from Users." if advertiser.status == "active" else ""
    notify(request, response, f"{advertiser.name} is {advertiser.status}.{invite}")
    return response


# partners


@router.get("/partners")
async def list_partners(request: Request, viewer: AdminViewer, status: Text = None, cursor: Text = None) -> Response:
    """The sign-ups waiting for a verdict first, then every partner (or those of one status)."""
    catalog = services_of(request).catalog
    chosen = optional_choice(status, "status", PARTNER_STATUSES)
    waiting = [] if chosen else await catalog.list_partners(
        Page(limit=QUEUE_SIZE, filters={"status": PartnerStatus.PENDING.value})
    )  # fmt: skip
    found = await catalog.list_partners(Page(limit=PAGE_SIZE, cursor=optional_id(cursor, "cursor"),
                                             filters={"status": chosen} if chosen else {}))  # fmt: skip
    return page(request, viewer, "admin_partners.html", waiting=waiting, partners=found, state=chosen or "",
                statuses=PARTNER_STATUSES, next_cursor=found[-1].id if len(found) == PAGE_SIZE else None,
                error=None, values={})  # fmt: skip


@router.post("/partners")
async def create_partner(request: Request, viewer: AdminViewer) -> Response:
    form = await viewer_form(request, viewer)
    catalog = services_of(request).catalog
    values = _given(form, "name", "email")
    try:
        partner = await catalog.create_partner(convert(values, PartnerCreate), PartnerStatus.ACTIVE)
    except (InvalidParameter, Conflict) as refused:
        found = await catalog.list_partners(Page(limit=PAGE_SIZE))
        return page(request, viewer, "admin_partners.html", 400, waiting=[], partners=found, state="",
                    statuses=PARTNER_STATUSES, next_cursor=None, error=str(refused), values=values)  # fmt: skip
    response = redirect(f"/ui/partners/{partner.id}")
    notify(request, response, f"Partner {partner.name} created (active). Create a user for them under People.")
    return response


@router.post("/partners/{partner_id}/verdict")
async def partner_verdict(request: Request, viewer: AdminViewer, partner_id: PathId) -> Response:
    form = await viewer_form(request, viewer)
    verdict = convert(_given(form, "verdict", "reason"), Verdict)
    partner = await services_of(request).catalog.partner_verdict(partner_id, verdict, decided_by_user(viewer.user))
    response = redirect(return_path(_text(form, "next"), f"/ui/partners/{partner_id}"))
    notify(request, response, f"{partner.name} is {partner.status.value}.")
    return response


@router.post("/partners/{partner_id}/status")
async def partner_status(request: Request, viewer: AdminViewer, partner_id: PathId) -> Response:
    form = await viewer_form(request, viewer)
    partner = await services_of(request).catalog.update_partner(
        partner_id, convert(_given(form, "status", "status_reason"), PartnerUpdate)
    )
    response = redirect(f"/ui/partners/{partner_id}")
    notify(request, response, f"{partner.name} is {partner.status.value}.")
    return response


@router.get("/partners/{partner_id}")
async def show_partner(request: Request, viewer: AdminViewer, partner_id: PathId) -> Response:
    services = services_of(request)
    partner = await services.catalog.get_partner(partner_id)
    access = await services.catalog.list_access(Page(limit=NAMES_LIMIT, filters={"partner_id": partner_id}))
    access.sort(key=lambda a: (a.status is not AccessStatus.REQUESTED, -a.id))
    offers = await services.catalog.list_offers(Page(limit=NAMES_LIMIT))
    currencies = {o.id: o.currency for o in offers}
    payouts = await services.catalog.payouts_of_partner(partner_id, [o.id for o in offers])
    events = {o.id: {e.id: e.name for e in await services.catalog.list_offer_events(o.id)}
              for o in offers if any(p.offer_id == o.id for p in payouts)}  # fmt: skip
    postbacks = await services.partner_postbacks.list(viewer.scope, Page(limit=NAMES_LIMIT), partner_id)
    users = await services.users.list(Page(limit=NAMES_LIMIT, filters={"partner_id": partner_id}))
    return page(
        request,
        viewer,
        "admin_partner.html",
        partner=partner,
        access=access,
        offers=offers,
        payouts=[partner_payout_view(p, currencies.get(p.offer_id, "USD")) for p in payouts],
        currencies=currencies,
        events=events,
        postbacks=postbacks,
        users=users,
        names=await catalog_names(services),
        statuses=PARTNER_STATUSES,
        choices=CHOICES,
    )


@router.post("/partners/{partner_id}/access")
async def grant_access(request: Request, viewer: AdminViewer, partner_id: PathId) -> Response:
    form = await viewer_form(request, viewer)
    body = convert({**_given(form, "offer_id", "status", "reason"), "partner_id": partner_id}, OfferAccessCreate)
    access = await services_of(request).catalog.set_access(body)
    response = redirect(f"/ui/partners/{partner_id}#access")
    notify(request, response, f"Access to offer #{access.offer_id} is {access.status.value}.")
    return response


@router.post("/access/{access_id}")
async def decide_access(request: Request, viewer: AdminViewer, access_id: PathId) -> Response:
    form = await viewer_form(request, viewer)
    access = await services_of(request).catalog.update_access(
        access_id, convert(_given(form, "status", "reason"), OfferAccessUpdate)
    )
    response = redirect(return_path(_text(form, "next"), f"/ui/partners/{access.partner_id}#access"))
    notify(request, response, f"Access to offer #{access.offer_id} is {access.status.value}.")
    return response


@router.post("/partners/{partner_id}/payouts")
async def set_payout(request: Request, viewer: AdminViewer, partner_id: PathId) -> Response:
    form = await viewer_form(request, viewer)
    offer_id = optional_id(_text(form, "offer_id"), "offer_id")
    if offer_id is None:
        raise InvalidParameter("offer_id", "is required: choose the offer")
    rule = {"type": _text(form, "payout_type"), **{k: _text(form, f"payout_{k}") for k in ("amount", "percent")
                                                    if _text(form, f"payout_{k}")}}  # fmt: skip
    body: dict[str, Any] = {"partner_id": partner_id, "payout": rule}
    if _text(form, "event_id"):
        body["event_id"] = _text(form, "event_id")
    await services_of(request).catalog.set_partner_payout(offer_id, convert(body, PartnerPayoutCreate))
    response = redirect(f"/ui/partners/{partner_id}#payouts")
    notify(request, response, f"Partner payout on offer #{offer_id} saved.")
    return response


@router.post("/partners/{partner_id}/payouts/{payout_id}/delete")
async def delete_payout(request: Request, viewer: AdminViewer, partner_id: PathId, payout_id: PathId) -> Response:
    form = await viewer_form(request, viewer)
    offer_id = optional_id(_text(form, "offer_id"), "offer_id")
    if offer_id is None:
        raise InvalidParameter("offer_id", "is required")
    await services_of(request).catalog.delete_partner_payout(offer_id, payout_id)
    response = redirect(f"/ui/partners/{partner_id}#payouts")
    notify(request, response, "Partner payout removed: the offer's payout applies again.")
    return response


# users


async def _users_page(
    request: Request, viewer: Viewer, role: str | None, status: str | None, cursor: int | None,
    code: int = 200, error: str | None = None, values: dict[str, str] | None = None,
) -> Response:  # fmt: skip
    services = services_of(request)
    filters = {k: v for k, v in {"role": role, "status": status}.items() if v}
    found = await services.users.list(Page(limit=PAGE_SIZE, cursor=cursor, filters=filters))
    return page(request, viewer, "admin_users.html", code, users=found, names=await catalog_names(services),
                role=role or "", state=status or "", roles=ROLES, statuses=USER_STATUSES, error=error,
                values=values or {}, next_cursor=found[-1].id if len(found) == PAGE_SIZE else None)  # fmt: skip


@router.get("/users")
async def list_users(
    request: Request, viewer: AdminViewer, role: Text = None, status: Text = None, cursor: Text = None
) -> Response:
    chosen_role, chosen_status = optional_choice(role, "role", ROLES), optional_choice(status, "status", USER_STATUSES)
    return await _users_page(request, viewer, chosen_role, chosen_status, optional_id(cursor, "cursor"))


def _link_page(request: Request, viewer: Viewer, user: User, kind: LinkKind, token: str) -> Response:
    url = accept_url(public_base(request), token)
    return page(request, viewer, "admin_link.html", user=user, kind=kind.value, url=url)


@router.post("/users")
async def create_user(request: Request, viewer: AdminViewer) -> Response:
    """A new user; without a password it is invited, and the page shows its invitation link to copy."""
    form = await viewer_form(request, viewer)
    values = _given(form, "email", "name", "role", "password")
    role = values.get("role")
    owner = {"advertiser": "advertiser_id", "partner": "partner_id"}.get(role or "")
    if owner and _text(form, owner):
        values[owner] = _text(form, owner)
    users = services_of(request).users
    try:
        user = await users.create(convert(values, UserCreate))
    except (InvalidParameter, Conflict) as refused:
        values.pop("password", None)
        return await _users_page(request, viewer, None, None, None, 400, str(refused), values)
    if user.status is UserStatus.INVITED:
        return _link_page(request, viewer, user, LinkKind.INVITATION,
                          await users.one_time_link(user.id, LinkKind.INVITATION))  # fmt: skip
    response = redirect("/ui/users")
    notify(request, response, f"{user.email} can sign in now with the password you gave.")
    return response


@router.post("/users/{user_id}/link")
async def user_link(request: Request, viewer: AdminViewer, user_id: PathId) -> Response:
    form = await viewer_form(request, viewer)
    kind = optional_choice(_text(form, "kind"), "kind", [k.value for k in LinkKind])
    if kind is None:
        raise InvalidParameter("kind", "is required: invitation or password_reset")
    users = services_of(request).users
    token = await users.one_time_link(user_id, LinkKind(kind))
    return _link_page(request, viewer, await users.get(user_id), LinkKind(kind), token)


@router.post("/users/{user_id}/status")
async def user_status(request: Request, viewer: AdminViewer, user_id: PathId) -> Response:
    form = await viewer_form(request, viewer)
    status = _text(form, "status")
    if user_id == viewer.user.id and status == UserStatus.DISABLED.value:
        raise InvalidParameter("status", "you cannot disable yourself")
    user = await services_of(request).users.update(user_id, convert({"status": status}, UserUpdate))
    response = redirect("/ui/users")
    notify(request, response, f"{user.email} is {user.status.value}.")
    return response
