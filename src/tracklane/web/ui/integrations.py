"""The admin's integrations: webhook endpoints (their secret shown once, rotation, pause and re-enable), the
delivery log of webhooks and partner postbacks (each attempt, resend), the partners' postbacks (turned off or on,
tested, deleted), Segment sources
(write key, preset, effective settings, the message log with its refusals) and the customers seen through
them with their metrics per partner, offer or source."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Annotated, Any

import msgspec
from fastapi import APIRouter, Query
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import Response

from tracklane.domain.delivery import DeliveryKind, DeliveryStatus
from tracklane.domain.errors import Conflict, InvalidParameter, NotFound
from tracklane.domain.partner_postbacks import PostbackStatus
from tracklane.domain.segment.model import MessageOutcome
from tracklane.domain.segment.settings import PRESETS, settings_json, source_settings
from tracklane.domain.webhooks import EventType, WebhookEndpoint
from tracklane.resources.customers import customer_report_view
from tracklane.resources.decoding import convert
from tracklane.resources.partner_postbacks import PartnerPostbackUpdate
from tracklane.resources.sources import SourceCreate, SourceUpdate
from tracklane.resources.webhooks import DEFAULT_OVERLAP_HOURS, RotateSecret, WebhookCreate, WebhookUpdate
from tracklane.services.customers import GROUPS
from tracklane.services.ports import Page
from tracklane.web.api.listing import PathId
from tracklane.web.ui.dates import date_range, program_zone
from tracklane.web.ui.offers import public_base
from tracklane.web.ui.reports import NAMES_LIMIT, catalog_names, optional_choice, optional_id, return_path
from tracklane.web.ui.routing import PageRoute, page, redirect
from tracklane.web.ui.session import AdminViewer, Viewer, notify, services_of, viewer_form

router = APIRouter(prefix="/ui", route_class=PageRoute, include_in_schema=False)

PAGE_SIZE = 50
EVENT_TYPES = [t.value for t in EventType]
DELIVERY_STATUSES = [s.value for s in DeliveryStatus]
DELIVERY_KINDS = [k.value for k in DeliveryKind]
OUTCOMES = [o.value for o in MessageOutcome]
Text = Annotated[str | None, Query(max_length=100)]


def _text(form: FormData, name: str) -> str:
    value = form.get(name)
    return value.strip() if isinstance(value, str) else ""


def _next_cursor(items: list[Any]) -> int | None:
    return items[-1].id if len(items) == PAGE_SIZE else None


def readable(value: object) -> str:
    """A setting's value for people: lists joined, mappings as `key → value`, yes and no."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if value is None or value == "" or value == [] or value == {}:
        return "—"
    if isinstance(value, list | tuple):
        return ", ".join(readable(v) for v in value)
    if isinstance(value, Mapping):
        return "; ".join(f"{k} → {readable(v)}" for k, v in value.items())
    return str(value)


# webhooks


def _webhook_body(form: FormData) -> dict[str, Any]:
    types = [str(t) for t in form.getlist("event_types")]
    return {"url": _text(form, "url"), "event_types": types or None, "description": _text(form, "description") or None}


async def _webhooks_page(request: Request, viewer: Viewer, status: int = 200, error: str | None = None,
                         values: dict[str, Any] | None = None) -> Response:  # fmt: skip
    endpoints = await services_of(request).webhooks.list(Page(limit=NAMES_LIMIT))
    return page(request, viewer, "admin_webhooks.html", status, endpoints=endpoints, event_types=EVENT_TYPES,
                error=error, values=values or {"url": "", "description": "", "event_types": None})  # fmt: skip


@router.get("/webhooks")
async def list_webhooks(request: Request, viewer: AdminViewer) -> Response:
    return await _webhooks_page(request, viewer)


def _secret_page(request: Request, viewer: Viewer, endpoint: WebhookEndpoint, secret: str, rotated: bool) -> Response:
    return page(request, viewer, "admin_webhook_secret.html", endpoint=endpoint, secret=secret, rotated=rotated)


@router.post("/webhooks")
async def create_webhook(request: Request, viewer: AdminViewer) -> Response:
    form = await viewer_form(request, viewer)
    values = _webhook_body(form)
    try:
        issued = await services_of(request).webhooks.create(convert(values, WebhookCreate))
    except (InvalidParameter, Conflict) as refused:
        shown = {**values, "description": values["description"] or ""}
        return await _webhooks_page(request, viewer, 400, str(refused), shown)
    return _secret_page(request, viewer, issued.endpoint, issued.secret, rotated=False)


