"""The admin's conversions: the filtered list, one conversion with its attribution trace told step by step, the
status change (approve, hold, reject with a reason), and the review queue (`/ui/review`): the pending
conversions one at a time, with keyboard shortcuts in `console.js` over buttons that work without it."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from starlette.requests import Request
from starlette.responses import Response

from tracklane.domain.model import ConversionStatus, Origin
from tracklane.resources.conversions import ConversionChange
from tracklane.resources.decoding import convert
from tracklane.services.ports import Page
from tracklane.web.api.listing import PathId
from tracklane.web.ui.dates import date_range, program_zone
from tracklane.web.ui.reports import catalog_names, optional_choice, optional_id, return_path
from tracklane.web.ui.routing import PageRoute, page, redirect
from tracklane.web.ui.session import AdminViewer, notify, services_of, viewer_form

router = APIRouter(prefix="/ui", route_class=PageRoute, include_in_schema=False)

PAGE_SIZE = 50
QUEUE_SIZE = 50
STATUSES = [s.value for s in ConversionStatus]
ORIGINS = [o.value for o in Origin]
#: How each step of a trace reads for people (`outcome` and `detail` follow it).
STEP_LABELS = {
    "token": "Postback token",
    "cookie": "Offer cookie",
    "click_token": "Click token",
    "click": "Click",
    "method": "Conversion method",
    "event": "Event",
    "window": "Attribution window",
    "prior_conversion": "Earlier conversion",
    "duplicate_check": "Duplicate check",
    "caps": "Caps",
    "revenue": "Revenue",
    "payout": "Payout",
    "status": "Status",
    "status_change": "Status changed",
    "refund": "Refund",
}
Text = Annotated[str | None, Query(max_length=100)]


@router.get("/conversions")
async def list_conversions(
    request: Request,
    viewer: AdminViewer,
    from_: Annotated[str | None, Query(alias="from", max_length=32)] = None,
    to: Annotated[str | None, Query(max_length=32)] = None,
    offer_id: Text = None,
    partner_id: Text = None,
    status: Text = None,
    origin: Text = None,
    transaction_id: Text = None,
    cursor: Text = None,
) -> Response:
    services = services_of(request)
    days = date_range(from_, to, program_zone(request)) if (from_ or to) else None
    filters = {
        "offer_id": optional_id(offer_id, "offer_id"),
        "partner_id": optional_id(partner_id, "partner_id"),
        "status": optional_choice(status, "status", STATUSES),
        "origin": optional_choice(origin, "origin", ORIGINS),
        "transaction_id": (transaction_id or "").strip() or None,
    }
    listed = await services.conversions.list(
        viewer.scope,
        Page(limit=PAGE_SIZE, cursor=optional_id(cursor, "cursor"),
             created_from=days.created_from if days else None, created_to=days.created_to if days else None,
             filters={k: v for k, v in filters.items() if v is not None}),
    )  # fmt: skip
    args = {"from": from_ or "", "to": to or "", **{k: "" if v is None else str(v) for k, v in filters.items()}}
    return page(
        request,
        viewer,
        "admin_conversions.html",
        conversions=listed,
        names=await catalog_names(services),
        filters=filters,
        days=days,
        args={k: v for k, v in args.items() if v},
        next_cursor=listed[-1].id if len(listed) == PAGE_SIZE else None,
        statuses=STATUSES,
        origins=ORIGINS,
    )


@router.get("/conversions/{conversion_id}")
async def show_conversion(request: Request, viewer: AdminViewer, conversion_id: PathId) -> Response:
    services = services_of(request)
    conversion = await services.conversions.get(viewer.scope, conversion_id)
    return page(request, viewer, "admin_conversion.html", conversion=conversion, names=await catalog_names(services),
                steps=STEP_LABELS, statuses=STATUSES)  # fmt: skip


@router.post("/conversions/{conversion_id}/status")
async def change_status(request: Request, viewer: AdminViewer, conversion_id: PathId) -> Response:
    """Set the status; a rejection needs its reason. `next` is the page to go back to (the review queue)."""
    form = await viewer_form(request, viewer)
    values = {name: str(form.get(name, "")).strip() or None for name in ("status", "reason", "reason_code")}
    change = convert({k: v for k, v in values.items() if v is not None}, ConversionChange)
    actor = f"{viewer.user.email} (console)"
    before = await services_of(request).conversions.get(viewer.scope, conversion_id)
    await services_of(request).conversions.change(viewer.scope, conversion_id, change, actor)
    target = return_path(str(form.get("next", "")), f"/ui/conversions/{conversion_id}")
    if target.startswith("/ui/review") and not form.get("undoing"):
        target = f"/ui/review?undo={conversion_id}&was={before.status.value}"
    response = redirect(target)
    notify(request, response, f"Conversion #{conversion_id} is {change.status.value}.")
    return response


@router.post("/conversions/{conversion_id}/adjustment")
async def adjust(request: Request, viewer: AdminViewer, conversion_id: PathId) -> Response:
    """Adjust the money (a refund, a revenue, a payout) with its reason; the fields left empty do not change."""
    form = await viewer_form(request, viewer)
    values = {
        name: str(form.get(name, "")).strip() for name in ("refund", "revenue", "payout", "reason", "reason_code")
    }
    change = convert({k: v for k, v in values.items() if v}, ConversionChange)
    services = services_of(request)
    before = await services.conversions.get(viewer.scope, conversion_id)
    after = await services.conversions.change(viewer.scope, conversion_id, change, f"{viewer.user.email} (console)")
    response = redirect(f"/ui/conversions/{conversion_id}")
    reversed_ = after.status != before.status
    notify(request, response, f"Conversion #{conversion_id} adjusted{' and reversed' if reversed_ else ''}.")
    return response


@router.get("/review")
async def review(
    request: Request, viewer: AdminViewer, at: Text = None, undo: Text = None, was: Text = None
) -> Response:
    """The pending conversions, newest first; `at` picks the one shown (default: the first), `undo` and `was`
    offer to put back the one just decided."""
    services = services_of(request)
    queue = await services.conversions.list(
        viewer.scope, Page(limit=QUEUE_SIZE, filters={"status": ConversionStatus.PENDING.value})
    )
    chosen = optional_id(at, "at")
    index = next((i for i, c in enumerate(queue) if c.id == chosen), 0)
    current = queue[index] if queue else None
    return page(
        request,
        viewer,
        "admin_review.html",
        queue=queue,
        current=current,
        previous=queue[index - 1] if queue and index > 0 else None,
        following=queue[index + 1] if index + 1 < len(queue) else None,
        undo=optional_id(undo, "undo"),
        was=optional_choice(was, "was", STATUSES),
        names=await catalog_names(services),
        steps=STEP_LABELS,
    )
