"""Clicks, cap counters and conversions: round-trips, newest-first paging, dedup keys, caps all-or-none."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import pytest

from tests.contract.builders import NOW, at, new_click, new_conversion
from tests.contract.conftest import Store
from tracklane.domain.caps import CapCounterKey
from tracklane.domain.errors import DuplicateKey
from tracklane.domain.model import Click, ClickDevice, Conversion, ConversionStatus, Origin
from tracklane.domain.trace import TraceStep
from tracklane.resources.reports import ReportLine, ReportQuery
from tracklane.services.ports import Page, Repository


def _click(store: Store, **changes: object) -> Click:
    return store.write(lambda repo: repo.insert_click(new_click(**changes)))


def _conversion(store: Store, click: Click, **changes: object) -> Conversion:
    return store.write(lambda repo: repo.insert_conversion(new_conversion(click, **changes)))


def test_a_click_reads_back_field_for_field(store: Store) -> None:
    sent = new_click(subs=("a", "b", None, "d", "e"), device=ClickDevice("mobile", "iOS", None, True),
                     advertiser_id=None, referrer="https://ref.example/", revenue=Decimal("0.1234"))  # fmt: skip
    stored = store.write(lambda repo: repo.insert_click(sent))
    read = store.read(lambda repo: repo.get_click(sent.transaction_id))
    assert read == stored
    assert read is not None and read.id > 0
    assert (read.subs, read.device, read.advertiser_id, read.referrer) == (sent.subs, sent.device, None, sent.referrer)
    assert (read.revenue, read.payout, read.created_at) == (Decimal("0.1234"), Decimal("0.10"), NOW)
    assert read.created_at.tzinfo is not None and read.created_at.utcoffset() == timedelta(0)
    assert store.read(lambda repo: repo.get_click("f" * 32)) is None


def test_times_are_kept_as_the_same_instant_in_utc(store: Store) -> None:
    paris = timezone(timedelta(hours=1))
    sent = new_click(created_at=datetime(2026, 3, 2, 13, 0, 0, 123456, tzinfo=paris))
    store.write(lambda repo: repo.insert_click(sent))
    read = store.read(lambda repo: repo.get_click(sent.transaction_id))
    assert read is not None
    assert read.created_at == datetime(2026, 3, 2, 12, 0, 0, 123456, tzinfo=UTC)
    assert read.created_at.utcoffset() == timedelta(0)


def test_a_transaction_id_is_unique(store: Store) -> None:
    first = _click(store)
    with pytest.raises(DuplicateKey) as refused:
        _click(store, transaction_id=first.transaction_id)
    assert refused.value.field == "transaction_id"


def test_clicks_page_newest_first_with_cursor_time_range_and_filters(store: Store) -> None:
    clicks = [_click(store, created_at=at(i), partner_id=1 + i % 2, verdict="accepted" if i % 3 else "rejected")
              for i in range(7)]  # fmt: skip
    ids = [c.id for c in clicks]

    def page(**kwargs: object) -> list[int]:
        return [c.id for c in store.read(lambda repo: repo.list_clicks(Page(**kwargs)))]  # type: ignore[arg-type]

    assert page() == ids[::-1]
    assert page(limit=3) == ids[:3:-1]
    assert page(limit=3, cursor=ids[4]) == ids[3:0:-1]
    assert page(cursor=ids[0]) == []
    assert page(created_from=at(2), created_to=at(5)) == [ids[4], ids[3], ids[2]]  # from inclusive, to exclusive
    assert page(filters={"partner_id": 2}) == [ids[5], ids[3], ids[1]]
    assert page(filters={"partner_id": 1, "verdict": "rejected"}) == [ids[6], ids[0]]
    assert page(filters={"partner_id": None}) == ids[::-1]  # a filter without a value does not filter


def test_take_caps_counts_up_to_the_limit_and_no_further(store: Store) -> None:
    key = CapCounterKey(cap_id=1, scope=0, period_start="2026-03-02")
    taken = [store.write(lambda repo: repo.take_caps([(key, 3)])) for _ in range(5)]
    assert taken == [True, True, True, False, False]
    assert store.write(lambda repo: repo.take_caps([(key, 4)])) is True  # a raised limit frees one more
    assert store.write(lambda repo: repo.take_caps([(key, 0)])) is False


def test_take_caps_is_all_or_none(store: Store) -> None:
    roomy, full = CapCounterKey(1, 0, "-"), CapCounterKey(2, 7, "2026-03-01")
    assert store.write(lambda repo: repo.take_caps([(full, 1)])) is True
    assert store.write(lambda repo: repo.take_caps([(roomy, 3), (full, 1)])) is False
    assert store.write(lambda repo: repo.take_caps([(roomy, 3), (full, 1)])) is False
    # The roomy counter counted nothing for the refused actions: all three of its places are free.
    assert [store.write(lambda repo: repo.take_caps([(roomy, 3)])) for _ in range(4)] == [True, True, True, False]
    assert store.write(lambda repo: repo.take_caps([])) is True


def test_cap_counters_are_separate_per_cap_scope_and_period(store: Store) -> None:
    keys = [CapCounterKey(1, 0, "2026-03-02"), CapCounterKey(1, 5, "2026-03-02"), CapCounterKey(1, 0, "2026-03-03"),
            CapCounterKey(2, 0, "2026-03-02")]  # fmt: skip
    for key in keys:
        assert store.write(lambda repo, key=key: repo.take_caps([(key, 1)])) is True  # type: ignore[misc]
    for key in keys:
        assert store.write(lambda repo, key=key: repo.take_caps([(key, 1)])) is False  # type: ignore[misc]


def test_caps_taken_in_a_write_that_fails_are_given_back(store: Store) -> None:
    key = CapCounterKey(3, 0, "-")

    def take_then_fail(repo: Repository) -> None:
        assert repo.take_caps([(key, 1)])
        raise RuntimeError("after the cap")

    with pytest.raises(RuntimeError):
        store.write(take_then_fail)
    assert store.write(lambda repo: repo.take_caps([(key, 1)])) is True


def test_a_conversion_reads_back_field_for_field(store: Store) -> None:
    click = _click(store)
    sent = new_conversion(click, advs=("a1", None, "a3", None, "a5"), amount=None, order_id=None,
                          status=ConversionStatus.PENDING, status_reason="manual_approval")  # fmt: skip
    stored = store.write(lambda repo: repo.insert_conversion(sent))
    read = store.read(lambda repo: repo.get_conversion(stored.id))
    assert read == stored
    assert read is not None
    assert (read.click_id, read.transaction_id, read.status, read.origin) == (
        click.id,
        click.transaction_id,
        ConversionStatus.PENDING,
        Origin.POSTBACK,
    )
    assert (read.revenue, read.payout, read.amount, read.advs) == (Decimal(10), Decimal("6.5"), None, sent.advs)
    assert (read.trace, read.created_at, read.updated_at) == (sent.trace, NOW, NOW)
    assert store.read(lambda repo: repo.get_conversion(stored.id + 100)) is None


def test_a_conversion_needs_its_click(store: Store) -> None:
    click = _click(store)
    with pytest.raises(store.integrity_error):
        _conversion(store, replace(click, id=click.id + 100))


def test_a_dedup_key_is_taken_once_and_found_again(store: Store) -> None:
    click = _click(store)
    first = _conversion(store, click, dedup_key="k:1")
    assert store.read(lambda repo: repo.find_conversion_by_dedup_key("k:1")) == first
    assert store.read(lambda repo: repo.find_conversion_by_dedup_key("k:2")) is None

    def insert_again(repo: Repository) -> None:
        repo.insert_advertiser("Not kept", "token-dup", NOW)
        repo.insert_conversion(new_conversion(click, dedup_key="k:1", order_id="other"))

    with pytest.raises(DuplicateKey):
        store.write(insert_again)
    assert store.read(lambda repo: repo.list_conversions(Page())) == [first]
    assert store.read(lambda repo: repo.find_advertiser_by_token("token-dup")) is None


def test_conversions_without_a_dedup_key_never_collide(store: Store) -> None:
    click = _click(store)
    made = [_conversion(store, click, dedup_key=None) for _ in range(3)]
    assert len({c.id for c in made}) == 3


def test_has_base_conversion_looks_at_base_conversions_of_the_click_only(store: Store) -> None:
    click, other = _click(store), _click(store)
    _conversion(store, click, dedup_key=None, status=ConversionStatus.REJECTED)
    _conversion(store, other, dedup_key=None, event_id=3, event_name="upsell")
    assert store.read(lambda repo: repo.has_base_conversion(click.id)) is True
    fresh = _click(store)
    _conversion(store, fresh, dedup_key=None, event_id=3, event_name="upsell")
    assert store.read(lambda repo: repo.has_base_conversion(fresh.id)) is False


def test_conversions_page_and_filter_like_clicks(store: Store) -> None:
    clicks = [_click(store, created_at=at(i)) for i in range(4)]
    made = [_conversion(store, c, created_at=at(10 + i), order_id=f"o-{i % 2}") for i, c in enumerate(clicks)]
    ids = [c.id for c in made]

    def page(page: Page) -> list[int]:
        return [c.id for c in store.read(lambda repo: repo.list_conversions(page))]

    assert page(Page()) == ids[::-1]
    assert page(Page(limit=2, cursor=ids[3])) == [ids[2], ids[1]]
    assert page(Page(created_from=at(11), created_to=at(13))) == [ids[2], ids[1]]
    assert page(Page(filters={"order_id": "o-1"})) == [ids[3], ids[1]]
    assert page(Page(filters={"transaction_id": clicks[2].transaction_id})) == [ids[2]]


def test_a_status_change_keeps_its_reason_trace_and_time(store: Store) -> None:
    conversion = _conversion(store, _click(store))
    trace = (*conversion.trace, TraceStep("status_change", "rejected", "approved -> rejected: fraud", at=at(30)))
    rejected = ConversionStatus.REJECTED
    store.write(lambda repo: repo.update_conversion_status(conversion.id, rejected, "fraud", trace, at(30)))
    read = store.read(lambda repo: repo.get_conversion(conversion.id))
    assert read is not None
    assert (read.status, read.status_reason, read.trace) == (ConversionStatus.REJECTED, "fraud", trace)
    assert (read.created_at, read.updated_at) == (NOW, at(30))


def test_the_report_sums_clicks_and_conversions_per_dimension(store: Store) -> None:
    accepted = _click(store, partner_id=1, revenue=Decimal("0.50"), payout=Decimal("0.20"))
    _click(store, partner_id=1, device=ClickDevice("desktop", None, None, True), revenue=Decimal(0),
           payout=Decimal(0))  # fmt: skip
    rejected = _click(store, partner_id=2, verdict="rejected", reject_reason="paused", revenue=Decimal(0),
                      payout=Decimal(0))  # fmt: skip
    _conversion(store, accepted, amount=Decimal("20"), revenue=Decimal("4"), payout=Decimal("3"))
    _conversion(store, accepted, dedup_key=None, event_id=9, event_name="upsell", status=ConversionStatus.PENDING,
                amount=None, revenue=Decimal("1"), payout=Decimal("0.5"))  # fmt: skip
    _conversion(store, rejected, status=ConversionStatus.REJECTED, amount=Decimal("5"))
    report = store.read(lambda repo: repo.report(ReportQuery(("partner",))))
    # each line is of one currency: the clicks' their offer's (USD, offer 1 does not exist), the conversions' EUR;
    # money in storage units
    assert report == [
        ReportLine({"partner": 1}, "EUR", conversions=1, events=1, orders=1, pending=1, pending_revenue=1_0000,
                   pending_payout=5000, sale_amount=20_0000, revenue=4_0000, payout=3_0000),
        ReportLine({"partner": 1}, "USD", gross_clicks=2, unique_clicks=1, clicks=1, bot_clicks=1, revenue=5000,
                   payout=2000),
        ReportLine({"partner": 2}, "EUR", rejected=1),
        ReportLine({"partner": 2}, "USD", gross_clicks=1, unique_clicks=1, rejected_clicks=1),
    ]  # fmt: skip
    by_day = store.read(lambda repo: repo.report(ReportQuery(("day", "sub1"), partner_id=2)))
    assert [(r.group, r.currency, r.rejected_clicks) for r in by_day] == [
        ({"day": "2026-03-02", "sub1": "s1"}, "EUR", 0),
        ({"day": "2026-03-02", "sub1": "s1"}, "USD", 1),
    ]
    assert store.read(lambda repo: repo.report(ReportQuery(("offer",), created_from=at(1)))) == []