@router.get("/webhooks/{endpoint_id}")
async def show_webhook(
    request: Request, viewer: AdminViewer, endpoint_id: PathId, status: Text = None, cursor: Text = None
) -> Response:
    services = services_of(request)
    endpoint = await services.webhooks.get(endpoint_id)
    chosen = optional_choice(status, "status", DELIVERY_STATUSES)
    filters: dict[str, object] = {"endpoint_id": endpoint_id, **({"status": chosen} if chosen else {})}
    deliveries = await services.deliveries.list(Page(limit=PAGE_SIZE, cursor=optional_id(cursor, "cursor"),
                                                     filters=filters))  # fmt: skip
    return page(request, viewer, "admin_webhook.html", endpoint=endpoint, deliveries=deliveries, state=chosen or "",
                statuses=DELIVERY_STATUSES, event_types=EVENT_TYPES, next_cursor=_next_cursor(deliveries),
                overlap=DEFAULT_OVERLAP_HOURS)  # fmt: skip


@router.post("/webhooks/{endpoint_id}")
async def update_webhook(request: Request, viewer: AdminViewer, endpoint_id: PathId) -> Response:
    form = await viewer_form(request, viewer)
    body: dict[str, Any] = _webhook_body(form)
    if _text(form, "status"):
        body = {"status": _text(form, "status")}
    endpoint = await services_of(request).webhooks.update(endpoint_id, convert(body, WebhookUpdate))
    response = redirect(f"/ui/webhooks/{endpoint.id}")
    notify(request, response, f"Webhook endpoint saved ({endpoint.status.value}).")
    return response


@router.post("/webhooks/{endpoint_id}/rotate")
async def rotate_webhook_secret(request: Request, viewer: AdminViewer, endpoint_id: PathId) -> Response:
    form = await viewer_form(request, viewer)
    hours = _text(form, "overlap_hours")
    try:
        overlap = float(hours) if hours else DEFAULT_OVERLAP_HOURS
    except ValueError:
        raise InvalidParameter("overlap_hours", "must be a number of hours") from None
    issued = await services_of(request).webhooks.rotate_secret(endpoint_id, RotateSecret(overlap_hours=overlap))
    return _secret_page(request, viewer, issued.endpoint, issued.secret, rotated=True)


# deliveries


@router.get("/deliveries")
async def list_deliveries(
    request: Request,
    viewer: AdminViewer,
    status: Text = None,
    kind: Text = None,
    endpoint_id: Text = None,
    postback_id: Text = None,
    cursor: Text = None,
) -> Response:
    filters = {
        "status": optional_choice(status, "status", DELIVERY_STATUSES),
        "kind": optional_choice(kind, "kind", DELIVERY_KINDS),
        "endpoint_id": optional_id(endpoint_id, "endpoint_id"),
        "postback_id": optional_id(postback_id, "postback_id"),
    }
    given = {k: v for k, v in filters.items() if v is not None}
    deliveries = await services_of(request).deliveries.list(
        Page(limit=PAGE_SIZE, cursor=optional_id(cursor, "cursor"), filters=given)
    )
    return page(request, viewer, "admin_deliveries.html", deliveries=deliveries, filters=filters,
                args={k: str(v) for k, v in given.items()}, statuses=DELIVERY_STATUSES, kinds=DELIVERY_KINDS,
                next_cursor=_next_cursor(deliveries))  # fmt: skip


def _pretty(body: str | None) -> str | None:
    """A JSON body indented for reading (any other body as it was sent)."""
    if body is None:
        return None
    try:
        return json.dumps(json.loads(body), indent=2, ensure_ascii=False)
    except ValueError:
        return body


@router.get("/deliveries/{delivery_id}")
async def show_delivery(request: Request, viewer: AdminViewer, delivery_id: PathId) -> Response:
    delivery, attempts = await services_of(request).deliveries.get(delivery_id)
    return page(request, viewer, "admin_delivery.html", delivery=delivery, attempts=attempts,
                body=_pretty(delivery.body))  # fmt: skip


@router.post("/deliveries/{delivery_id}/resend")
async def resend_delivery(request: Request, viewer: AdminViewer, delivery_id: PathId) -> Response:
    form = await viewer_form(request, viewer)
    delivery = await services_of(request).deliveries.resend(delivery_id)
    response = redirect(return_path(_text(form, "next"), f"/ui/deliveries/{delivery.id}"))
    notify(request, response, f"Delivery #{delivery.id} is queued to be sent again (same webhook-id).")
    return response


# partner postbacks


