"""`ConversionService.record` on the in-memory ports: duplicates (also when a concurrent writer wins the
dedup key), caps, the attribution window, events that need a prior conversion, tokens, methods, and the
outbox written in the same transaction."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, TypeVar, cast

import pytest

from tests.fakes import FakeClock, FakeDatabase, Program, body, program
from tracklane.domain.errors import PostbackRefused
from tracklane.domain.model import Click, ClickDevice, Conversion, ConversionStatus, Origin
from tracklane.domain.postback import ConversionRequest
from tracklane.resources.offers import OfferEventCreate
from tracklane.resources.webhooks import WebhookCreate
from tracklane.services.clicks import ClickRequest, ClickService
from tracklane.services.conversions import ConversionOutcome, ConversionService
from tracklane.services.ports import Page, Repository

T = TypeVar("T")
START = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
_transactions = itertools.count(1)


class Setting:
    """The services of one test over one fake database and clock."""

    def __init__(self, db: FakeDatabase | None = None) -> None:
        self.db = db or FakeDatabase()
        self.clock = FakeClock(START)
        self.clicks = ClickService(  # the same visitor clicks again and again here: no duplicate window
            self.db, self.clock, lambda: f"{next(_transactions):032x}", None, duplicate_window_seconds=0
        )
        self.conversions = ConversionService(self.db, self.clock)

    def program(self, **offer_fields: Any) -> Program:
        return program(self.db, self.clock(), **offer_fields)

    def click(self, p: Program, bot: bool = False) -> Click:
        request = ClickRequest(
            p.offer.id,
            p.partner.id,
            ("s1", None, None, None, None),
            None,
            "203.0.113.9",
            "Mozilla/5.0",
            ClickDevice("desktop", "Linux", "Firefox", bot),
            "DE",
            None,
        )
        return asyncio.run(self.clicks.record(request)).click

    def postback(self, p: Program, click: Click, **fields: Any) -> ConversionOutcome:
        request = ConversionRequest(**{
            "transaction_id": click.transaction_id, "token": p.advertiser.postback_token, "event_id": None,
            "event_name": None, "amount": None, "order_id": None, "currency": None, "advs": (None,) * 5, **fields,
        })  # fmt: skip
        return asyncio.run(self.conversions.record(request, Origin.POSTBACK))

    def conversions_stored(self) -> list[Conversion]:
        return self.db.read_now(lambda repo: repo.list_conversions(Page(limit=100)))

    def read(self, work: Callable[[Repository], T]) -> T:
        return self.db.read_now(work)


@pytest.fixture
def s() -> Setting:
    return Setting()


def _refused(code: str, run: Callable[[], object]) -> PostbackRefused:
    with pytest.raises(PostbackRefused) as refused:
        run()
    assert refused.value.code == code, refused.value.message
    return refused.value


def test_a_postback_converts_the_click_with_the_offer_money_and_a_trace(s: Setting) -> None:
    p = s.program()
    click = s.click(p)
    s.clock.advance(timedelta(hours=2))
    outcome = s.postback(p, click, amount=Decimal("80.00"), order_id="o-1")
    conversion = outcome.conversion
    assert outcome.result == "accepted"
    assert (conversion.status, conversion.revenue, conversion.payout, conversion.amount) == (
        ConversionStatus.APPROVED,
        Decimal("10.00"),
        Decimal("6.00"),
        Decimal("80.00"),
    )
    assert (conversion.click_id, conversion.partner_id, conversion.created_at) == (
        click.id,
        p.partner.id,
        START + timedelta(hours=2),
    )
    assert [step.step for step in conversion.trace][:3] == ["token", "click", "method"]
    assert s.conversions_stored() == [conversion]


def test_a_second_postback_for_the_click_is_a_duplicate(s: Setting) -> None:
    p = s.program()
    click = s.click(p)
    first = s.postback(p, click)
    again = s.postback(p, click, order_id="other")
    assert (again.result, again.conversion) == ("duplicate", first.conversion)
    assert len(s.conversions_stored()) == 1


def test_with_multiple_conversions_the_order_id_is_what_deduplicates(s: Setting) -> None:
    p = s.program(allow_multiple_conversions=True)
    click = s.click(p)
    results = [s.postback(p, click, order_id=order).result for order in ("a", "b", "a")]
    assert results == ["accepted", "accepted", "duplicate"]
    s.postback(p, click)
    s.postback(p, click)
    assert len(s.conversions_stored()) == 4  # without an order id nothing is deduplicated


class StaleLookups(FakeDatabase):
    """As if another writer committed a conversion just after this write looked for its dedup key: the next
    `misses` lookups do not see it (the SQL stores meet this across processes)."""

    misses = 0

    def write(self, work: Callable[[Repository], T]) -> Awaitable[T]:
        return super().write(lambda repo: work(cast(Repository, _Stale(repo, self))))


class _Stale:
    def __init__(self, repo: Repository, db: StaleLookups) -> None:
        self._repo, self._db = repo, db

    def __getattr__(self, name: str) -> Any:
        return getattr(self._repo, name)

    def find_conversion_by_dedup_key(self, key: str) -> Conversion | None:
        if self._db.misses:
            self._db.misses -= 1
            return None
        return self._repo.find_conversion_by_dedup_key(key)


def test_a_concurrent_duplicate_loses_the_key_and_is_answered_as_a_duplicate() -> None:
    s = Setting(StaleLookups())
    p = s.program()
    click = s.click(p)
    first = s.postback(p, click)
    assert isinstance(s.db, StaleLookups)
    s.db.misses = 1
    writes = s.db.writes
    outcome = s.postback(p, click)
    assert (outcome.result, outcome.conversion) == ("duplicate", first.conversion)
    assert s.db.writes == writes + 1  # the write that lost the key was undone, the retry answered
    assert s.conversions_stored() == [first.conversion]


def test_a_conversion_always_losing_the_race_is_refused_as_busy() -> None:
    s = Setting(StaleLookups())
    p = s.program()
    click = s.click(p)
    s.postback(p, click)
    assert isinstance(s.db, StaleLookups)
    s.db.misses = 10
    _refused("busy", lambda: s.postback(p, click))
    assert len(s.conversions_stored()) == 1


def test_a_full_conversion_cap_holds_the_conversion_as_pending(s: Setting) -> None:
    p = s.program(caps=[{"metric": "conversions", "period": "day", "limit": 1}])
    first, second = s.click(p), s.click(p)
    assert s.postback(p, first).conversion.status is ConversionStatus.APPROVED
    held = s.postback(p, second).conversion
    assert (held.status, held.status_reason) == (ConversionStatus.PENDING, "over_cap")
    s.clock.advance(timedelta(days=1))  # a new day: a new counter
    assert s.postback(p, s.click(p)).conversion.status is ConversionStatus.APPROVED


def test_caps_count_per_partner_when_asked(s: Setting) -> None:
    p = s.program(caps=[{"metric": "conversions", "period": "total", "limit": 1, "per_partner": True}])
    other = s.db.write_now(lambda repo: repo.insert_partner("Other", "other@example.com", "active", START))
    assert s.postback(p, s.click(p)).conversion.status is ConversionStatus.APPROVED
    assert s.postback(p, s.click(replace(p, partner=other))).conversion.status is ConversionStatus.APPROVED
    assert s.postback(p, s.click(p)).conversion.status is ConversionStatus.PENDING


def test_a_bot_click_converts_as_pending(s: Setting) -> None:
    p = s.program()
    held = s.postback(p, s.click(p, bot=True)).conversion
    assert (held.status, held.status_reason) == (ConversionStatus.PENDING, "bot_click")


def test_a_postback_after_the_attribution_window_is_refused(s: Setting) -> None:
    p = s.program(attribution_window_days=30)
    click = s.click(p)
    s.clock.advance(timedelta(days=30))
    s.postback(p, click, order_id="last-moment")
    later = s.click(p)
    s.clock.advance(timedelta(days=30, seconds=1))
    _refused("outside_window", lambda: s.postback(p, later))
    assert len(s.conversions_stored()) == 1


def test_an_event_needs_a_base_conversion_on_the_click_first(s: Setting) -> None:
    p = s.program()
    event = s.db.write_now(
        lambda repo: repo.insert_offer_event(
            p.offer.id,
            body(
                OfferEventCreate,
                name="upsell",
                revenue={"type": "fixed", "amount": "3"},
                payout={"type": "fixed", "amount": "1"},
            ),
            START,
        )
    )
    click = s.click(p)
    _refused("no_prior_conversion", lambda: s.postback(p, click, event_name="upsell"))
    _refused("unknown_event", lambda: s.postback(p, click, event_name="nothing"))
    s.postback(p, click)
    recorded = s.postback(p, click, event_id=event.id).conversion
    assert (recorded.event_id, recorded.revenue, recorded.payout) == (event.id, Decimal(3), Decimal(1))
    assert s.postback(p, click, event_name="upsell").result == "duplicate"


def test_a_wrong_token_or_an_unknown_click_is_refused_before_anything_is_written(s: Setting) -> None:
    p, other = s.program(), s.program()
    click = s.click(p)
    _refused("invalid_token", lambda: s.postback(other, click))
    _refused("unknown_transaction", lambda: s.postback(p, replace(click, transaction_id="0" * 32)))
    assert s.conversions_stored() == []


def test_an_offer_that_does_not_accept_postbacks_refuses_them(s: Setting) -> None:
    p = s.program(conversion_methods=["pixel", "segment"])
    _refused("method_not_enabled", lambda: s.postback(p, s.click(p)))


def test_the_webhook_of_a_conversion_is_queued_in_the_same_write(s: Setting) -> None:
    s.db.write_now(
        lambda repo: repo.insert_webhook_endpoint(
            body(WebhookCreate, url="https://hooks.example/", event_types=["conversion.registered"]), "sealed", START
        )
    )
    p = s.program()
    conversion = s.postback(p, s.click(p)).conversion
    [delivery] = s.read(lambda repo: repo.list_deliveries(Page()))
    assert (delivery.event_type, delivery.created_at) == ("conversion.registered", conversion.created_at)
    assert f'"id":{conversion.id}' in (delivery.body or "")
    late = s.click(p)
    s.clock.advance(timedelta(days=60))
    _refused("outside_window", lambda: s.postback(p, late))
    assert len(s.read(lambda repo: repo.list_deliveries(Page()))) == 1  # a refusal queues nothing
