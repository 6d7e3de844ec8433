"""Each role's view of conversions, clicks and reports lacks what the role may not see, by its type; the trace
an advertiser reads is built from the steps of its side (steps stored before sides existed included); click
tokens are bound to their click and to the advertiser's postback token."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import msgspec
import pytest

from tracklane.domain.errors import InvalidParameter
from tracklane.domain.model import Conversion, ConversionStatus, Origin, Role
from tracklane.domain.postback import click_mac_matches, click_token, split_click_token
from tracklane.domain.tenancy import Scope
from tracklane.domain.trace import Side, TraceStep, read_steps, stored_steps
from tracklane.resources.clicks import ClickAdvertiserView, ClickPartnerView, ClickView
from tracklane.resources.conversions import (
    ConversionAdvertiserView,
    ConversionPartnerView,
    ConversionView,
    conversion_view_for,
)
from tracklane.resources.reports import (
    ReportAdvertiserRow,
    ReportAdvertiserTotals,
    ReportLine,
    ReportPartnerRow,
    ReportPartnerTotals,
    ReportRow,
    ReportTotals,
    report_view_for,
)
from tracklane.services.reports import DIMENSIONS

T0 = datetime(2026, 3, 4, 12, 0, tzinfo=UTC)
PARTNER_SEES_NOT = {"revenue", "revenue_type", "profit", "margin", "trace", "adv1", "adv2", "adv3", "adv4", "adv5",
                    "destination_url", "fallback_url", "pending_revenue", "sale_amount"}  # fmt: skip
ADVERTISER_SEES_NOT = {"payout", "payout_type", "profit", "margin", "epc", "pending_payout"}
#: A trace as stored before steps had a side.
LEGACY_TRACE = [
    {"step": "token", "outcome": "valid", "detail": "postback token of advertiser #1"},
    {"step": "click", "outcome": "found", "detail": "click #9 on offer #1 by partner #2 (accepted)"},
    {"step": "revenue", "outcome": "10.00", "detail": "offer revenue, cpa: flat 10.00"},
    {"step": "payout", "outcome": "8.50", "detail": "partner payout #1 for partner 2, cpa: flat 8.50"},
    {"step": "status", "outcome": "approved", "detail": "approved"},
    {"step": "status_change", "outcome": "rejected", "detail": "approved -> rejected by api key #3 (admin): fraud",
     "at": "2026-03-05T10:00:00+00:00"},
]  # fmt: skip


def _fields(view_type: type[msgspec.Struct]) -> set[str]:
    return set(view_type.__struct_fields__)


def _conversion(**changes: Any) -> Conversion:
    values: dict[str, Any] = {
        "id": 5, "transaction_id": "a" * 32, "click_id": 9, "offer_id": 1, "partner_id": 2, "advertiser_id": 1,
        "event_id": None, "event_name": None, "status": ConversionStatus.APPROVED, "status_reason": None,
        "revenue": Decimal("10.00"), "payout": Decimal("8.50"), "revenue_type": "cpa", "payout_type": "cpa",
        "amount": Decimal("99.90"), "currency": "USD", "order_id": "O-1", "advs": ("x1", None, None, None, "x5"),
        "origin": Origin.POSTBACK, "trace": read_steps(LEGACY_TRACE), "created_at": T0, "updated_at": T0,
    }  # fmt: skip
    return Conversion(**{**values, **changes})


@pytest.mark.parametrize("view_type", [ConversionPartnerView, ClickPartnerView, ReportPartnerRow, ReportPartnerTotals])
def test_partner_views_have_no_revenue_adv_or_trace(view_type: type[msgspec.Struct]) -> None:
    assert not _fields(view_type) & PARTNER_SEES_NOT


@pytest.mark.parametrize("view_type", [ConversionAdvertiserView, ClickAdvertiserView, ReportAdvertiserRow,
                                       ReportAdvertiserTotals])  # fmt: skip
def test_advertiser_views_have_no_payout(view_type: type[msgspec.Struct]) -> None:
    assert not _fields(view_type) & ADVERTISER_SEES_NOT


def test_the_admin_views_have_both_sides() -> None:
    for view_type in (ConversionView, ClickView, ReportRow, ReportTotals):
        assert {"revenue", "payout"} <= _fields(view_type)


@pytest.mark.parametrize(("row", "totals"), [(ReportRow, ReportTotals), (ReportAdvertiserRow, ReportAdvertiserTotals),
                                             (ReportPartnerRow, ReportPartnerTotals)])  # fmt: skip
def test_a_report_row_is_its_totals_and_the_dimensions(row: type[msgspec.Struct], totals: type[msgspec.Struct]) -> None:
    assert _fields(row) == _fields(totals) | set(DIMENSIONS)


def test_steps_stored_without_a_side_get_the_side_of_their_name() -> None:
    steps = read_steps(LEGACY_TRACE)
    assert [s.side for s in steps] == [None, None, Side.REVENUE, Side.PAYOUT, None, None]
    assert steps[-1].at == datetime(2026, 3, 5, 10, 0, tzinfo=UTC)
    assert read_steps(stored_steps(steps)) == steps
    assert stored_steps(steps)[2] == {**LEGACY_TRACE[2], "side": "revenue"}


def test_an_advertiser_reads_the_trace_of_its_side_and_the_common_steps() -> None:
    view = conversion_view_for(Scope(Role.ADVERTISER, advertiser_id=1), _conversion(), shares_amount=False)
    assert isinstance(view, ConversionAdvertiserView)
    assert [s.step for s in view.trace] == ["token", "click", "revenue", "status", "status_change"]
    encoded = msgspec.json.encode(view).decode()
    assert "payout" not in encoded and "8.50" not in encoded
    assert (view.revenue, view.amount, view.adv1, view.adv5) == ("10.00", "99.90", "x1", "x5")


def test_the_admin_reads_the_whole_trace() -> None:
    view = conversion_view_for(Scope(Role.ADMIN), _conversion(), shares_amount=False)
    assert isinstance(view, ConversionView)
    assert [s.step for s in view.trace] == [s["step"] for s in LEGACY_TRACE]
    assert msgspec.to_builtins(view.trace[-1])["at"] == "2026-03-05T10:00:00Z"
    assert "side" not in msgspec.to_builtins(view.trace[0])  # a common step shows no side


@pytest.mark.parametrize(("shares", "amount"), [(False, None), (True, "99.90")])
def test_a_partner_reads_the_amount_only_where_the_offer_shares_it(shares: bool, amount: str | None) -> None:
    view = conversion_view_for(Scope(Role.PARTNER, partner_id=2), _conversion(), shares_amount=shares)
    shown = msgspec.to_builtins(view)
    assert shown.get("amount") == amount and ("amount" in shown) is shares
    assert (shown["payout"], shown["payout_type"]) == ("8.50", "cpa")
    assert not set(shown) & PARTNER_SEES_NOT


def test_each_role_reads_its_side_of_the_report() -> None:
    line = ReportLine(group={"offer": 1}, clicks=4, gross_clicks=5, conversions=1, revenue=10_0000, payout=6_0000,
                      sale_amount=50_0000)  # money in storage units  # fmt: skip
    admin = msgspec.to_builtins(report_view_for(Scope(Role.ADMIN), [line], line))
    assert admin["rows"][0] == {**admin["totals"], "offer": 1}
    assert (admin["totals"]["profit"], admin["totals"]["epc"], admin["totals"]["cvr"]) == ("4.00", "1.50", "25.00")
    partner = msgspec.to_builtins(report_view_for(Scope(Role.PARTNER, partner_id=2), [line], line))
    assert (partner["totals"]["payout"], partner["totals"]["epc"]) == ("6.00", "1.50")
    assert not set(partner["totals"]) & PARTNER_SEES_NOT
    advertiser = msgspec.to_builtins(report_view_for(Scope(Role.ADVERTISER, advertiser_id=1), [line], line))
    assert (advertiser["totals"]["revenue"], advertiser["totals"]["sale_amount"]) == ("10.00", "50.00")
    assert not set(advertiser["totals"]) & ADVERTISER_SEES_NOT


def test_a_click_token_is_bound_to_its_click_and_to_the_postback_token() -> None:
    token = click_token("a" * 32, "secret-1")
    transaction_id, mac = split_click_token(token)
    assert transaction_id == "a" * 32 and len(mac) == 32
    assert click_mac_matches("a" * 32, mac, "secret-1")
    assert not click_mac_matches("b" * 32, mac, "secret-1")
    assert not click_mac_matches("a" * 32, mac, "secret-2")  # a rotated postback token invalidates it
    for malformed in ("a" * 32, f"{'a' * 32}.", f"{'a' * 32}.{'g' * 32}", f".{'0' * 32}", f"{'a' * 32}.{'0' * 31}"):
        with pytest.raises(InvalidParameter):
            split_click_token(malformed)


def test_a_trace_step_records_its_side() -> None:
    step = TraceStep("payout", "8.50", "offer payout", Side.PAYOUT)
    assert not step.seen_by(Side.REVENUE) and step.seen_by(Side.PAYOUT)
    assert TraceStep("status", "approved", "approved").seen_by(Side.REVENUE)
