"""Traffic rules: block lists and optimization rules over a click's traffic variables, the blocks they make,
and the verdict on one click.

A **block rule** turns away clicks whose variable (`sub1`..`sub5`, `source_id`, `referrer`, `country`)
matches one of its values (exactly, by `contains` or by `starts_with`, ignoring case), on one offer or every
offer, for one partner or every partner. An **optimization rule** (Everflow's "Traffic Optimization") is
evaluated periodically: every value of its variable that brought at least `min_clicks` billable clicks of
one partner on one offer over the last `window_days`, with a conversion rate under `cvr_below_percent`, is
blocked for that offer and partner. Each such **block** is recorded with the numbers that made it, and can
be lifted by a person: a lifted block stays lifted (the rule does not block that value again), so lifting is
a decision, not a pause until the next evaluation. A paused rule blocks nothing, its blocks included.

A blocked click is recorded, rejected with the reason `blocked:<variable>`, and goes to the fallback.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Final

from tracklane.domain.targeting import MatchKind, ParamRule, RuleAction, Visitor

MAX_VALUES: Final = 3000
MAX_WINDOW_DAYS: Final = 90
BLOCKED_PREFIX: Final = "blocked:"


class TrafficVariable(StrEnum):
    SUB1 = "sub1"
    SUB2 = "sub2"
    SUB3 = "sub3"
    SUB4 = "sub4"
    SUB5 = "sub5"
    SOURCE_ID = "source_id"
    REFERRER = "referrer"
    COUNTRY = "country"


#: The variables an optimization rule may group clicks by (a referrer is a whole URL: too many values).
OPTIMIZABLE: Final = frozenset(TrafficVariable) - {TrafficVariable.REFERRER}


class RuleKind(StrEnum):
    BLOCK = "block"
    OPTIMIZE = "optimize"


class RuleStatus(StrEnum):
    ACTIVE = "active"
    PAUSED = "paused"


class BlockStatus(StrEnum):
    ACTIVE = "active"
    LIFTED = "lifted"


@dataclass(frozen=True, slots=True)
class TrafficRule:
    id: int
    kind: RuleKind
    name: str | None
    offer_id: int | None  # None: every offer
    partner_id: int | None  # None: every partner
    variable: TrafficVariable
    match: MatchKind  # block rules
    values: tuple[str, ...]  # block rules; lower-case
    min_clicks: int | None  # optimization rules
    cvr_below_percent: Decimal | None
    window_days: int | None
    status: RuleStatus
    last_evaluated_at: datetime | None
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class TrafficBlock:
    """One value an optimization rule blocked for one offer and partner, with the numbers that blocked it."""

    id: int
    rule_id: int
    offer_id: int
    partner_id: int
    variable: TrafficVariable
    value: str
    clicks: int
    conversions: int
    cvr_percent: Decimal
    status: BlockStatus
    created_at: datetime
    lifted_at: datetime | None
    lifted_by: str | None
    lift_reason: str | None


@dataclass(frozen=True, slots=True)
class TrafficStat:
    """Billable clicks and their base conversions of one offer, partner and variable value over a window."""

    offer_id: int
    partner_id: int
    value: str
    clicks: int
    conversions: int

    @property
    def cvr_percent(self) -> Decimal:
        return (Decimal(self.conversions) * 100 / Decimal(self.clicks)).quantize(Decimal("0.01"))


def over_threshold(rule: TrafficRule, stats: Iterable[TrafficStat]) -> list[TrafficStat]:
    """The values an optimization rule blocks: enough clicks, a conversion rate under the threshold."""
    assert rule.min_clicks is not None and rule.cvr_below_percent is not None
    below = rule.cvr_below_percent
    return [
        s for s in stats if s.clicks >= rule.min_clicks and Decimal(s.conversions) * 100 < below * Decimal(s.clicks)
    ]


@dataclass(frozen=True, slots=True)
class Blocklist:
    """What blocks one offer's clicks from one partner: the active block rules' lists, and the values active
    optimization blocks hold (variable, lower-case value)."""

    rules: tuple[ParamRule, ...] = ()
    values: frozenset[tuple[str, str]] = frozenset()

    def blocked(self, visitor: Visitor) -> str | None:
        """`blocked:<variable>` when the click must be turned away, else None."""
        for rule in self.rules:
            if rule.matches(value_of(visitor, rule.field)):
                return BLOCKED_PREFIX + rule.field
        for variable, value in self.values:
            seen = value_of(visitor, variable)
            if seen is not None and seen.lower() == value:
                return BLOCKED_PREFIX + variable
        return None


NO_BLOCKS: Final = Blocklist()


def blocklist(rules: Iterable[TrafficRule], blocks: Iterable[TrafficBlock]) -> Blocklist:
    """The blocklist of the active block rules and the active blocks of active optimization rules given."""
    active = {r.id: r for r in rules if r.status is RuleStatus.ACTIVE}
    lists = tuple(
        ParamRule(r.variable.value, RuleAction.BLOCK, r.match, r.values)
        for r in active.values()
        if r.kind is RuleKind.BLOCK
    )
    values = frozenset(
        (b.variable.value, b.value.lower()) for b in blocks if b.status is BlockStatus.ACTIVE and b.rule_id in active
    )
    return Blocklist(lists, values) if lists or values else NO_BLOCKS


def value_of(visitor: Visitor, variable: str) -> str | None:
    if variable == TrafficVariable.COUNTRY:
        return visitor.country
    return visitor.params.get(variable)
