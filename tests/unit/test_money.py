"""Money rules: parsing, price types, rounding; properties over random amounts (no float anywhere)."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tracklane.domain.errors import InvalidParameter
from tracklane.domain.money import (
    PriceRule,
    PriceType,
    format_money,
    parse_decimal,
    price_action,
    price_click,
    round_money,
)
from tracklane.resources.decoding import convert
from tracklane.resources.offers import PartnerPayoutCreate

amounts = st.decimals(min_value=0, max_value=Decimal("99999999.9999"), places=4, allow_nan=False)
percents = st.decimals(min_value=0, max_value=100, places=4, allow_nan=False)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("12.34", Decimal("12.34")), (5, Decimal(5)), (Decimal("0.0001"), Decimal("0.0001")), (" 7.5 ", Decimal("7.5"))],
)
def test_parse_decimal_accepts_exact_forms(raw: object, expected: Decimal) -> None:
    assert parse_decimal(raw, "amount") == expected


@pytest.mark.parametrize("raw", ["12,34", "abc", "NaN", "Infinity", 1.5, True, None, "1.00001", "1e20"])
def test_parse_decimal_refuses_float_commas_and_excess(raw: object) -> None:
    with pytest.raises(InvalidParameter) as error:
        parse_decimal(raw, "amount")
    assert error.value.field == "amount"


@pytest.mark.parametrize(
    ("rule", "sale", "expected"),
    [
        (PriceRule(PriceType.CPA, amount=Decimal("5")), Decimal("100"), Decimal("5.00")),
        (PriceRule(PriceType.CPL, amount=Decimal("2.5")), None, Decimal("2.50")),
        (PriceRule(PriceType.FIXED, amount=Decimal("1")), Decimal("9"), Decimal("1.00")),
        (PriceRule(PriceType.CPS, percent=Decimal("10")), Decimal("100.05"), Decimal("10.01")),
        (PriceRule(PriceType.CPS, percent=Decimal("10")), None, Decimal("0.00")),
        (PriceRule(PriceType.CPA_CPS, amount=Decimal("2"), percent=Decimal("7.5")), Decimal("40"), Decimal("5.00")),
        (PriceRule(PriceType.CPC, amount=Decimal("0.30")), Decimal("40"), Decimal("0.00")),
    ],
)
def test_price_action_per_type(rule: PriceRule, sale: Decimal | None, expected: Decimal) -> None:
    assert price_action(rule, sale, "USD").amount == expected


def test_cps_rounds_half_up_to_the_currency_minor_unit() -> None:
    assert round_money(Decimal("10.005"), "USD") == Decimal("10.01")
    assert round_money(Decimal("10.5"), "JPY") == Decimal("11")
    assert round_money(Decimal("1.0005"), "KWD") == Decimal("1.001")


def test_only_cpc_pays_per_click() -> None:
    assert price_click(PriceRule(PriceType.CPC, amount=Decimal("0.25")), "USD") == Decimal("0.25")
    assert price_click(PriceRule(PriceType.CPA, amount=Decimal("5")), "USD") == Decimal(0)


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        ({"type": "bogus"}, "payout.type"),
        ({"type": "cpa"}, "payout.amount"),
        ({"type": "cps"}, "payout.percent"),
        ({"type": "cps", "percent": "101"}, "payout.percent"),
        ({"type": "cpa", "amount": "-1"}, "payout.amount"),
        ({"type": "cpa", "amount": "1", "percent": "5"}, "payout.percent"),
        ("5.00", "payout"),
    ],
)
def test_price_rule_names_the_bad_field(raw: object, field: str) -> None:
    with pytest.raises(InvalidParameter) as error:
        convert({"partner_id": 1, "payout": raw}, PartnerPayoutCreate)
    assert error.value.field == field


@given(sale=amounts, percent=percents)
def test_cps_is_exact_percentage_rounded_half_up(sale: Decimal, percent: Decimal) -> None:
    price = price_action(PriceRule(PriceType.CPS, percent=percent), sale, "USD").amount
    exact = sale * percent / 100
    assert isinstance(price, Decimal)
    assert price.as_tuple().exponent == -2
    assert abs(price - exact) <= Decimal("0.005")
    assert price == exact.quantize(Decimal("0.01"), rounding="ROUND_HALF_UP")


@given(flat=amounts, sale=amounts, percent=percents)
def test_cpa_cps_is_flat_plus_share(flat: Decimal, sale: Decimal, percent: Decimal) -> None:
    both = price_action(PriceRule(PriceType.CPA_CPS, amount=flat, percent=percent), sale, "USD").amount
    assert both == round_money(flat + sale * percent / 100, "USD")
    assert both >= round_money(flat, "USD") - Decimal("0.01")


@given(value=amounts)
def test_money_round_trips_through_its_json_form(value: Decimal) -> None:
    text = format_money(value, "USD")
    assert Decimal(text) == value
    assert parse_decimal(text, "amount") == value
