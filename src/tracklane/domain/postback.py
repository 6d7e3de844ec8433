"""Reading an inbound conversion or event request (postback, pixel, API) into a `ConversionRequest`.

The parameters come from a query string, a form or JSON; every value is validated here so that a bad
one is refused with the field's name before anything is looked up or written.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal

from tracklane.domain.errors import InvalidParameter, PostbackRefused
from tracklane.domain.money import parse_currency, parse_money

MAX_TEXT = 255
ADV_FIELDS = ("adv1", "adv2", "adv3", "adv4", "adv5")


@dataclass(frozen=True, slots=True)
class ConversionRequest:
    """A request to record a base conversion (no event given) or a post-conversion event."""

    transaction_id: str
    token: str | None
    event_id: int | None
    event_name: str | None
    amount: Decimal | None
    order_id: str | None
    currency: str | None
    advs: tuple[str | None, str | None, str | None, str | None, str | None]

    @property
    def is_event(self) -> bool:
        return self.event_id is not None or self.event_name is not None


def parse_conversion_request(params: Mapping[str, object], *, token_required: bool) -> ConversionRequest:
    """Validate the parameters of `/postback` (token required) or `/pixel` and the API (no token)."""
    transaction_id = _text(params, "transaction_id", limit=64)
    if transaction_id is None:
        raise InvalidParameter("transaction_id", "is required")
    token = _text(params, "secure", limit=MAX_TEXT)
    if token_required and token is None:
        raise PostbackRefused("invalid_token", "secure: the advertiser's postback token is required")
    amount_raw = params.get("amount")
    amount = None if amount_raw in (None, "") else parse_money(amount_raw, "amount")
    currency_raw = params.get("currency")
    currency = None if currency_raw in (None, "") else parse_currency(currency_raw)
    advs = (
        _text(params, "adv1"), _text(params, "adv2"), _text(params, "adv3"),
        _text(params, "adv4"), _text(params, "adv5"),
    )  # fmt: skip
    return ConversionRequest(
        transaction_id=transaction_id,
        token=token,
        event_id=_event_id(params.get("event_id")),
        event_name=_text(params, "event_name"),
        amount=amount,
        order_id=_text(params, "order_id"),
        currency=currency,
        advs=advs,
    )


def _event_id(raw: object) -> int | None:
    if raw in (None, ""):
        return None
    if isinstance(raw, bool):
        raise InvalidParameter("event_id", "must be a positive integer")
    if isinstance(raw, int):
        value = raw
    elif isinstance(raw, str) and raw.strip().isdigit():
        value = int(raw.strip())
    else:
        raise InvalidParameter("event_id", "must be a positive integer")
    if value <= 0 or value > 2**62:
        raise InvalidParameter("event_id", "must be a positive integer")
    return value


def _text(params: Mapping[str, object], field: str, limit: int = MAX_TEXT) -> str | None:
    raw = params.get(field)
    if raw is None:
        return None
    if isinstance(raw, bool) or not isinstance(raw, str | int):
        raise InvalidParameter(field, "must be a string")
    value = str(raw).strip()
    if len(value) > limit:
        raise InvalidParameter(field, f"must be at most {limit} characters")
    if any(ord(ch) < 32 for ch in value):
        raise InvalidParameter(field, "must not contain control characters")
    return value or None
