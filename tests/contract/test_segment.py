"""Segment intake: sources with unique write keys, messages unique per source and messageId, customers with
their identities, merges and activity (once per dedup key), the customer report and the custom events report."""

from __future__ import annotations

import itertools
from dataclasses import replace
from decimal import Decimal
from typing import Any

import pytest

from tests.contract.builders import NOW, at, body, new_click, new_conversion
from tests.contract.conftest import Store
from tracklane.domain.errors import Conflict, DuplicateKey
from tracklane.domain.model import ConversionStatus
from tracklane.domain.segment.model import Customer, MessageOutcome, Source
from tracklane.resources.sources import SourceUpdate
from tracklane.services.ports import (
    CustomerChanges,
    MessageResult,
    NewCustomerActivity,
    NewSegmentMessage,
    NewSource,
    Page,
)

_tokens = itertools.count()


def _source(store: Store, write_key: str = "wk_first", **settings: Any) -> Source:
    advertiser = store.write(lambda repo: repo.insert_advertiser("Acme", f"token-{next(_tokens)}", NOW))
    sent = NewSource(name="Shop", advertiser_id=advertiser.id, preset="default", write_key=write_key,
                     webhook_secret="s" * 48, settings=settings)  # fmt: skip
    return store.write(lambda repo: repo.insert_source(sent, NOW))


def _message(source: Source, message_id: str, **changes: Any) -> NewSegmentMessage:
    values: dict[str, Any] = {
        "source_id": source.id, "message_id": message_id, "type": "track", "event": "Order Completed",
        "user_id": "u-1", "anonymous_id": None, "timestamp": at(-1), "original_timestamp": at(-1), "sent_at": None,
        "received_at": NOW, "relayed": False, "payload": {"revenue": Decimal("12.50"), "items": [1, 2]},
        "created_at": NOW, **changes,
    }  # fmt: skip
    return NewSegmentMessage(**values)


def _customer(store: Store, source: Source, *identities: str) -> Customer:
    customer = store.write(lambda repo: repo.insert_customer(source.id, NOW))
    for identity in identities:
        store.write(
            lambda repo, identity=identity: repo.link_identity(  # type: ignore[misc]
                source.id, identity, customer.id
            )
        )
    found = store.read(lambda repo: repo.get_customer(customer.id))
    assert found is not None
    return found


def test_a_source_round_trips_changes_and_keeps_its_write_key_unique(store: Store) -> None:
    source = _source(store, referrer_types=["tracklane"], value=Decimal("1.5"))
    assert store.read(lambda repo: repo.get_source(source.id)) == source
    assert store.read(lambda repo: repo.find_source_by_write_key("wk_first")) == source
    assert source.settings == {"referrer_types": ["tracklane"], "value": "1.5"}  # exact, as JSON text
    assert (source.name, source.preset, source.created_at) == ("Shop", "default", NOW)
    with pytest.raises(Conflict) as refused:
        _source(store, "wk_first")
    assert "write_key" in refused.value.message
    other = _source(store, "wk_other")
    assert store.read(lambda repo: repo.list_sources(Page())) == [other, source]
    changes = body(SourceUpdate, name="Shop 2", advertiser_id=other.advertiser_id, settings={"a": 1})
    store.write(lambda repo: repo.update_source(source.id, changes, at(1)))
    changed = store.read(lambda repo: repo.get_source(source.id))
    assert changed is not None
    assert (changed.name, changed.advertiser_id, dict(changed.settings), changed.updated_at) == (
        "Shop 2",
        other.advertiser_id,
        {"a": 1},
        at(1),
    )


def test_a_message_is_stored_once_per_source_and_takes_its_result(store: Store) -> None:
    source, other = _source(store), _source(store, "wk_other")
    first = store.write(lambda repo: repo.insert_segment_message(_message(source, "m-1")))
    assert first is not None
    assert store.write(lambda repo: repo.insert_segment_message(_message(source, "m-1", event="Again"))) is None
    assert store.write(lambda repo: repo.insert_segment_message(_message(other, "m-1"))) is not None
    [stored] = store.read(lambda repo: repo.list_segment_messages(Page(filters={"source_id": source.id})))
    assert (stored.id, stored.message_id, stored.event, stored.outcome, stored.detail, stored.mapped) == (
        first,
        "m-1",
        "Order Completed",
        MessageOutcome.IGNORED,
        None,
        {},
    )
    assert stored.payload == {"revenue": "12.50", "items": [1, 2]}
    assert (stored.timestamp, stored.received_at, stored.relayed, stored.sent_at) == (at(-1), NOW, False, None)
    customer = store.write(lambda repo: repo.insert_customer(source.id, NOW))
    result = MessageResult(MessageOutcome.CUSTOMER, "signed up", None, customer.id,
                           {"summary": "signup", "amount": Decimal("3")})  # fmt: skip
    store.write(lambda repo: repo.update_segment_message(first, result))
    [changed] = store.read(lambda repo: repo.list_segment_messages(Page(filters={"outcome": "customer"})))
    assert (changed.id, changed.detail, changed.customer_id, changed.mapped) == (
        first,
        "signed up",
        customer.id,
        {"summary": "signup", "amount": "3"},
    )


