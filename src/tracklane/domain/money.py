"""Exact money: decimal parsing, currency minor units, and the revenue / payout price rules.

CPA, CPL and Fixed are flat amounts per action (the label is kept for reporting); CPS is a percent of
the sale amount; CPA+CPS is both; CPC pays per accepted, non-bot click, so a conversion under CPC earns
nothing itself. Every amount is a `Decimal`; a float never enters.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from enum import StrEnum
from functools import cache, lru_cache

from tracklane.domain.errors import InvalidParameter

#: Money is stored to this many decimal places (the storage scale); inputs with more are refused.
STORAGE_PLACES = 4
MAX_AMOUNT = Decimal("1000000000000")
#: A decimal as text: ASCII digits with at most one `.`, an optional leading `-`, surrounding blanks allowed.
#: Python's own `Decimal("...")` would also take `1_000`, `1e3`, `NaN` and any script's digits (`١٢`).
DECIMAL_TEXT = re.compile(r"[ \t]*(-?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+))[ \t]*")
#: Longer text than this is refused before it is read (no amount needs it; `1000000000000.0000` is 18).
MAX_DECIMAL_TEXT = 64

#: ISO 4217 currencies whose minor unit is not 2 decimal places (the list's units of account included).
_MINOR_UNITS = {
    "BIF": 0, "CLP": 0, "DJF": 0, "GNF": 0, "ISK": 0, "JPY": 0, "KMF": 0, "KRW": 0, "PYG": 0,
    "RWF": 0, "UGX": 0, "UYI": 0, "VND": 0, "VUV": 0, "XAF": 0, "XOF": 0, "XPF": 0,
    "BHD": 3, "IQD": 3, "JOD": 3, "KWD": 3, "LYD": 3, "OMR": 3, "TND": 3,
    "CLF": 4, "UYW": 4,
}  # fmt: skip


class PriceType(StrEnum):
    CPA = "cpa"
    CPL = "cpl"
    FIXED = "fixed"
    CPS = "cps"
    CPA_CPS = "cpa_cps"
    CPC = "cpc"


_FLAT_TYPES = {PriceType.CPA, PriceType.CPL, PriceType.FIXED, PriceType.CPC}
#: The price types whose money depends on the sale amount (by their stored value, as a conversion keeps it).
SALE_PRICED = frozenset({PriceType.CPS.value, PriceType.CPA_CPS.value})


def parse_decimal(value: object, field: str, *, places: int = STORAGE_PLACES) -> Decimal:
    """Read an exact decimal from a string (`DECIMAL_TEXT`), an int or a Decimal; floats and commas are refused.

    A Decimal is what a JSON number decodes to (exactly, exponent included: `1e3` is a JSON number); text
    from a query string or a form must be plain ASCII digits with at most one `.`.
    """
    if isinstance(value, bool) or not isinstance(value, str | int | Decimal):
        raise InvalidParameter(field, "must be a decimal number written with a '.' decimal point")
    if isinstance(value, str):
        match = DECIMAL_TEXT.fullmatch(value) if len(value) <= MAX_DECIMAL_TEXT else None
        if match is None:
            raise InvalidParameter(field, "must be a decimal number: ASCII digits with at most one '.' (e.g. 12.50)")
        number = Decimal(match[1])
    else:
        number = Decimal(value)
    if not number.is_finite():
        raise InvalidParameter(field, "must be a finite number")
    exponent = number.as_tuple().exponent
    if isinstance(exponent, int) and -exponent > places:
        raise InvalidParameter(field, f"has more than {places} decimal places")
    if abs(number) >= MAX_AMOUNT:
        raise InvalidParameter(field, "is too large")
    return number.copy_abs() if number.is_zero() else number  # `-0` is 0


def parse_money(value: object, field: str) -> Decimal:
    """A non-negative money amount."""
    number = parse_decimal(value, field)
    if number < 0:
        raise InvalidParameter(field, "must not be negative")
    return number


def parse_percent(value: object, field: str) -> Decimal:
    """A percentage between 0 and 100."""
    number = parse_decimal(value, field)
    if not Decimal(0) <= number <= Decimal(100):
        raise InvalidParameter(field, "must be between 0 and 100")
    return number


def parse_currency(value: object, field: str = "currency") -> str:
    """An ISO 4217 alphabetic code (three ASCII letters), upper-cased."""
    code = value.strip() if isinstance(value, str) else ""
    if len(code) != 3 or not (code.isascii() and code.isalpha()):
        raise InvalidParameter(field, "must be a 3-letter ISO 4217 currency code")
    return code.upper()


def minor_units(currency: str) -> int:
    return _MINOR_UNITS.get(currency, 2)


def round_money(amount: Decimal, currency: str) -> Decimal:
    """Round half-up to the currency's minor unit (a CPS share of 10.005 USD is 10.01)."""
    return amount.quantize(Decimal(1).scaleb(-minor_units(currency)), rounding=ROUND_HALF_UP)


