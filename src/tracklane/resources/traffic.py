"""Traffic rules and blocks: the bodies that create and change a rule or lift a block, how the admin sees them,
and the `traffic.optimized` webhook payload (`tracklane.domain.traffic` says what they do)."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated

import msgspec

from tracklane.domain.errors import InvalidParameter
from tracklane.domain.ids import MAX_ID
from tracklane.domain.targeting import MatchKind
from tracklane.domain.traffic import (
    MAX_VALUES,
    MAX_WINDOW_DAYS,
    OPTIMIZABLE,
    BlockStatus,
    RuleKind,
    RuleStatus,
    TrafficBlock,
    TrafficRule,
    TrafficVariable,
)
from tracklane.resources.fields import UNSET, Amount, Id, Name, Reason, Struct, Unset, View

RuleValue = Annotated[str, msgspec.Meta(min_length=1, max_length=255)]
RuleValues = Annotated[
    list[RuleValue],
    msgspec.Meta(min_length=1, max_length=MAX_VALUES, description="block rules: the values turned away (case ignored)"),
]
MinClicks = Annotated[int, msgspec.Meta(ge=1, le=1_000_000_000, description="optimization rules: clicks a value needs "
                                        "before its conversion rate is judged")]  # fmt: skip
WindowDays = Annotated[int, msgspec.Meta(ge=1, le=MAX_WINDOW_DAYS, description="optimization rules: the days judged")]
CVR_HELP = "optimization rules: a value converting under this percentage of its clicks is blocked (0 < x <= 100)"
OfferScope = Annotated[int, msgspec.Meta(ge=1, le=MAX_ID, description="one offer; null or absent: every offer")]
PartnerScope = Annotated[int, msgspec.Meta(ge=1, le=MAX_ID, description="one partner; null or absent: every partner")]


def _percent(value: Decimal, field: str) -> Decimal:
    if not (0 < value <= 100):
        raise InvalidParameter(field, "must be over 0 and at most 100")
    if value != value.quantize(Decimal("0.01")):
        raise InvalidParameter(field, "has more than 2 decimal places")
    return value.quantize(Decimal("0.01"))


def _values(values: list[str]) -> list[str]:
    kept = list(dict.fromkeys(v.strip().lower() for v in values if v.strip()))
    if not kept:
        raise InvalidParameter("values", "needs at least one value that is not blank")
    return kept


class TrafficRuleCreate(Struct):
    """A block rule (`variable`, `values`, `match`) or an optimization rule (`variable`, `min_clicks`,
    `cvr_below_percent`, `window_days`), on one offer or all, for one partner or all."""

    kind: RuleKind
    variable: TrafficVariable
    name: Name | None = None
    offer_id: OfferScope | None = None
    partner_id: PartnerScope | None = None
    match: MatchKind | Unset = UNSET
    values: RuleValues | Unset = UNSET
    min_clicks: MinClicks | Unset = UNSET
    cvr_below_percent: Annotated[Amount, msgspec.Meta(description=CVR_HELP)] | Unset = UNSET
    window_days: WindowDays | Unset = UNSET
    status: RuleStatus = RuleStatus.ACTIVE

    def __post_init__(self) -> None:
        if self.kind is RuleKind.BLOCK:
            _refuse(self, ("min_clicks", "cvr_below_percent", "window_days"), "a block rule")
            if isinstance(self.values, Unset):
                raise InvalidParameter("values", "is required for a block rule")
            self.values = _values(self.values)
            if isinstance(self.match, Unset):
                self.match = MatchKind.EXACT
            return
        _refuse(self, ("values", "match"), "an optimization rule")
        if self.variable not in OPTIMIZABLE:
            raise InvalidParameter("variable", "an optimization rule cannot group clicks by referrer")
        if isinstance(self.min_clicks, Unset):
            raise InvalidParameter("min_clicks", "is required for an optimization rule")
        if isinstance(self.cvr_below_percent, Unset):
            raise InvalidParameter("cvr_below_percent", "is required for an optimization rule")
        self.cvr_below_percent = Amount(_percent(self.cvr_below_percent, "cvr_below_percent"))
        if isinstance(self.window_days, Unset):
            self.window_days = 7


def _refuse(body: msgspec.Struct, fields: tuple[str, ...], what: str) -> None:
    for field in fields:
        if getattr(body, field) is not UNSET:
            raise InvalidParameter(field, f"does not apply to {what}")


class TrafficRuleUpdate(Struct):
    """Change a rule's name, status, list or thresholds; its kind, variable, offer and partner stay."""

    name: Name | Unset | None = UNSET
    status: RuleStatus | Unset = UNSET
    match: MatchKind | Unset = UNSET
    values: RuleValues | Unset = UNSET
    min_clicks: MinClicks | Unset = UNSET
    cvr_below_percent: Annotated[Amount, msgspec.Meta(description=CVR_HELP)] | Unset = UNSET
    window_days: WindowDays | Unset = UNSET

    def __post_init__(self) -> None:
        if not isinstance(self.values, Unset):
            self.values = _values(self.values)
        if not isinstance(self.cvr_below_percent, Unset):
            self.cvr_below_percent = Amount(_percent(self.cvr_below_percent, "cvr_below_percent"))

    def refuse_other_kind(self, kind: RuleKind) -> None:
        if kind is RuleKind.BLOCK:
            _refuse(self, ("min_clicks", "cvr_below_percent", "window_days"), "a block rule")
        else:
            _refuse(self, ("values", "match"), "an optimization rule")


