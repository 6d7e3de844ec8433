"""`ClickService.record` on the in-memory ports: the redirect and its fallbacks, the verdict, click caps and
CPC money, each click in one write."""

from __future__ import annotations

import asyncio
import itertools
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from tests.fakes import FakeClock, FakeDatabase, Program, body, program
from tracklane.domain.model import ClickDevice
from tracklane.resources.offers import OfferAccessCreate, PartnerPayoutCreate
from tracklane.services.clicks import ClickOutcome, ClickRequest, ClickService, _RecentClicks, digest
from tracklane.services.ports import Page

START = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
NETWORK_FALLBACK = "https://network.example/more-offers"


class Tracking:
    def __init__(self, fallback: str | None = NETWORK_FALLBACK) -> None:
        self.db = FakeDatabase()
        self.clock = FakeClock(START)
        serial = itertools.count(1)
        self.service = ClickService(  # the same visitor clicks again and again here: no duplicate window
            self.db, self.clock, lambda: f"{next(serial):032x}", fallback, duplicate_window_seconds=0
        )

    def program(self, **offer_fields: Any) -> Program:
        return program(self.db, self.clock(), **offer_fields)

    def visit(self, offer_id: int, partner_id: int, bot: bool = False, sub1: str | None = "s-1") -> ClickOutcome:
        request = ClickRequest(
            offer_id,
            partner_id,
            (sub1, None, None, None, None),
            "site-9",
            "203.0.113.9",
            "Mozilla/5.0",
            ClickDevice("mobile", "Android", "Chrome", bot),
            "DE",
            None,
        )
        return asyncio.run(self.service.record(request))


@pytest.fixture
def t() -> Tracking:
    return Tracking()


def test_an_accepted_click_goes_to_the_destination_with_its_macros(t: Tracking) -> None:
    p = t.program()
    outcome = t.visit(p.offer.id, p.partner.id)
    click = outcome.click
    assert outcome.redirect_url == f"https://shop.example/land?tid={click.transaction_id}&s1=s-1"
    assert (click.verdict, click.reject_reason, click.advertiser_id, click.created_at) == (
        "accepted",
        None,
        p.advertiser.id,
        START,
    )
    assert outcome.cookie_days == p.offer.attribution_window_days
    assert t.db.read_now(lambda repo: repo.get_click(click.transaction_id)) == click
    assert t.db.writes == 2  # the program, then the click: one write


def test_an_unknown_offer_is_recorded_and_sent_to_the_network_fallback(t: Tracking) -> None:
    outcome = t.visit(999, 1)
    assert (outcome.click.verdict, outcome.click.reject_reason) == ("rejected", "unknown_offer")
    assert outcome.redirect_url == NETWORK_FALLBACK
    assert outcome.click.advertiser_id is None


def test_without_any_fallback_a_refused_click_has_nowhere_to_go() -> None:
    t = Tracking(fallback=None)
    assert t.visit(999, 1).redirect_url is None


def test_a_paused_offer_sends_clicks_to_its_own_fallback(t: Tracking) -> None:
    p = t.program(status="paused", fallback_url="https://shop.example/other?tid={transaction_id}")
    outcome = t.visit(p.offer.id, p.partner.id)
    assert outcome.click.reject_reason == "offer_paused"
    assert outcome.redirect_url == f"https://shop.example/other?tid={outcome.click.transaction_id}"


def test_a_private_offer_needs_approved_access(t: Tracking) -> None:
    p = t.program(visibility="private")
    assert t.visit(p.offer.id, p.partner.id).click.reject_reason == "offer_access_not_approved"
    access = OfferAccessCreate(offer_id=p.offer.id, partner_id=p.partner.id)
    t.db.write_now(lambda repo: repo.save_access(access, START))
    assert t.visit(p.offer.id, p.partner.id).click.verdict == "accepted"


def test_a_full_click_cap_refuses_billable_clicks_only(t: Tracking) -> None:
    p = t.program(caps=[{"metric": "clicks", "period": "day", "limit": 2}],
                  fallback_url="https://shop.example/full")  # fmt: skip
    verdicts = [t.visit(p.offer.id, p.partner.id).click.reject_reason for _ in range(3)]
    assert verdicts == [None, None, "cap_reached"]
    assert t.visit(p.offer.id, p.partner.id).redirect_url == "https://shop.example/full"
    bot = t.visit(p.offer.id, p.partner.id, bot=True).click
    assert (bot.verdict, bot.device.is_bot) == ("accepted", True)  # bots take no cap and are not refused by it
    t.clock.advance(timedelta(days=1))
    assert t.visit(p.offer.id, p.partner.id).click.verdict == "accepted"


def test_cpc_pays_per_billable_click_with_the_partner_specific_payout(t: Tracking) -> None:
    p = t.program(revenue={"type": "cpc", "amount": "0.30"}, payout={"type": "cpc", "amount": "0.20"})
    billed = t.visit(p.offer.id, p.partner.id).click
    assert (billed.revenue, billed.payout) == (Decimal("0.30"), Decimal("0.20"))
    own = body(PartnerPayoutCreate, partner_id=p.partner.id, payout={"type": "cpc", "amount": "0.25"})
    t.db.write_now(lambda repo: repo.insert_partner_payout(p.offer.id, own, START))
    assert t.visit(p.offer.id, p.partner.id).click.payout == Decimal("0.25")
    bot = t.visit(p.offer.id, p.partner.id, bot=True).click
    assert (bot.revenue, bot.payout) == (Decimal(0), Decimal(0))
    clicks = t.db.read_now(lambda repo: repo.list_clicks(Page()))
    assert len(clicks) == 3


def test_the_duplicate_memo_holds_one_window_of_clicks_and_at_most_its_limit() -> None:
    recent = _RecentClicks(timedelta(seconds=60), limit=3)
    visitor = digest(("203.0.113.9", "Mozilla/5.0", 1, 2))
    recent.remember(visitor, START, "a" * 32)
    assert recent.first_of(visitor, START + timedelta(seconds=59), "b" * 32) == "a" * 32
    assert recent.first_of(visitor, START + timedelta(seconds=60), "b" * 32) is None  # the window is over
    assert recent.first_of(digest(("203.0.113.9", "Mozilla/5.0", 1, 3)), START, "b" * 32) is None  # another partner
    assert recent.first_of(digest(("203.0.113.9", None, 1, 2)), START, "b" * 32) is None  # no user agent is not "None"
    recent.remember(digest(("198.51.100.1", "None", 1, 2)), START + timedelta(seconds=61), "c" * 32)
    assert len(recent._entries) == 1  # the first click left with its window, not only at the limit
    for n in range(5):
        recent.remember(
            digest((f"198.51.100.{n + 2}", "Mozilla/5.0", 1, 2)), START + timedelta(seconds=62), f"{n:032x}"
        )
    assert len(recent._entries) == 3
    assert (
        recent.first_of(digest(("198.51.100.6", "Mozilla/5.0", 1, 2)), START + timedelta(seconds=62), "d" * 32)
        == f"{4:032x}"
    )
