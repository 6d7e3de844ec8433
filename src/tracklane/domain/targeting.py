"""Offer targeting: which visitors may click through to an offer, and the verdict on one visitor.

An offer's `Targeting` has allow lists on what a click records of its visitor (country, device type,
operating system, browser; an empty list is anyone) and rules on the click's parameters (`sub1`..`sub5`,
`source_id`, `referrer`): an `allow` rule lets through only values that match one of its values, a `block`
rule turns away values that match one. Values match `exact`ly, by `contains` or by `starts_with`, ignoring
case. A visitor who fails any list is refused with the reason `targeting:<what>` (`targeting:country`,
`targeting:sub1`, ...); a country allow list refuses a visitor whose country is unknown.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Final

RULE_FIELDS: Final = ("sub1", "sub2", "sub3", "sub4", "sub5", "source_id", "referrer")


class RuleAction(StrEnum):
    ALLOW = "allow"
    BLOCK = "block"


class MatchKind(StrEnum):
    EXACT = "exact"
    CONTAINS = "contains"
    STARTS_WITH = "starts_with"


@dataclass(frozen=True, slots=True)
class ParamRule:
    """An allow or block list on one click parameter; values are kept lower-case."""

    field: str
    action: RuleAction
    match: MatchKind
    values: tuple[str, ...]

    def matches(self, value: str | None) -> bool:
        if value is None:
            return False
        text = value.lower()
        if self.match is MatchKind.EXACT:
            return text in self.values
        if self.match is MatchKind.CONTAINS:
            return any(v in text for v in self.values)
        return text.startswith(self.values)

    def passes(self, value: str | None) -> bool:
        hit = self.matches(value)
        return hit if self.action is RuleAction.ALLOW else not hit


@dataclass(frozen=True, slots=True)
class Targeting:
    """Countries upper-case ISO 3166-1 alpha-2; device types, systems and browsers compared ignoring case."""

    countries: tuple[str, ...] = ()
    device_types: tuple[str, ...] = ()
    operating_systems: tuple[str, ...] = ()
    browsers: tuple[str, ...] = ()
    rules: tuple[ParamRule, ...] = ()

    @property
    def empty(self) -> bool:
        return not (self.countries or self.device_types or self.operating_systems or self.browsers or self.rules)


NO_TARGETING: Final = Targeting()


@dataclass(frozen=True, slots=True)
class Visitor:
    """What a click says about its visitor and its parameters, as targeting reads it."""

    country: str | None
    device_type: str
    os: str | None
    browser: str | None
    params: Mapping[str, str | None]


def _listed(allowed: tuple[str, ...], value: str | None) -> bool:
    return not allowed or (value is not None and value.lower() in {a.lower() for a in allowed})


def mismatch(targeting: Targeting, visitor: Visitor) -> str | None:
    """The reason the visitor is outside the offer's targeting (`targeting:<what>`), or None."""
    if targeting.empty:
        return None
    if targeting.countries and (visitor.country or "").upper() not in targeting.countries:
        return "targeting:country"
    if not _listed(targeting.device_types, visitor.device_type):
        return "targeting:device_type"
    if not _listed(targeting.operating_systems, visitor.os):
        return "targeting:os"
    if not _listed(targeting.browsers, visitor.browser):
        return "targeting:browser"
    for rule in targeting.rules:
        if not rule.passes(visitor.params.get(rule.field)):
            return f"targeting:{rule.field}"
    return None


def to_document(targeting: Targeting) -> dict[str, Any] | None:
    """The JSON stored on the offer (None: no targeting)."""
    if targeting.empty:
        return None
    return {
        "countries": list(targeting.countries),
        "device_types": list(targeting.device_types),
        "operating_systems": list(targeting.operating_systems),
        "browsers": list(targeting.browsers),
        "rules": [
            {"field": r.field, "action": r.action.value, "match": r.match.value, "values": list(r.values)}
            for r in targeting.rules
        ],
    }


def from_document(document: Mapping[str, Any] | None) -> Targeting:
    """The stored JSON back (written by `to_document`, so trusted)."""
    if not document:
        return NO_TARGETING
    return Targeting(
        countries=tuple(document.get("countries", ())),
        device_types=tuple(document.get("device_types", ())),
        operating_systems=tuple(document.get("operating_systems", ())),
        browsers=tuple(document.get("browsers", ())),
        rules=tuple(
            ParamRule(r["field"], RuleAction(r["action"]), MatchKind(r["match"]), tuple(v.lower() for v in r["values"]))
            for r in document.get("rules", ())
        ),
    )
