"""The offer form's targeting fieldset: lists typed as comma-separated text (countries, systems, browsers),
device types as checkboxes, and rows of parameter rules; read from the form, turned into the API's
`targeting` body, and shown again from an offer."""

from __future__ import annotations

import re
from typing import Any, Final

from starlette.datastructures import FormData

from tracklane.domain.targeting import RULE_FIELDS, MatchKind, RuleAction
from tracklane.resources.offers import TargetingView

DEVICE_TYPES: Final = ("desktop", "mobile", "tablet", "unknown")
EMPTY_RULE_ROWS: Final = 2
MAX_RULE_ROWS: Final = 50
LISTS: Final = ("countries", "operating_systems", "browsers")
TARGETING_CHOICES: Final = {
    "device_types": list(DEVICE_TYPES),
    "rule_fields": list(RULE_FIELDS),
    "rule_actions": [a.value for a in RuleAction],
    "rule_matches": [m.value for m in MatchKind],
}
NO_TARGETING_VALUES: Final[dict[str, Any]] = {
    "countries": "", "operating_systems": "", "browsers": "", "device_types": [], "rules": [],
}  # fmt: skip


def _text(form: FormData, name: str) -> str:
    value = form.get(name)
    return value.strip() if isinstance(value, str) else ""


def _items(text: str) -> list[str]:
    return [item.strip() for item in re.split(r"[,\n]", text) if item.strip()]


def typed_targeting(form: FormData) -> dict[str, Any]:
    """The targeting fieldset as typed (to show it again); rule rows without values are dropped."""
    values: dict[str, Any] = {name: _text(form, f"target_{name}") for name in LISTS}
    values["device_types"] = [str(d) for d in form.getlist("target_device_types")]
    rules = []
    rows = _text(form, "rule_rows")
    for index in range(min(int(rows), MAX_RULE_ROWS) if rows.isascii() and rows.isdigit() else 0):
        rule = {key: _text(form, f"rule_{key}_{index}") for key in ("field", "action", "match", "values")}
        if rule["values"]:
            rules.append(rule)
    values["rules"] = rules
    return values


def targeting_body(values: dict[str, Any]) -> dict[str, Any]:
    """The API's `targeting` body of the typed fieldset (an empty list is anyone)."""
    body: dict[str, Any] = {name: _items(values[name]) for name in LISTS}
    body["device_types"] = values["device_types"]
    body["rules"] = [{"field": r["field"], "action": r["action"], "match": r["match"], "values": _items(r["values"])}
                     for r in values["rules"]]  # fmt: skip
    return body


def shown_targeting(t: TargetingView) -> dict[str, Any]:
    """An offer's targeting as the fieldset shows it."""
    return {
        "countries": ", ".join(t.countries), "operating_systems": ", ".join(t.operating_systems),
        "browsers": ", ".join(t.browsers), "device_types": list(t.device_types),
        "rules": [{"field": r.field, "action": r.action.value, "match": r.match.value, "values": ", ".join(r.values)}
                  for r in t.rules],
    }  # fmt: skip
