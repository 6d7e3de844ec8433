"""The performance report as each role sees it: one row per group (its dimension values and metrics) and the
totals, with money as decimal strings and the ratios CVR (conversions per 100 billable clicks) and EPC.

- The admin sees every metric (`ReportView`).
- An advertiser sees what it owes: revenue, pending revenue, the sale amount; never payout, profit or EPC
  (which is a payout per click) (`ReportAdvertiserView`).
- A partner sees its traffic and what it earns: payout, pending payout and its EPC (payout per billable
  click); never revenue, profit or the sale amount (`ReportPartnerView`).

A row carries only the dimensions it was grouped by (the others are absent).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any, Final

import msgspec

from tracklane.domain.model import Role
from tracklane.domain.money import format_money
from tracklane.domain.tenancy import Scope
from tracklane.resources.fields import UNSET, MoneyText, Unset, View

REPORT_CURRENCY: Final = "USD"  # the report adds money of every offer; it is shown with two places

Ratio = Annotated[str, msgspec.Meta(description="a decimal string; null when there are no billable clicks",
                                    examples=["2.50"])]  # fmt: skip
IdValue = int | None | Unset
TextValue = str | None | Unset


@dataclass(frozen=True, slots=True)
class ReportQuery:
    """Which traffic the report counts (the filters are already narrowed to the caller's tenant), and the
    dimensions it groups by."""

    group_by: tuple[str, ...]
    created_from: datetime | None = None
    created_to: datetime | None = None
    offer_id: int | None = None
    partner_id: int | None = None
    advertiser_id: int | None = None


@dataclass(frozen=True, slots=True)
class ReportLine:
    """What the storage counted for one group (its dimension values in `group`), or the totals (`group` empty).

    Money: approved conversions and events plus CPC clicks; `pending_*` is what is held for review.
    """

    group: Mapping[str, object] = field(default_factory=dict)
    gross_clicks: int = 0
    clicks: int = 0
    bot_clicks: int = 0
    rejected_clicks: int = 0
    conversions: int = 0
    events: int = 0
    pending: int = 0
    rejected: int = 0
    revenue: Decimal = Decimal(0)
    payout: Decimal = Decimal(0)
    pending_revenue: Decimal = Decimal(0)
    pending_payout: Decimal = Decimal(0)
    sale_amount: Decimal = Decimal(0)

    def plus(self, other: ReportLine) -> ReportLine:
        """Both lines' metrics added (the group is this line's)."""
        return ReportLine(self.group, **{name: getattr(self, name) + getattr(other, name) for name in _METRICS})


_METRICS: Final = tuple(name for name in ReportLine.__dataclass_fields__ if name != "group")


class _ReportCounts(View, frozen=True):
    gross_clicks: int
    clicks: int
    bot_clicks: int
    rejected_clicks: int
    conversions: int
    events: int
    pending: int
    rejected: int
    cvr: Ratio | None


class ReportPartnerTotals(_ReportCounts, frozen=True):
    payout: MoneyText
    pending_payout: MoneyText
    epc: Ratio | None


class ReportAdvertiserTotals(_ReportCounts, frozen=True):
    revenue: MoneyText
    pending_revenue: MoneyText
    sale_amount: MoneyText


class ReportTotals(ReportAdvertiserTotals, frozen=True):
    payout: MoneyText
    pending_payout: MoneyText
    profit: MoneyText
    epc: Ratio | None


# A row is its role's totals plus the dimensions it was grouped by (`DIMENSIONS` of the report service);
# msgspec structs cannot combine two bases with fields, so each row type lists them.


class ReportPartnerRow(ReportPartnerTotals, frozen=True):
    offer: IdValue = UNSET
    partner: IdValue = UNSET
    advertiser: IdValue = UNSET
    day: TextValue = UNSET
    sub1: TextValue = UNSET
    sub2: TextValue = UNSET
    sub3: TextValue = UNSET
    sub4: TextValue = UNSET
    sub5: TextValue = UNSET
    source_id: TextValue = UNSET
    country: TextValue = UNSET
    device_type: TextValue = UNSET


class ReportAdvertiserRow(ReportAdvertiserTotals, frozen=True):
    offer: IdValue = UNSET
    partner: IdValue = UNSET
    advertiser: IdValue = UNSET
    day: TextValue = UNSET
    sub1: TextValue = UNSET
    sub2: TextValue = UNSET
    sub3: TextValue = UNSET
    sub4: TextValue = UNSET
    sub5: TextValue = UNSET
    source_id: TextValue = UNSET
    country: TextValue = UNSET
    device_type: TextValue = UNSET


class ReportRow(ReportTotals, frozen=True):
    offer: IdValue = UNSET
    partner: IdValue = UNSET
    advertiser: IdValue = UNSET
    day: TextValue = UNSET
    sub1: TextValue = UNSET
    sub2: TextValue = UNSET
    sub3: TextValue = UNSET
    sub4: TextValue = UNSET
    sub5: TextValue = UNSET
    source_id: TextValue = UNSET
    country: TextValue = UNSET
    device_type: TextValue = UNSET


class ReportPartnerView(View, frozen=True):
    rows: list[ReportPartnerRow]
    totals: ReportPartnerTotals


class ReportAdvertiserView(View, frozen=True):
    rows: list[ReportAdvertiserRow]
    totals: ReportAdvertiserTotals


class ReportView(View, frozen=True):
    rows: list[ReportRow]
    totals: ReportTotals


ReportRoleView = ReportView | ReportAdvertiserView | ReportPartnerView


def _money(value: Decimal) -> str:
    return format_money(value, REPORT_CURRENCY)


def _counts(line: ReportLine) -> dict[str, Any]:
    cvr = (Decimal(line.conversions) * 100 / line.clicks).quantize(Decimal("0.01")) if line.clicks else None
    return {
        "gross_clicks": line.gross_clicks, "clicks": line.clicks, "bot_clicks": line.bot_clicks,
        "rejected_clicks": line.rejected_clicks, "conversions": line.conversions, "events": line.events,
        "pending": line.pending, "rejected": line.rejected, "cvr": None if cvr is None else _money(cvr),
    }  # fmt: skip


def _group(line: ReportLine) -> dict[str, Any]:
    """The row's dimension values, by the name of the dimension (the row type's field)."""
    return dict(line.group)


def _epc(line: ReportLine) -> str | None:
    """Earnings per click: the partners' payout per billable click."""
    return _money((line.payout / line.clicks).quantize(Decimal("0.0001"))) if line.clicks else None


