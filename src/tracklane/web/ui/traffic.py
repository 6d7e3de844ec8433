"""The admin's traffic rules page: block lists and optimization rules (add, pause, resume, evaluate now,
delete) and the blocks the optimization rules made, each with its numbers and a lift with a reason."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import Response

from tracklane.domain.errors import InvalidParameter
from tracklane.domain.targeting import MatchKind
from tracklane.domain.traffic import MAX_VALUES, OPTIMIZABLE, BlockStatus, RuleKind, RuleStatus, TrafficVariable
from tracklane.resources.decoding import convert
from tracklane.resources.traffic import BlockLift, TrafficRuleCreate, TrafficRuleUpdate
from tracklane.services.ports import Page
from tracklane.web.api.listing import PathId
from tracklane.web.ui.reports import NAMES_LIMIT, catalog_names
from tracklane.web.ui.routing import PageRoute, page, redirect
from tracklane.web.ui.session import AdminViewer, Viewer, notify, services_of, viewer_form

router = APIRouter(prefix="/ui", route_class=PageRoute, include_in_schema=False)

PAGE_SIZE = 100
VARIABLES = [v.value for v in TrafficVariable]
OPTIMIZABLE_VARIABLES = [v.value for v in TrafficVariable if v in OPTIMIZABLE]
MATCHES = [m.value for m in MatchKind]
EMPTY_FORM = {"kind": "", "name": "", "offer_id": "", "partner_id": "", "variable": "sub1", "match": "exact",
              "values": "", "min_clicks": "200", "cvr_below_percent": "0.5", "window_days": "7"}  # fmt: skip


def _text(form: FormData, name: str) -> str:
    value = form.get(name)
    return value.strip() if isinstance(value, str) else ""


async def _traffic_page(request: Request, viewer: Viewer, status: int = 200, error: str | None = None,
                        values: dict[str, str] | None = None) -> Response:  # fmt: skip
    services = services_of(request)
    rules = await services.traffic.rules(Page(limit=PAGE_SIZE))
    blocks = await services.traffic.blocks(viewer.scope, Page(limit=PAGE_SIZE))
    names = await catalog_names(services)
    return page(request, viewer, "admin_traffic.html", status, rules=rules, blocks=blocks, names=names,
                active_blocks=sum(b.status is BlockStatus.ACTIVE for b in blocks), error=error,
                values=values or EMPTY_FORM, variables=VARIABLES, optimizable=OPTIMIZABLE_VARIABLES,
                matches=MATCHES, max_values=MAX_VALUES, names_limit=NAMES_LIMIT)  # fmt: skip


@router.get("/traffic")
async def show_traffic(request: Request, viewer: AdminViewer) -> Response:
    return await _traffic_page(request, viewer)


def _rule_body(values: dict[str, str]) -> dict[str, Any]:
    """The form as the API's body: a block rule's list one value per line (or comma), an optimization
    rule's thresholds."""
    shared = ("kind", "variable", "name", "offer_id", "partner_id")
    body: dict[str, Any] = {name: values[name] or None for name in shared}
    if values["kind"] == RuleKind.BLOCK.value:
        body["match"] = values["match"]
        body["values"] = [v for line in values["values"].splitlines() for v in line.split(",") if v.strip()]
    else:
        body.update(min_clicks=values["min_clicks"], cvr_below_percent=values["cvr_below_percent"],
                    window_days=values["window_days"])  # fmt: skip
    return body


@router.post("/traffic")
async def create_rule(request: Request, viewer: AdminViewer) -> Response:
    form = await viewer_form(request, viewer)
    values = {name: _text(form, name) for name in EMPTY_FORM}
    try:
        rule = await services_of(request).traffic.create(convert(_rule_body(values), TrafficRuleCreate))
    except InvalidParameter as refused:
        return await _traffic_page(request, viewer, 400, str(refused), values)
    response = redirect("/ui/traffic")
    what = "Block list" if rule.kind is RuleKind.BLOCK else "Optimization rule"
    notify(request, response, f"{what} #{rule.id} added: it applies to the next click.")
    return response


@router.post("/traffic/{rule_id}/status")
async def rule_status(request: Request, viewer: AdminViewer, rule_id: PathId) -> Response:
    form = await viewer_form(request, viewer)
    status = RuleStatus.PAUSED if _text(form, "status") == RuleStatus.PAUSED.value else RuleStatus.ACTIVE
    rule = await services_of(request).traffic.update(rule_id, TrafficRuleUpdate(status=status))
    response = redirect("/ui/traffic")
    notify(request, response, f"Rule #{rule.id} is {rule.status.value}.")
    return response


@router.post("/traffic/{rule_id}/evaluate")
async def evaluate_rule(request: Request, viewer: AdminViewer, rule_id: PathId) -> Response:
    await viewer_form(request, viewer)
    _, blocks = await services_of(request).traffic.evaluate(rule_id)
    response = redirect("/ui/traffic")
    found = ", ".join(f"{b.variable.value} {b.value!r}" for b in blocks) if blocks else "nothing new"
    notify(request, response, f"Rule #{rule_id} evaluated: blocked {found}.")
    return response


@router.post("/traffic/{rule_id}/delete")
async def delete_rule(request: Request, viewer: AdminViewer, rule_id: PathId) -> Response:
    await viewer_form(request, viewer)
    await services_of(request).traffic.delete(rule_id)
    response = redirect("/ui/traffic")
    notify(request, response, f"Rule #{rule_id} and its blocks deleted.")
    return response


@router.post("/traffic-blocks/{block_id}/lift")
async def lift_block(request: Request, viewer: AdminViewer, block_id: PathId) -> Response:
    form = await viewer_form(request, viewer)
    reason = _text(form, "reason")
    try:
        if not reason:
            raise InvalidParameter("reason", "say why the block is lifted")
        lift = convert({"reason": reason}, BlockLift)  # the API's bounds: a reason too long is refused, not cut
    except InvalidParameter as refused:
        return await _traffic_page(request, viewer, 400, str(refused))
    block = await services_of(request).traffic.lift(block_id, f"{viewer.user.email} (console)", lift.reason)
    response = redirect("/ui/traffic")
    notify(request, response, f"{block.variable.value} {block.value!r} goes through again for this offer and partner.")
    return response
