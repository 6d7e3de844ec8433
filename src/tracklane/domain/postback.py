"""Reading an inbound conversion or event request (postback, pixel, API) into a `ConversionRequest`, and
what a tokenless channel proves about the click it converts (`ClickClaim`, click tokens).

The parameters come from a query string, a form or JSON; every value is validated here so that a bad
one is refused with the field's name before anything is looked up or written.

A click token is `<transaction_id>.<mac>`, issued by `/clk`: the MAC is a truncated HMAC-SHA256 of the
transaction id keyed by the postback token of the click's advertiser, so it needs no storage of its own and
only the server (and the advertiser) can make one. Rotating the postback token invalidates every click
token issued before.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum

from tracklane.domain.errors import InvalidParameter, PostbackRefused
from tracklane.domain.ids import parse_id
from tracklane.domain.money import parse_currency, parse_money

MAX_TEXT = 255
ADV_FIELDS = ("adv1", "adv2", "adv3", "adv4", "adv5")
CLICK_TOKEN_MAC_CHARS = 32  # 128 bits of the HMAC-SHA256, in hex


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
    if token is not None and not token.isascii():  # no token is issued with other characters
        raise PostbackRefused("invalid_token", "secure does not match the advertiser's postback token")
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
    if raw is None or raw == "":
        return None
    return parse_id(raw, "event_id")


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
    if not value.isascii() and any(0xD800 <= ord(ch) <= 0xDFFF for ch in value):
        # only a JSON `\ud800` escape makes one; no database can store it
        raise InvalidParameter(field, "must be valid Unicode (a lone surrogate is not)")
    return value or None


class Proof(StrEnum):
    """How a channel without the advertiser's postback token knows the click it converts."""

    COOKIE = "cookie"  # the browser sent the offer's first-party cookie `tl_{offer_id}`
    CLICK_TOKEN = "click_token"  # a click token issued by `/clk` for this click
    API_KEY = "api_key"  # an API key: the admin's (any click), or an advertiser's (its own clicks only)


@dataclass(frozen=True, slots=True)
class ClickClaim:
    """What a browser channel proves; the click converts only when it matches every part given.

    `offer_id`: the click must be of this offer (the pixel's offer). `mac`: the MAC of a click token,
    checked against the click and its advertiser's postback token. `advertiser_id`: the click must be of
    this advertiser (an advertiser's API key).
    """

    proof: Proof
    offer_id: int | None = None
    mac: str | None = None
    advertiser_id: int | None = None


def click_mac(transaction_id: str, postback_token: str) -> str:
    digest = hmac.new(postback_token.encode(), b"click:" + transaction_id.encode(), hashlib.sha256).hexdigest()
    return digest[:CLICK_TOKEN_MAC_CHARS]


def click_token(transaction_id: str, postback_token: str) -> str:
    """The token `/clk` answers for a click of an advertiser with this postback token."""
    return f"{transaction_id}.{click_mac(transaction_id, postback_token)}"


def split_click_token(raw: str) -> tuple[str, str]:
    """`(transaction_id, mac)` of a click token, or `InvalidParameter` when it is not shaped like one."""
    transaction_id, dot, mac = raw.strip().rpartition(".")
    shaped = dot and 0 < len(transaction_id) <= 64 and len(mac) == CLICK_TOKEN_MAC_CHARS
    if not shaped or not all(ch in "0123456789abcdef" for ch in mac) or not transaction_id.isprintable():
        raise InvalidParameter("click_token", "is not a click token issued by /clk")
    return transaction_id, mac


def click_mac_matches(transaction_id: str, mac: str, postback_token: str) -> bool:
    return hmac.compare_digest(click_mac(transaction_id, postback_token), mac)