def test_customers_are_found_by_their_identities_within_their_source(store: Store) -> None:
    source, other = _source(store), _source(store, "wk_other")
    customer = _customer(store, source, "user:u-1", "anonymous:a-9", "anonymous:a-1")
    theirs = _customer(store, other, "user:u-1")
    assert list(customer.identities) == ["anonymous:a-1", "anonymous:a-9", "user:u-1"]
    assert list(customer.anonymous_ids) == ["a-1", "a-9"]
    assert (customer.status, customer.visits, customer.traits, customer.source_id) == ("active", 0, {}, source.id)
    assert store.read(lambda repo: repo.find_customers(source.id, ["user:u-1", "user:nobody"])) == [customer]
    assert store.read(lambda repo: repo.find_customers(other.id, ["user:u-1"])) == [theirs]
    assert store.read(lambda repo: repo.find_customers(source.id, [])) == []
    assert store.read(lambda repo: repo.list_customers(Page(filters={"identity": "user:u-1"}))) == [theirs, customer]
    assert store.read(lambda repo: repo.list_customers(Page(filters={"source_id": other.id}))) == [theirs]


def test_an_identity_linked_already_stays_with_its_customer(store: Store) -> None:
    """Linking never moves an identity: one linked meanwhile by a writer this one could not see is refused,
    and the other customer keeps it (only a merge moves identities)."""
    source = _source(store)
    first = _customer(store, source, "anonymous:a-1")
    second = _customer(store, source, "user:u-2")
    with pytest.raises(DuplicateKey):
        store.write(lambda repo: repo.link_identity(source.id, "anonymous:a-1", second.id))
    assert store.read(lambda repo: repo.find_customers(source.id, ["anonymous:a-1"])) == [first]
    assert store.read(lambda repo: repo.get_customer(second.id)).identities == ["user:u-2"]  # type: ignore[union-attr]


def test_a_customer_changes_only_what_is_given(store: Store) -> None:
    source = _source(store)
    customer = _customer(store, source, "user:u-1")
    changes = CustomerChanges(user_id="u-1", traits={"plan": "pro", "mrr": Decimal("9.90")}, visits=3,
                              audiences=("vip",), signed_up_at=at(-5), transaction_id="t" * 32, offer_id=7,
                              partner_id=8)  # fmt: skip
    store.write(lambda repo: repo.update_customer(customer.id, changes, at(1)))
    changed = store.read(lambda repo: repo.get_customer(customer.id))
    assert changed is not None
    assert (changed.user_id, dict(changed.traits), changed.visits, list(changed.audiences)) == (
        "u-1",
        {"plan": "pro", "mrr": "9.90"},
        3,
        ["vip"],
    )
    assert (changed.signed_up_at, changed.transaction_id, changed.offer_id, changed.partner_id) == (
        at(-5),
        "t" * 32,
        7,
        8,
    )
    assert (changed.status, changed.group_id, changed.churned_at, changed.updated_at) == ("active", None, None, at(1))
    store.write(lambda repo: repo.update_customer(customer.id, CustomerChanges(user_id=None), at(2)))
    cleared = store.read(lambda repo: repo.get_customer(customer.id))
    assert cleared is not None and cleared.user_id is None and cleared.visits == 3


def test_a_merge_moves_identities_activity_and_messages_to_the_kept_customer(store: Store) -> None:
    source = _source(store)
    keep = _customer(store, source, "user:u-1")
    drop = _customer(store, source, "anonymous:a-1")
    message = store.write(lambda repo: repo.insert_segment_message(_message(source, "m-1")))
    assert message is not None
    store.write(
        lambda repo: repo.update_segment_message(message, MessageResult(MessageOutcome.CUSTOMER, "", None, drop.id, {}))
    )
    store.write(lambda repo: repo.insert_customer_activity(_activity(source, drop, "signup")))
    store.write(lambda repo: repo.merge_customers(keep.id, drop.id))
    assert store.read(lambda repo: repo.get_customer(drop.id)) is None
    merged = store.read(lambda repo: repo.get_customer(keep.id))
    assert merged is not None and list(merged.identities) == ["anonymous:a-1", "user:u-1"]
    [moved] = store.read(lambda repo: repo.list_segment_messages(Page()))
    assert moved.customer_id == keep.id
    report = store.read(lambda repo: repo.customer_report("source", None, None, {}))
    assert [(r["source"], r["new_customers"]) for r in report] == [(source.id, 1)]