class BlockLift(Struct):
    reason: Reason


class TrafficRuleView(View, frozen=True):
    id: Id
    kind: RuleKind
    name: str | None
    offer_id: int | None
    partner_id: int | None
    variable: TrafficVariable
    match: MatchKind | None
    values: list[str] | None
    min_clicks: int | None
    cvr_below_percent: str | None
    window_days: int | None
    status: RuleStatus
    last_evaluated_at: datetime | None
    created_at: datetime
    updated_at: datetime


def traffic_rule_view(rule: TrafficRule) -> TrafficRuleView:
    block = rule.kind is RuleKind.BLOCK
    return TrafficRuleView(
        id=rule.id, kind=rule.kind, name=rule.name, offer_id=rule.offer_id, partner_id=rule.partner_id,
        variable=rule.variable, match=rule.match if block else None, values=list(rule.values) if block else None,
        min_clicks=rule.min_clicks,
        cvr_below_percent=None if rule.cvr_below_percent is None else str(rule.cvr_below_percent),
        window_days=rule.window_days, status=rule.status, last_evaluated_at=rule.last_evaluated_at,
        created_at=rule.created_at, updated_at=rule.updated_at,
    )  # fmt: skip


class TrafficBlockView(View, frozen=True):
    """A value an optimization rule blocked for one offer and partner, and the numbers that blocked it."""

    id: Id
    rule_id: Id
    offer_id: Id
    partner_id: Id
    variable: TrafficVariable
    value: str
    clicks: int
    conversions: int
    cvr_percent: str
    status: BlockStatus
    created_at: datetime
    lifted_at: datetime | None
    lifted_by: str | None
    lift_reason: str | None


def traffic_block_view(block: TrafficBlock) -> TrafficBlockView:
    return TrafficBlockView(
        id=block.id, rule_id=block.rule_id, offer_id=block.offer_id, partner_id=block.partner_id,
        variable=block.variable, value=block.value, clicks=block.clicks, conversions=block.conversions,
        cvr_percent=str(block.cvr_percent), status=block.status, created_at=block.created_at,
        lifted_at=block.lifted_at, lifted_by=block.lifted_by, lift_reason=block.lift_reason,
    )  # fmt: skip


class EvaluationView(View, frozen=True):
    """What one evaluation of an optimization rule blocked (nothing new: an empty list)."""

    rule_id: Id
    evaluated_at: datetime
    blocks: list[TrafficBlockView]


class Relation(View, frozen=True):
    id: Id
    name: str


class BlockedVariable(View, frozen=True):
    block_id: Id
    variable: TrafficVariable
    value: str
    offer: Relation
    partner: Relation
    clicks: int
    conversions: int
    cvr_percent: str


class OptimizedRule(View, frozen=True):
    id: Id
    name: str | None
    variable: TrafficVariable
    min_clicks: int
    cvr_below_percent: str
    window_days: int


class TrafficOptimizedData(View, frozen=True):
    """`traffic.optimized`: the traffic variables an optimization rule has just blocked, each with the offer
    and partner it is blocked for."""

    rule: OptimizedRule
    blocked: list[BlockedVariable]
