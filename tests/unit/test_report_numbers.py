"""The report's money and ratios, computed from storage units in integer arithmetic, are exactly what `Decimal`
gives: a percentage half-even to 0.01 (its sign included, as `Decimal` signs a zero quotient), money per click
half-even to 0.0001, the average order value half-up to the currency's minor unit, every amount in its
currency's minor unit with more places only where it has them."""

from __future__ import annotations

import random
from decimal import Decimal

import msgspec
import pytest

from tracklane.domain.model import Role
from tracklane.domain.money import format_money, format_units, round_money
from tracklane.domain.tenancy import Scope
from tracklane.resources.reports import LINE_METRICS, ReportLine, report_view_for

CURRENCIES = ("USD", "JPY", "KWD", "CLF", "EUR")
MONEY = ("revenue", "payout", "pending_revenue", "pending_payout", "sale_amount")


def _amount(units: int) -> Decimal:
    return Decimal(units).scaleb(-4)


def _percent(part: Decimal, whole: Decimal) -> str | None:
    return f"{(part * 100 / whole).quantize(Decimal('0.01'))}" if whole else None


def _expected(line: ReportLine) -> dict[str, object]:
    """The admin's totals of a line, computed the way they were before, in `Decimal`."""
    currency = line.currency or "USD"
    revenue, payout, sale = _amount(line.revenue), _amount(line.payout), _amount(line.sale_amount)

    def per_click(amount: Decimal) -> str | None:
        return format_money((amount / line.clicks).quantize(Decimal("0.0001")), currency) if line.clicks else None

    aov = round_money(sale / line.orders, currency) if line.orders else None
    return {
        "cvr": _percent(Decimal(line.conversions), Decimal(line.clicks)),
        "revenue": format_money(revenue, currency), "payout": format_money(payout, currency),
        "pending_revenue": format_money(_amount(line.pending_revenue), currency),
        "pending_payout": format_money(_amount(line.pending_payout), currency),
        "sale_amount": format_money(sale, currency), "profit": format_money(revenue - payout, currency),
        "margin": _percent(revenue - payout, revenue), "epc": per_click(payout), "rpc": per_click(revenue),
        "aov": None if aov is None else format_money(aov, currency),
    }  # fmt: skip


def _units(rng: random.Random) -> int:
    return rng.choice([0, rng.randrange(-10**4, 10**4), rng.randrange(10**3) * 10**4, rng.randrange(-10**17, 10**17),
                       rng.randrange(10**6) * 100, 125_000 * rng.randrange(1, 40)])  # fmt: skip


@pytest.mark.parametrize("seed", range(4))
def test_the_views_numbers_are_what_decimal_computes(seed: int) -> None:
    rng = random.Random(seed)
    for _ in range(3000):
        counts = {m: rng.choice([0, 1, 2, 3, 7, rng.randrange(10**6)]) for m in LINE_METRICS if m not in MONEY}
        line = ReportLine(currency=rng.choice(CURRENCIES), **counts, **{m: _units(rng) for m in MONEY})
        shown = msgspec.to_builtins(report_view_for(Scope(Role.ADMIN), [], line))["totals"]
        assert {name: shown[name] for name in _expected(line)} == _expected(line), line


def test_amounts_in_units_read_as_format_money_writes_them() -> None:
    rng = random.Random(5)
    for currency in CURRENCIES:
        for units in [0, 1, -1, 5000, -5000, 10**4, 12_345, 10**20, *(_units(rng) for _ in range(5000))]:
            assert format_units(units, currency) == format_money(_amount(units), currency), (units, currency)
