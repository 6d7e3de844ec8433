"""Routes of traffic rules and the blocks optimization rules make: admin keys manage them (a block list is the
network's decision; `tracklane.services.traffic`); a partner key reads the blocks that apply to its partner."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Response

from tracklane.domain.traffic import BlockStatus, RuleKind, RuleStatus
from tracklane.resources.traffic import (
    BlockLift,
    EvaluationView,
    TrafficBlockView,
    TrafficRuleCreate,
    TrafficRuleUpdate,
    TrafficRuleView,
    traffic_block_view,
    traffic_rule_view,
)
from tracklane.services.ports import Page
from tracklane.web.api.auth import Admin, Caller, Services
from tracklane.web.api.contract import body, documented, encoded, listing
from tracklane.web.api.listing import PathId, QueryId, listed, page, with_filters

router = APIRouter(tags=["traffic rules"])
Paging = Annotated[Page, Depends(page)]
TrafficRuleList = listing(TrafficRuleView, "TrafficRuleList")
TrafficBlockList = listing(TrafficBlockView, "TrafficBlockList")

OPTIMIZE_EXAMPLE = {
    "kind": "optimize", "name": "Weak sub1 placements", "offer_id": 1, "variable": "sub1",
    "min_clicks": 200, "cvr_below_percent": "0.5", "window_days": 7,
}  # fmt: skip


@router.post(
    "/traffic-rules",
    status_code=201,
    openapi_extra=documented(body=TrafficRuleCreate, responses={201: TrafficRuleView}, example=OPTIMIZE_EXAMPLE),
)
async def create_traffic_rule(
    _: Admin, payload: Annotated[TrafficRuleCreate, Depends(body(TrafficRuleCreate))], services: Services
) -> Response:
    """A block rule (`"kind": "block"`, `variable`, `values`, `match`) applies to the next click; an
    optimization rule (`"kind": "optimize"`) blocks values as the worker evaluates it."""
    return encoded(traffic_rule_view(await services.traffic.create(payload)), 201)


@router.get("/traffic-rules", openapi_extra=documented(responses={200: TrafficRuleList}))
async def list_traffic_rules(
    services: Services,
    _: Admin,
    paging: Paging,
    offer_id: QueryId = None,
    partner_id: QueryId = None,
    kind: Annotated[RuleKind | None, Query()] = None,
    status: Annotated[RuleStatus | None, Query()] = None,
) -> Response:
    filters = {"offer_id": offer_id, "partner_id": partner_id, "kind": kind and kind.value,
               "status": status and status.value}  # fmt: skip
    items = await services.traffic.rules(with_filters(paging, **filters))
    return encoded(listed(items, [traffic_rule_view(r) for r in items], paging.limit))


@router.get("/traffic-rules/{rule_id}", openapi_extra=documented(responses={200: TrafficRuleView}))
async def get_traffic_rule(rule_id: PathId, services: Services, _: Admin) -> Response:
    return encoded(traffic_rule_view(await services.traffic.get(rule_id)))


@router.patch(
    "/traffic-rules/{rule_id}",
    openapi_extra=documented(body=TrafficRuleUpdate, responses={200: TrafficRuleView}, example={"status": "paused"}),
)
async def update_traffic_rule(
    rule_id: PathId,
    _: Admin,
    payload: Annotated[TrafficRuleUpdate, Depends(body(TrafficRuleUpdate))],
    services: Services,
) -> Response:
    """Change the name, list or thresholds; `"status": "paused"` stops the rule and its blocks at once."""
    return encoded(traffic_rule_view(await services.traffic.update(rule_id, payload)))


@router.delete("/traffic-rules/{rule_id}", status_code=204, openapi_extra=documented(responses={204: None}))
async def delete_traffic_rule(rule_id: PathId, _: Admin, services: Services) -> Response:
    """Delete the rule and the blocks it made."""
    await services.traffic.delete(rule_id)
    return Response(status_code=204)


@router.post("/traffic-rules/{rule_id}/evaluate", openapi_extra=documented(responses={200: EvaluationView}))
async def evaluate_traffic_rule(rule_id: PathId, _: Admin, services: Services) -> Response:
    """Evaluate an optimization rule now, as the worker does periodically: the answer lists what it blocked
    this time (and `traffic.optimized` is emitted when that is anything)."""
    at, blocks = await services.traffic.evaluate(rule_id)
    return encoded(EvaluationView(rule_id=rule_id, evaluated_at=at, blocks=[traffic_block_view(b) for b in blocks]))


@router.get("/traffic-blocks", openapi_extra=documented(responses={200: TrafficBlockList}))
async def list_traffic_blocks(
    services: Services,
    scope: Caller,
    paging: Paging,
    rule_id: QueryId = None,
    offer_id: QueryId = None,
    partner_id: QueryId = None,
    status: Annotated[BlockStatus | None, Query()] = None,
) -> Response:
    """The values optimization rules blocked, newest first, with the clicks and conversions that blocked them:
    every one with an admin key, its own with a partner key (an advertiser key: 403)."""
    filters = {"rule_id": rule_id, "offer_id": offer_id, "partner_id": partner_id, "status": status and status.value}
    items = await services.traffic.blocks(scope, with_filters(paging, **filters))
    return encoded(listed(items, [traffic_block_view(b) for b in items], paging.limit))


@router.get("/traffic-blocks/{block_id}", openapi_extra=documented(responses={200: TrafficBlockView}))
async def get_traffic_block(block_id: PathId, services: Services, scope: Caller) -> Response:
    return encoded(traffic_block_view(await services.traffic.block(scope, block_id)))


@router.post(
    "/traffic-blocks/{block_id}/lift",
    openapi_extra=documented(
        body=BlockLift, responses={200: TrafficBlockView}, example={"reason": "placement reviewed with the partner"}
    ),
)
async def lift_traffic_block(
    block_id: PathId, key: Admin, payload: Annotated[BlockLift, Depends(body(BlockLift))], services: Services
) -> Response:
    """Let the value through again; the rule will not block it again."""
    lifted = await services.traffic.lift(block_id, f"api key #{key.id}", payload.reason)
    return encoded(traffic_block_view(lifted))