def _partner_metrics(line: ReportLine) -> dict[str, Any]:
    return {**_counts(line), "payout": _money(line.payout), "pending_payout": _money(line.pending_payout),
            "epc": _epc(line)}  # fmt: skip


def _advertiser_metrics(line: ReportLine) -> dict[str, Any]:
    return {**_counts(line), "revenue": _money(line.revenue), "pending_revenue": _money(line.pending_revenue),
            "sale_amount": _money(line.sale_amount)}  # fmt: skip


def _admin_metrics(line: ReportLine) -> dict[str, Any]:
    return {**_advertiser_metrics(line), "payout": _money(line.payout), "pending_payout": _money(line.pending_payout),
            "profit": _money(line.revenue - line.payout), "epc": _epc(line)}  # fmt: skip


def report_view(lines: Sequence[ReportLine], totals: ReportLine) -> ReportView:
    return ReportView(rows=[ReportRow(**_admin_metrics(line), **_group(line)) for line in lines],
                      totals=ReportTotals(**_admin_metrics(totals)))  # fmt: skip


def report_advertiser_view(lines: Sequence[ReportLine], totals: ReportLine) -> ReportAdvertiserView:
    rows = [ReportAdvertiserRow(**_advertiser_metrics(line), **_group(line)) for line in lines]
    return ReportAdvertiserView(rows=rows, totals=ReportAdvertiserTotals(**_advertiser_metrics(totals)))


def report_partner_view(lines: Sequence[ReportLine], totals: ReportLine) -> ReportPartnerView:
    return ReportPartnerView(rows=[ReportPartnerRow(**_partner_metrics(line), **_group(line)) for line in lines],
                             totals=ReportPartnerTotals(**_partner_metrics(totals)))  # fmt: skip


def report_view_for(scope: Scope, lines: Sequence[ReportLine], totals: ReportLine) -> ReportRoleView:
    """The report as the caller's role sees it (its lines are already narrowed to the caller's tenant)."""
    if scope.role is Role.ADMIN:
        return report_view(lines, totals)
    if scope.role is Role.ADVERTISER:
        return report_advertiser_view(lines, totals)
    return report_partner_view(lines, totals)