def format_money(amount: Decimal, currency: str) -> str:
    """The JSON form of money: a decimal string with the currency's minor unit (`"5.00"`), and more places
    only where the amount has them (`"1.005"`). The text depends on the amount's value only (not on how many
    places it was written with), so equal amounts share one cached text: reports repeat them."""
    return _formatted(amount, currency)


def format_units(units: int, currency: str) -> str:
    """`format_money` of an amount given in storage units (`STORAGE_PLACES` places), in integer arithmetic:
    a report formats tens of thousands of amounts."""
    places = minor_units(currency)
    whole, fraction = divmod(-units if units < 0 else units, _SCALE)
    digits = f"{fraction:0{STORAGE_PLACES}d}".rstrip("0") if fraction else ""
    if len(digits) < places:
        digits += "0" * (places - len(digits))
    text = f"{whole}.{digits}" if digits else str(whole)
    return "-" + text if units < 0 else text


_SCALE = 10**STORAGE_PLACES


@lru_cache(maxsize=65_536)
def _formatted(amount: Decimal, currency: str) -> str:
    if not amount and amount.is_finite():
        return _zero(currency)
    try:
        exact = amount.quantize(_minor_step(currency))
    except InvalidOperation:  # more digits than the context holds: the general form below
        exact = None
    if exact is not None and exact == amount:  # the common case, without normalising
        return f"{exact:f}"
    places = max(minor_units(currency), _places(amount))
    return f"{amount:.{places}f}"


@cache
def _zero(currency: str) -> str:
    return f"{Decimal(0).quantize(_minor_step(currency)):f}"


@cache
def _minor_step(currency: str) -> Decimal:
    return Decimal(1).scaleb(-minor_units(currency))


def _places(amount: Decimal) -> int:
    exponent = amount.normalize().as_tuple().exponent
    return max(0, -exponent) if isinstance(exponent, int) else 0


@dataclass(frozen=True, slots=True)
class PriceRule:
    """How an amount (revenue or payout) is computed for one action."""

    type: PriceType
    amount: Decimal | None = None
    percent: Decimal | None = None


@dataclass(frozen=True, slots=True)
class Price:
    """An amount computed by a rule, with the sentence that explains it (for the trace)."""

    amount: Decimal
    explanation: str


def price_action(rule: PriceRule, sale_amount: Decimal | None, currency: str) -> Price:
    """The amount one conversion or event earns under `rule`."""
    flat = rule.amount or Decimal(0)
    if rule.type is PriceType.CPC:
        return Price(Decimal(0).quantize(Decimal(1).scaleb(-minor_units(currency))), "cpc: paid per click")
    if rule.type in _FLAT_TYPES:
        return Price(round_money(flat, currency), f"{rule.type.value}: flat {format_money(flat, currency)}")
    percent = rule.percent or Decimal(0)
    share = (sale_amount or Decimal(0)) * percent / Decimal(100)
    base = flat if rule.type is PriceType.CPA_CPS else Decimal(0)
    total = round_money(base + share, currency)
    if sale_amount is None:
        note = "no sale amount, so the percent part is 0"
    else:
        note = f"{percent}% of {sale_amount} = {share}"
    prefix = f"flat {format_money(flat, currency)} + " if rule.type is PriceType.CPA_CPS else ""
    return Price(total, f"{rule.type.value}: {prefix}{note}, rounded half-up to {total}")


def price_click(rule: PriceRule, currency: str) -> Decimal:
    """The amount one accepted, non-bot click earns: only CPC pays per click."""
    if rule.type is PriceType.CPC and rule.amount is not None:
        return round_money(rule.amount, currency)
    return Decimal(0)