def _activity(source: Source, customer: Customer, kind: str, amount: str | None = None, partner_id: int | None = None,
              occurred: float = 0, event: str | None = None,
              key: str | None = None) -> NewCustomerActivity:  # fmt: skip
    once = kind in ("signup", "churn")
    return NewCustomerActivity(
        source_id=source.id, customer_id=customer.id, kind=kind, amount=None if amount is None else Decimal(amount),
        currency=None if amount is None else "USD", offer_id=None if partner_id is None else 1, partner_id=partner_id,
        message_id=f"m-{kind}-{occurred}", occurred_at=at(occurred), created_at=NOW, event=event,
        dedup_key=key or (f"customer:{customer.id}" if once else f"message:m-{kind}-{occurred}-{event}"),
    )  # fmt: skip


def test_the_customer_report_sums_activity_and_segment_payout_per_partner(store: Store) -> None:
    source = _source(store)
    customer, later = _customer(store, source, "user:u-1"), _customer(store, source, "user:u-2")
    for activity in (_activity(source, customer, "signup", partner_id=5),
                     _activity(source, customer, "payment", "20.00", 5, occurred=1),
                     _activity(source, customer, "payment", "5.5", 5, occurred=2),
                     _activity(source, customer, "refund", "5.5", 5, occurred=3),
                     _activity(source, later, "signup"), _activity(source, later, "payment", "7"),
                     _activity(source, later, "churn", occurred=60)):  # fmt: skip
        store.write(lambda repo, activity=activity: repo.insert_customer_activity(activity))  # type: ignore[misc]
    click = store.write(lambda repo: repo.insert_click(new_click(partner_id=5)))
    for status, payout in ((ConversionStatus.APPROVED, "4"), (ConversionStatus.REJECTED, "100")):
        conversion = new_conversion(click, origin="segment", status=status, payout=Decimal(payout), dedup_key=None)
        store.write(lambda repo, conversion=conversion: repo.insert_conversion(conversion))  # type: ignore[misc]
    store.write(lambda repo: repo.insert_conversion(new_conversion(click, payout=Decimal(50))))  # a postback's
    report = store.read(lambda repo: repo.customer_report("partner", None, at(30), {}))
    zero = Decimal(0)
    assert report == [
        {"partner": 5, "new_customers": 1, "paying_customers": 1, "payments": 2, "payment_amount": Decimal("25.5"),
         "refunds": 1, "refund_amount": Decimal("5.5"), "churned": 0, "payout": Decimal(4)},
        {"partner": None, "new_customers": 1, "paying_customers": 1, "payments": 1, "payment_amount": Decimal(7),
         "refunds": 0, "refund_amount": zero, "churned": 0, "payout": zero},
    ]  # fmt: skip
    store.write(lambda repo: repo.set_activity_attribution(later.id, 1, 6))
    narrowed = store.read(lambda repo: repo.customer_report("partner", None, None, {"partner_id": 6}))
    assert [(r["partner"], r["payments"], r["churned"]) for r in narrowed] == [(6, 1, 1)]


def test_an_activity_is_recorded_once_per_source_kind_and_dedup_key(store: Store) -> None:
    source, other = _source(store), _source(store, "wk_other")
    customer = _customer(store, source, "user:u-1")
    assert store.write(lambda repo: repo.insert_customer_activity(_activity(source, customer, "signup"))) is True
    again = _activity(source, customer, "signup", occurred=5)
    assert store.write(lambda repo: repo.insert_customer_activity(again)) is False
    paid = _activity(source, customer, "payment", "10", key="payment:p-1")
    assert store.write(lambda repo: repo.insert_customer_activity(paid)) is True
    assert store.write(lambda repo: repo.insert_customer_activity(replace(paid, amount=Decimal(99)))) is False
    assert store.write(lambda repo: repo.insert_customer_activity(replace(paid, kind="refund"))) is True
    theirs = _customer(store, other, "user:u-1")
    assert store.write(lambda repo: repo.insert_customer_activity(_activity(other, theirs, "payment", "1",
                                                                            key="payment:p-1"))) is True  # fmt: skip
    [row] = store.read(lambda repo: repo.customer_report("source", None, None, {"source_id": source.id}))
    assert (row["new_customers"], row["payments"], row["payment_amount"], row["refunds"]) == (1, 1, Decimal(10), 1)


