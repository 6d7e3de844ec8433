"""Validation of the catalogue's inputs (advertisers, partners, offers, events, payouts), field by field.

Each parser takes the decoded JSON body and returns clean typed values, or raises `InvalidParameter`
naming the first bad field. With `partial=True` only the fields present are read (for updates).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from tracklane.domain.caps import CapRule
from tracklane.domain.errors import InvalidParameter
from tracklane.domain.macros import validate_template
from tracklane.domain.model import ConversionStatus, OfferStatus, Visibility
from tracklane.domain.money import PriceRule, parse_currency

MAX_WINDOW_DAYS = 365
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


def parse_name(raw: object, field: str = "name") -> str:
    if not isinstance(raw, str) or not raw.strip():
        raise InvalidParameter(field, "is required and must be a non-empty string")
    if len(raw.strip()) > 200:
        raise InvalidParameter(field, "must be at most 200 characters")
    return raw.strip()


def parse_email(raw: object) -> str:
    if not isinstance(raw, str) or not _EMAIL.match(raw.strip()) or len(raw) > 320:
        raise InvalidParameter("email", "must be an email address")
    return raw.strip().lower()


def parse_choice(raw: object, field: str, choices: type[OfferStatus | Visibility | ConversionStatus]) -> Any:
    try:
        return choices(str(raw))
    except ValueError:
        allowed = ", ".join(c.value for c in choices)
        raise InvalidParameter(field, f"must be one of {allowed}") from None


def _bool(raw: object, field: str) -> bool:
    if not isinstance(raw, bool):
        raise InvalidParameter(field, "must be true or false")
    return raw


def _window(raw: object) -> int:
    if isinstance(raw, bool) or not isinstance(raw, int) or not 1 <= raw <= MAX_WINDOW_DAYS:
        raise InvalidParameter("attribution_window_days", f"must be an integer from 1 to {MAX_WINDOW_DAYS}")
    return raw


def _caps(raw: object) -> list[CapRule]:
    if not isinstance(raw, list):
        raise InvalidParameter("caps", "must be a list of caps")
    caps = [CapRule.parse(item, f"caps[{i}]") for i, item in enumerate(raw)]
    if len(set(caps)) != len(caps):
        raise InvalidParameter("caps", "lists the same cap twice")
    return caps


_OFFER_FIELDS: dict[str, Callable[[Any], Any]] = {
    "name": parse_name,
    "destination_url": lambda raw: validate_template(raw, "destination_url"),
    "fallback_url": lambda raw: None if raw in (None, "") else validate_template(raw, "fallback_url"),
    "status": lambda raw: parse_choice(raw, "status", OfferStatus),
    "visibility": lambda raw: parse_choice(raw, "visibility", Visibility),
    "currency": parse_currency,
    "attribution_window_days": _window,
    "revenue": lambda raw: PriceRule.parse(raw, "revenue"),
    "payout": lambda raw: PriceRule.parse(raw, "payout"),
    "allow_multiple_conversions": lambda raw: _bool(raw, "allow_multiple_conversions"),
    "default_status": lambda raw: parse_choice(raw, "default_status", ConversionStatus),
    "caps": _caps,
}
_OFFER_DEFAULTS: dict[str, Any] = {
    "fallback_url": None,
    "status": OfferStatus.ACTIVE,
    "visibility": Visibility.PUBLIC,
    "currency": "USD",
    "attribution_window_days": 30,
    "allow_multiple_conversions": False,
    "default_status": ConversionStatus.APPROVED,
    "caps": [],
}
_OFFER_REQUIRED = ("name", "destination_url", "revenue", "payout")


def parse_offer(body: Mapping[str, Any], *, partial: bool) -> dict[str, Any]:
    """Clean offer fields (without `advertiser_id`, which the service checks against the store)."""
    values: dict[str, Any] = {} if partial else dict(_OFFER_DEFAULTS)
    for field in _OFFER_REQUIRED:
        if not partial and body.get(field) is None:
            raise InvalidParameter(field, "is required")
    for field, parse in _OFFER_FIELDS.items():
        if field in body and (body[field] is not None or field == "fallback_url"):
            values[field] = parse(body[field])
    if values.get("default_status") is ConversionStatus.REJECTED:
        raise InvalidParameter("default_status", "must be approved or pending")
    return values


def parse_offer_event(body: Mapping[str, Any], *, partial: bool) -> dict[str, Any]:
    values: dict[str, Any] = {} if partial else {"allow_multiple_per_click": False}
    if not partial or "name" in body:
        values["name"] = parse_name(body.get("name"))
    for field in ("revenue", "payout"):
        if not partial and body.get(field) is None:
            raise InvalidParameter(field, "is required")
        if body.get(field) is not None:
            values[field] = PriceRule.parse(body[field], field)
    if body.get("allow_multiple_per_click") is not None:
        values["allow_multiple_per_click"] = _bool(body["allow_multiple_per_click"], "allow_multiple_per_click")
    return values
