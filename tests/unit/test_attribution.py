"""Attribution decisions as a table: event matching, window, duplicate keys, payout choice, status."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from tracklane.domain.attribution import check_window, choose_payout, choose_status, dedup_key, match_event
from tracklane.domain.caps import CapPeriod, period_start
from tracklane.domain.errors import PostbackRefused
from tracklane.domain.model import (
    Click,
    ClickDevice,
    ConversionStatus,
    Offer,
    OfferEvent,
    OfferStatus,
    PartnerPayout,
    Visibility,
)
from tracklane.domain.money import PriceRule, PriceType
from tracklane.domain.postback import ConversionRequest, parse_conversion_request

T0 = datetime(2026, 3, 4, 12, 0, tzinfo=UTC)
FLAT = PriceRule(PriceType.CPA, amount=Decimal("5"))
OFFER = Offer(
    1,
    1,
    "o",
    "https://a.example/",
    None,
    OfferStatus.ACTIVE,
    Visibility.PUBLIC,
    "USD",
    7,
    FLAT,
    FLAT,
    False,
    ConversionStatus.APPROVED,
    T0,
    T0,
)
CLICK = Click(
    9,
    "a" * 32,
    1,
    2,
    1,
    (None,) * 5,
    None,
    None,
    None,
    ClickDevice(),
    None,
    None,
    "accepted",
    None,
    Decimal(0),
    Decimal(0),
    T0,
)
PURCHASE = OfferEvent(11, 1, "purchase", FLAT, FLAT, True, T0)
UPGRADE = OfferEvent(12, 1, "upgrade", FLAT, FLAT, False, T0)


def request(**params: str) -> ConversionRequest:
    return parse_conversion_request({"transaction_id": "a" * 32, **params}, token_required=False)


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({}, None),
        ({"event_id": "11"}, PURCHASE),
        ({"event_name": "upgrade"}, UPGRADE),
        ({"event_id": "12", "event_name": "upgrade"}, UPGRADE),
    ],
)
def test_match_event(params: dict[str, str], expected: OfferEvent | None) -> None:
    assert match_event(request(**params), [PURCHASE, UPGRADE]) == expected


@pytest.mark.parametrize(
    "params", [{"event_id": "99"}, {"event_name": "Purchase"}, {"event_id": "11", "event_name": "upgrade"}]
)
def test_unknown_or_mismatched_event_is_refused(params: dict[str, str]) -> None:
    with pytest.raises(PostbackRefused) as error:
        match_event(request(**params), [PURCHASE, UPGRADE])
    assert error.value.code == "unknown_event"


def test_window_is_inclusive_of_its_last_instant() -> None:
    check_window(CLICK, OFFER, T0 + timedelta(days=7))
    with pytest.raises(PostbackRefused) as error:
        check_window(CLICK, OFFER, T0 + timedelta(days=7, microseconds=1))
    assert error.value.code == "outside_window"


@pytest.mark.parametrize(
    ("event", "allow_multiple", "order_id", "key"),
    [
        (None, False, None, "9:base"),
        (None, False, "A1", "9:base"),
        (None, True, "A1", "9:base:order:A1"),
        (None, True, None, None),
        (UPGRADE, False, "X", "9:e12"),
        (PURCHASE, True, "X", "9:e11:order:X"),
        (PURCHASE, True, None, None),
    ],
)
def test_dedup_key(event: OfferEvent | None, allow_multiple: bool, order_id: str | None, key: str | None) -> None:
    offer = replace(OFFER, allow_multiple_conversions=allow_multiple)
    assert dedup_key(CLICK, event, offer, order_id) == key


def test_partner_payout_overrides_offer_and_event_payouts() -> None:
    special = PriceRule(PriceType.CPA, amount=Decimal("9"))
    overrides = [PartnerPayout(1, 1, 2, None, special, T0), PartnerPayout(2, 1, 2, 11, special, T0)]
    assert choose_payout(OFFER, None, overrides, partner_id=2).rule == special
    assert choose_payout(OFFER, PURCHASE, overrides, partner_id=2).rule == special
    assert choose_payout(OFFER, UPGRADE, overrides, partner_id=2).rule == UPGRADE.payout
    assert choose_payout(OFFER, None, overrides, partner_id=3).source == "offer payout"


@pytest.mark.parametrize(
    ("click", "offer", "within_caps", "status", "reason"),
    [
        (CLICK, OFFER, True, ConversionStatus.APPROVED, None),
        (CLICK, OFFER, False, ConversionStatus.PENDING, "over_cap"),
        (
            CLICK,
            replace(OFFER, default_status=ConversionStatus.PENDING),
            True,
            ConversionStatus.PENDING,
            "manual_approval",
        ),
        (replace(CLICK, device=ClickDevice("bot", is_bot=True)), OFFER, True, ConversionStatus.PENDING, "bot_click"),
        (
            replace(CLICK, verdict="rejected", reject_reason="offer_paused"),
            OFFER,
            True,
            ConversionStatus.REJECTED,
            "click_offer_paused",
        ),
    ],
)
def test_choose_status(click: Click, offer: Offer, within_caps: bool, status: ConversionStatus, reason: str) -> None:
    choice = choose_status(offer, click, within_caps)
    assert (choice.status, choice.reason) == (status, reason)


@pytest.mark.parametrize(
    ("period", "expected"),
    [
        (CapPeriod.DAY, "2026-03-04"),
        (CapPeriod.WEEK, "2026-03-02"),
        (CapPeriod.MONTH, "2026-03-01"),
        (CapPeriod.TOTAL, "-"),
    ],
)
def test_cap_periods_in_utc(period: CapPeriod, expected: str) -> None:
    assert period_start(period, T0) == expected


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"transaction_id": ""}, "transaction_id"),
        ({"amount": "1,5"}, "amount"),
        ({"event_id": "x"}, "event_id"),
        ({"currency": "EURO"}, "currency"),
        ({"order_id": "x" * 300}, "order_id"),
    ],
)
def test_postback_parameters_name_the_bad_field(params: dict[str, str], field: str) -> None:
    from tracklane.domain.errors import InvalidParameter

    with pytest.raises(InvalidParameter) as error:
        parse_conversion_request({"transaction_id": "a" * 32, **params}, token_required=False)
    assert error.value.field == field


def test_postback_without_token_is_invalid_token() -> None:
    with pytest.raises(PostbackRefused) as error:
        parse_conversion_request({"transaction_id": "a" * 32}, token_required=True)
    assert error.value.code == "invalid_token"