@router.get("/partner-postbacks")
async def list_partner_postbacks(
    request: Request, viewer: AdminViewer, partner_id: Text = None, status: Text = None, cursor: Text = None
) -> Response:
    services = services_of(request)
    chosen = optional_choice(status, "status", [s.value for s in PostbackStatus])
    partner = optional_id(partner_id, "partner_id")
    postbacks = await services.partner_postbacks.list(
        viewer.scope,
        Page(limit=PAGE_SIZE, cursor=optional_id(cursor, "cursor"), filters={"status": chosen} if chosen else {}),
        partner,
    )
    args = {k: str(v) for k, v in {"partner_id": partner, "status": chosen}.items() if v}
    names = await catalog_names(services)
    return page(request, viewer, "admin_partner_postbacks.html", postbacks=postbacks, names=names,
                partner_id=partner, state=chosen or "", statuses=[s.value for s in PostbackStatus], args=args,
                next_cursor=_next_cursor(postbacks))  # fmt: skip


@router.post("/partner-postbacks/{postback_id}/status")
async def partner_postback_status(request: Request, viewer: AdminViewer, postback_id: PathId) -> Response:
    form = await viewer_form(request, viewer)
    body = convert({"status": _text(form, "status")}, PartnerPostbackUpdate)
    postback = await services_of(request).partner_postbacks.update(viewer.scope, postback_id, body)
    response = redirect("/ui/partner-postbacks")
    notify(request, response, f"Partner postback #{postback.id} is {postback.status.value}.")
    return response


@router.post("/partner-postbacks/{postback_id}/test")
async def test_partner_postback(request: Request, viewer: AdminViewer, postback_id: PathId) -> Response:
    """Send a test of the postback (sample values) and show its delivery."""
    form = await viewer_form(request, viewer)
    try:
        delivery = await services_of(request).partner_postbacks.test(viewer.scope, postback_id)
    except Conflict as waiting:
        response = redirect(return_path(_text(form, "next"), "/ui/partner-postbacks"))
        notify(request, response, f"No new test: {waiting}.")
        return response
    response = redirect(f"/ui/deliveries/{delivery.id}")
    notify(request, response, f"Test of partner postback #{postback_id} queued with sample values; reload to see "
                              "its attempt.")  # fmt: skip
    return response


@router.post("/partner-postbacks/{postback_id}/delete")
async def delete_partner_postback(request: Request, viewer: AdminViewer, postback_id: PathId) -> Response:
    form = await viewer_form(request, viewer)
    await services_of(request).partner_postbacks.delete(viewer.scope, postback_id)
    response = redirect(return_path(_text(form, "next"), "/ui/partner-postbacks"))
    notify(request, response, f"Partner postback #{postback_id} deleted; its delivery log is kept.")
    return response


# Segment sources


@router.get("/sources")
async def list_sources(request: Request, viewer: AdminViewer, cursor: Text = None) -> Response:
    services = services_of(request)
    sources = await services.sources.list(Page(limit=PAGE_SIZE, cursor=optional_id(cursor, "cursor")))
    return page(request, viewer, "admin_sources.html", sources=sources, names=await catalog_names(services),
                presets=PRESETS, next_cursor=_next_cursor(sources))  # fmt: skip


@router.post("/sources")
async def create_source(request: Request, viewer: AdminViewer) -> Response:
    form = await viewer_form(request, viewer)
    values = {name: _text(form, name) for name in ("name", "advertiser_id", "preset", "write_key") if _text(form, name)}
    source = await services_of(request).sources.create(convert(values, SourceCreate))
    response = redirect(f"/ui/sources/{source.id}")
    notify(
        request, response, f"Source {source.name} created: point a Segment client at this server with its write key."
    )
    return response


@router.get("/sources/{source_id}")
async def show_source(
    request: Request, viewer: AdminViewer, source_id: PathId, outcome: Text = None, cursor: Text = None
) -> Response:
    return await _source_page(request, viewer, source_id, outcome, cursor)


async def _source_page(
    request: Request, viewer: Viewer, source_id: int, outcome: str | None, cursor: str | None, **preview: Any
) -> Response:
    services = services_of(request)
    source = await services.sources.get(source_id)
    chosen = optional_choice(outcome, "outcome", OUTCOMES)
    messages = await services.customers.messages(
        Page(limit=PAGE_SIZE, cursor=optional_id(cursor, "cursor"),
             filters={"source_id": source_id, **({"outcome": chosen} if chosen else {})})
    )  # fmt: skip
    effective = settings_json(source_settings(source.preset, source.settings))
    base = public_base(request)
    context = {"preview": None, "pasted": PREVIEW_EXAMPLE, "preview_error": None, **preview}
    status = 400 if context["preview_error"] else 200
    return page(request, viewer, "admin_source.html", status, source=source, messages=messages, outcome=chosen or "",
                outcomes=OUTCOMES, effective={k: readable(v) for k, v in effective.items()},
                overrides=set(source.settings), names=await catalog_names(services), base=base,
                next_cursor=_next_cursor(messages), **context)  # fmt: skip