def test_a_merge_keeps_one_signup_and_one_churn_and_counts_for_the_kept_click(store: Store) -> None:
    source = _source(store)
    keep, drop = _customer(store, source, "user:u-1"), _customer(store, source, "anonymous:a-1")
    store.write(lambda repo: repo.update_customer(keep.id, CustomerChanges(offer_id=1, partner_id=7), NOW))
    for activity in (_activity(source, keep, "signup", partner_id=7, occurred=10),
                     _activity(source, drop, "signup", occurred=2), _activity(source, drop, "churn", occurred=3),
                     _activity(source, drop, "event", occurred=4, event="Feature Used")):  # fmt: skip
        store.write(lambda repo, activity=activity: repo.insert_customer_activity(activity))  # type: ignore[misc]
    store.write(lambda repo: repo.merge_customers(keep.id, drop.id))
    report = store.read(lambda repo: repo.customer_report("partner", None, None, {}))
    assert [(r["partner"], r["new_customers"], r["churned"]) for r in report] == [(7, 1, 1)]
    later = store.read(lambda repo: repo.customer_report("partner", at(5), None, {}))
    assert later == []  # the signup kept is the earliest (at 2), not the one at 10
    assert store.write(lambda repo: repo.insert_customer_activity(_activity(source, keep, "signup", occurred=20))) \
        is False  # fmt: skip
    merged = store.read(lambda repo: repo.get_customer(keep.id))
    assert merged is not None and dict(merged.events) == {"Feature Used": 1}


def test_the_custom_events_report_counts_per_group_and_event_and_filters(store: Store) -> None:
    source = _source(store)
    ann, bob = _customer(store, source, "user:ann"), _customer(store, source, "user:bob")
    sent = [(ann, "Feature Used", 5), (ann, "Feature Used", 5), (ann, "Report Exported", 5),
            (bob, "Feature Used", None)]  # fmt: skip
    for n, (person, name, partner) in enumerate(sent):
        activity = _activity(source, person, "event", partner_id=partner, occurred=n, event=name)
        store.write(lambda repo, activity=activity: repo.insert_customer_activity(activity))  # type: ignore[misc]
    report = store.read(lambda repo: repo.customer_event_report("partner", None, None, {}))
    assert report == [
        {"partner": 5, "event": "Feature Used", "count": 2, "customers": 1},
        {"partner": 5, "event": "Report Exported", "count": 1, "customers": 1},
        {"partner": None, "event": "Feature Used", "count": 1, "customers": 1},
    ]
    narrowed = store.read(lambda repo: repo.customer_event_report("customer", at(1), None, {"event": "Feature Used"}))
    assert narrowed == [{"customer": ann.id, "event": "Feature Used", "count": 1, "customers": 1},
                        {"customer": bob.id, "event": "Feature Used", "count": 1, "customers": 1}]  # fmt: skip
    assert store.read(lambda repo: repo.customer_report("partner", None, None, {})) == []  # events are no metric
    found = store.read(lambda repo: repo.list_customers(Page(filters={"event": "Report Exported"})))
    assert [(c.id, dict(c.events)) for c in found] == [(ann.id, {"Feature Used": 2, "Report Exported": 1})]


def test_the_segment_payout_counts_for_the_source_of_the_message_that_recorded_it(store: Store) -> None:
    source, other = _source(store), _source(store, "wk_other")
    click = store.write(lambda repo: repo.insert_click(new_click(partner_id=5)))
    for n, (recorder, payout) in enumerate(((source, "4"), (other, "3"))):
        conversion = store.write(lambda repo, payout=payout, n=n: repo.insert_conversion(  # type: ignore[misc]
            new_conversion(click, origin="segment", payout=Decimal(payout), dedup_key=f"d-{n}")))  # fmt: skip
        for k, sender in enumerate((recorder, source)):  # a later message of `source` finds it again (a duplicate)
            row_id = store.write(lambda repo, sender=sender, n=n, k=k: repo.insert_segment_message(  # type: ignore[misc]
                _message(sender, f"m-{n}-{k}")))  # fmt: skip
            assert row_id is not None
            result = MessageResult(MessageOutcome.CONVERSION, "", conversion.id, None, {})
            store.write(lambda repo, row_id=row_id, result=result: repo.update_segment_message(  # type: ignore[misc]
                row_id, result))  # fmt: skip
    by_source = store.read(lambda repo: repo.customer_report("source", None, None, {}))
    assert [(r["source"], r["payout"], r["new_customers"]) for r in by_source] == [
        (source.id, Decimal(4), 0),
        (other.id, Decimal(3), 0),
    ]
    narrowed = store.read(lambda repo: repo.customer_report("partner", None, None, {"source_id": other.id}))
    assert [(r["partner"], r["payout"]) for r in narrowed] == [(5, Decimal(3))]