PREVIEW_EXAMPLE = json.dumps(
    {"type": "track", "event": "Order Completed", "userId": "u1",
     "properties": {"order_id": "A1", "revenue": "120.00", "currency": "USD", "transaction_id": "TID"}},
    indent=2,
)  # fmt: skip
PREVIEW_MAX_CHARS = 32_000


@router.post("/sources/{source_id}/preview")
async def preview_message(request: Request, viewer: AdminViewer, source_id: PathId) -> Response:
    """How a pasted message would be mapped and applied on this source, without storing anything."""
    form = await viewer_form(request, viewer)
    pasted = str(form.get("message", ""))[:PREVIEW_MAX_CHARS]
    services = services_of(request)
    source = await services.segment.get_source(source_id)
    if source is None:
        raise NotFound(f"no source has id {source_id}")
    try:
        raw = json.loads(pasted)
        if not isinstance(raw, dict):
            raise InvalidParameter("message", "must be one JSON object, as a client sends it")
        preview = await services.segment.preview(source, raw)
    except json.JSONDecodeError as error:
        problem = f"message: not JSON ({error.msg} at line {error.lineno}, column {error.colno})"
        return await _source_page(request, viewer, source_id, None, None, pasted=pasted, preview_error=problem)
    except InvalidParameter as error:
        problem = f"{error.field}: {error.detail}"
        return await _source_page(request, viewer, source_id, None, None, pasted=pasted, preview_error=problem)
    return await _source_page(request, viewer, source_id, None, None, pasted=pasted, preview=preview)


@router.post("/sources/{source_id}")
async def update_source(request: Request, viewer: AdminViewer, source_id: PathId) -> Response:
    form = await viewer_form(request, viewer)
    values = {name: _text(form, name) for name in ("name", "advertiser_id") if _text(form, name)}
    source = await services_of(request).sources.update(source_id, convert(values, SourceUpdate))
    response = redirect(f"/ui/sources/{source.id}")
    notify(request, response, "Source saved; it applies to messages within 5 seconds.")
    return response


# customers


@router.get("/customers")
async def list_customers(
    request: Request,
    viewer: AdminViewer,
    group_by: Text = None,
    from_: Annotated[str | None, Query(alias="from", max_length=32)] = None,
    to: Annotated[str | None, Query(max_length=32)] = None,
    source_id: Text = None,
    partner_id: Text = None,
    offer_id: Text = None,
    cursor: Text = None,
) -> Response:
    """The customer metrics per partner, offer or source over the chosen days, and the customers themselves."""
    services = services_of(request)
    group = optional_choice(group_by, "group_by", GROUPS) or "partner"
    days = date_range(from_, to, program_zone(request))
    filters = {"source_id": optional_id(source_id, "source_id"), "partner_id": optional_id(partner_id, "partner_id"),
               "offer_id": optional_id(offer_id, "offer_id")}  # fmt: skip
    given = {k: v for k, v in filters.items() if v is not None}
    report = await services.customers.report(group, days.created_from, days.created_to, given)
    metrics = msgspec.to_builtins(customer_report_view(report.group_by, report.rows, report.totals))
    customers = await services.customers.list(Page(limit=PAGE_SIZE, cursor=optional_id(cursor, "cursor"),
                                                   filters=given))  # fmt: skip
    sources = {s.id: s.name for s in await services.sources.list(Page(limit=NAMES_LIMIT))}
    args = {"group_by": group, "from": days.first.isoformat(), "to": days.last.isoformat(),
            **{k: str(v) for k, v in given.items()}}  # fmt: skip
    return page(request, viewer, "admin_customers.html", metrics=metrics, group=group, groups=GROUPS, days=days,
                filters=filters, customers=customers, names=await catalog_names(services), sources=sources,
                args=args, next_cursor=_next_cursor(customers))  # fmt: skip


@router.get("/customers/{customer_id}")
async def show_customer(request: Request, viewer: AdminViewer, customer_id: PathId) -> Response:
    services = services_of(request)
    customer = await services.customers.get(customer_id)
    source = await services.sources.get(customer.source_id)
    return page(request, viewer, "admin_customer.html", customer=customer, source=source,
                names=await catalog_names(services), traits={k: readable(v) for k, v in customer.traits.items()},
                group_traits={k: readable(v) for k, v in customer.group_traits.items()})  # fmt: skip
