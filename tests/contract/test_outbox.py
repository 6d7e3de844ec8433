"""The outbox: deliveries with dedup keys, claims under a lease that no two workers share, release by the
lease holder only, attempts, and requeueing one delivery or a time range."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta

import pytest

from tests.contract.builders import NOW, at, body, new_delivery
from tests.contract.conftest import Store
from tracklane.domain.delivery import Delivery, DeliveryKind, DeliveryStatus
from tracklane.domain.partner_postbacks import FiresOn, PostbackStatus
from tracklane.domain.webhooks import EndpointStatus
from tracklane.resources.partner_postbacks import PartnerPostbackCreate, PartnerPostbackUpdate
from tracklane.resources.webhooks import WebhookCreate, WebhookUpdate
from tracklane.services.ports import (
    EndpointState,
    NewAttempt,
    Page,
    PostbackState,
    Release,
    Repository,
    Requeue,
    SecretRotation,
)

LEASE = timedelta(minutes=1)


def _delivery(store: Store, **changes: object) -> Delivery:
    delivery = store.write(lambda repo: repo.insert_delivery(new_delivery(**changes)))
    assert delivery is not None
    return delivery


def _get(store: Store, delivery_id: int) -> Delivery:
    delivery = store.read(lambda repo: repo.get_delivery(delivery_id))
    assert delivery is not None
    return delivery


def _claim(store: Store, worker: str, now: datetime = NOW, limit: int = 10) -> list[int]:
    claimed = store.write(lambda repo: repo.claim_deliveries(worker, now, now + LEASE, limit))
    return [d.id for d in claimed]


def test_a_delivery_reads_back_pending_with_a_message_id(store: Store) -> None:
    sent = new_delivery(kind=DeliveryKind.WEBHOOK, method="POST", body='{"type":"x"}', next_attempt_at=at(5),
                        url=None, event_type="offer.created")  # fmt: skip
    stored = store.write(lambda repo: repo.insert_delivery(sent))
    assert stored is not None and _get(store, stored.id) == stored
    assert stored.message_id.startswith("msg_") and "." not in stored.message_id
    assert (stored.kind, stored.status, stored.attempts, stored.body) == (
        DeliveryKind.WEBHOOK,
        DeliveryStatus.PENDING,
        0,
        sent.body,
    )
    assert (stored.next_attempt_at, stored.created_at, stored.updated_at) == (at(5), NOW, NOW)
    assert (stored.last_status_code, stored.last_error, stored.endpoint_id, stored.postback_id) == (None,) * 4
    other = _delivery(store)
    assert other.message_id != stored.message_id


def test_a_dedup_key_is_queued_once_and_the_write_goes_on(store: Store) -> None:
    first = _delivery(store, dedup_key="postback:1:conversion:1")

    def again(repo: Repository) -> tuple[Delivery | None, Delivery | None]:
        duplicate = repo.insert_delivery(new_delivery(dedup_key="postback:1:conversion:1"))
        return duplicate, repo.insert_delivery(new_delivery(dedup_key="postback:1:conversion:2"))

    duplicate, second = store.write(again)
    assert duplicate is None and second is not None
    assert [d.id for d in store.read(lambda repo: repo.list_deliveries(Page()))] == [second.id, first.id]
    assert len([_delivery(store) for _ in range(2)]) == 2  # no key: never a duplicate


def test_deliveries_page_newest_first_and_filter(store: Store) -> None:
    made = [_delivery(store, created_at=at(i), status=DeliveryStatus.FAILED if i % 2 else DeliveryStatus.PENDING)
            for i in range(5)]  # fmt: skip
    ids = [d.id for d in made]
    listed = store.read(lambda repo: repo.list_deliveries(Page(limit=2, cursor=ids[4], filters={"status": "pending"})))
    assert [d.id for d in listed] == [ids[2], ids[0]]
    in_range = store.read(lambda repo: repo.list_deliveries(Page(created_from=at(1), created_to=at(3))))
    assert [d.id for d in in_range] == [ids[2], ids[1]]


def test_a_claim_takes_due_pending_deliveries_earliest_first(store: Store) -> None:
    late = _delivery(store, next_attempt_at=at(3))
    early = _delivery(store, next_attempt_at=at(-2))
    due_now = _delivery(store, next_attempt_at=NOW)
    future = _delivery(store, next_attempt_at=at(60))
    _delivery(store, status=DeliveryStatus.SKIPPED)
    _delivery(store, status=DeliveryStatus.FAILED)
    assert _claim(store, "w1", limit=1) == [early.id]
    assert _claim(store, "w1", at(0.5)) == [due_now.id]  # `early` is leased until at(1)
    claimed = _get(store, due_now.id)
    assert (claimed.status, claimed.updated_at, claimed.attempts) == (DeliveryStatus.SENDING, at(0.5), 0)
    # At at(3) both leases have expired: every delivery due is claimed again, by next attempt time.
    assert _claim(store, "w2", at(3)) == [early.id, due_now.id, late.id]
    assert _claim(store, "w3", at(3.5)) == []
    assert _get(store, future.id).status is DeliveryStatus.PENDING


def test_no_two_workers_are_handed_the_same_delivery(store: Store) -> None:
    made = {_delivery(store, next_attempt_at=at(-i)).id for i in range(12)}

    async def claim_together() -> list[list[Delivery]]:
        claims = [store.db.write(lambda repo, w=w: repo.claim_deliveries(f"w{w}", NOW, NOW + LEASE, 5))  # type: ignore[misc]
                  for w in range(4)]  # fmt: skip
        return list(await asyncio.gather(*claims))

    claims = [[d.id for d in claim] for claim in asyncio.run(claim_together())]
    every = [i for claim in claims for i in claim]
    assert len(every) == len(set(every)) == 12 and set(every) == made
    assert all(len(claim) <= 5 for claim in claims)


def test_an_expired_lease_is_claimed_again_and_the_old_holder_loses_it(store: Store) -> None:
    delivery = _delivery(store)
    assert _claim(store, "w1") == [delivery.id]
    assert _claim(store, "w2", NOW + LEASE) == []  # the lease ends at NOW + LEASE: not expired yet
    assert _claim(store, "w2", NOW + LEASE + timedelta(seconds=1)) == [delivery.id]
    outcome = Release(DeliveryStatus.SUCCEEDED, attempts=1, last_status_code=200)
    assert store.write(lambda repo: repo.release_delivery(delivery.id, "w1", outcome, at(2))) is False
    assert _get(store, delivery.id).status is DeliveryStatus.SENDING
    assert store.write(lambda repo: repo.release_delivery(delivery.id, "w2", outcome, at(2))) is True
    released = _get(store, delivery.id)
    assert (released.status, released.attempts, released.last_status_code, released.updated_at) == (
        DeliveryStatus.SUCCEEDED,
        1,
        200,
        at(2),
    )
    assert store.write(lambda repo: repo.release_delivery(delivery.id, "w2", outcome, at(3))) is False
    assert _claim(store, "w3", at(60)) == []


def test_a_release_for_a_retry_puts_it_back_in_the_queue(store: Store) -> None:
    delivery = _delivery(store)
    _claim(store, "w1")
    retry = Release(DeliveryStatus.PENDING, 1, 503, "HTTP 503", next_attempt_at=at(10))
    assert store.write(lambda repo: repo.release_delivery(delivery.id, "w1", retry, NOW)) is True
    assert _claim(store, "w2", at(9)) == []
    assert _claim(store, "w2", at(10)) == [delivery.id]
    assert _get(store, delivery.id).last_error == "HTTP 503"


def test_a_release_without_an_attempt_keeps_the_last_answer(store: Store) -> None:
    delivery = _delivery(store)
    _claim(store, "w1")
    failed = Release(DeliveryStatus.PENDING, 1, 500, "HTTP 500", next_attempt_at=at(1))
    assert store.write(lambda repo: repo.release_delivery(delivery.id, "w1", failed, NOW)) is True
    _claim(store, "w1", at(1))
    assert store.write(lambda repo: repo.release_delivery(delivery.id, "w1", Release(DeliveryStatus.SKIPPED), at(2)))
    skipped = _get(store, delivery.id)
    assert (skipped.status, skipped.attempts, skipped.last_status_code, skipped.last_error) == (
        DeliveryStatus.SKIPPED,
        1,
        500,
        "HTTP 500",
    )


def test_releases_of_several_apply_to_the_leases_still_held(store: Store) -> None:
    """A worker's attempts recorded together: each release applies only where that worker holds the lease."""
    taken_over, kept, kept_too = (_delivery(store, next_attempt_at=at(-3 + i)).id for i in range(3))
    assert _claim(store, "w1") == [taken_over, kept, kept_too]
    assert _claim(store, "w2", at(2), limit=1) == [taken_over]  # w1's leases expired at at(1)
    done = Release(DeliveryStatus.SUCCEEDED, 1, 200, None)
    retry = Release(DeliveryStatus.PENDING, 1, 503, "HTTP 503", next_attempt_at=at(30))
    releases = [(kept, done), (taken_over, done), (kept_too, retry)]
    assert store.write(lambda repo: repo.release_deliveries(releases, "w1", at(2.5))) == [True, False, True]
    got = {i: _get(store, i) for i in (taken_over, kept, kept_too)}
    assert (got[kept].status, got[kept].last_status_code, got[kept].updated_at) == (
        DeliveryStatus.SUCCEEDED, 200, at(2.5))  # fmt: skip
    assert got[taken_over].status is DeliveryStatus.SENDING  # still w2's
    assert (got[kept_too].status, got[kept_too].next_attempt_at, got[kept_too].last_error) == (
        DeliveryStatus.PENDING, at(30), "HTTP 503")  # fmt: skip
    assert store.write(lambda repo: repo.release_deliveries([(taken_over, done)], "w2", at(3))) == [True]
    assert store.write(lambda repo: repo.release_deliveries([], "w1", NOW)) == []


def test_attempts_are_listed_in_order(store: Store) -> None:
    delivery, other = _delivery(store), _delivery(store)
    for i, code in enumerate((500, None, 200)):
        attempt = NewAttempt(delivery_id=delivery.id, worker="w1", status_code=code,
                             error_class=None if code else "timeout", error=None if code else "read timed out",
                             latency_ms=10 * i, response_excerpt="ok" if code == 200 else None,
                             verdict="success" if code == 200 else "retry", created_at=at(i))  # fmt: skip
        store.write(lambda repo, attempt=attempt: repo.insert_attempts([attempt]))  # type: ignore[misc]
    attempts = store.read(lambda repo: repo.list_attempts(delivery.id))
    assert [(a.status_code, a.error_class, a.latency_ms, a.created_at) for a in attempts] == [
        (500, None, 0, at(0)),
        (None, "timeout", 10, at(1)),
        (200, None, 20, at(2)),
    ]
    assert attempts[1].error == "read timed out" and attempts[2].response_excerpt == "ok"
    assert all(a.delivery_id == delivery.id and a.worker == "w1" for a in attempts)
    assert store.read(lambda repo: repo.list_attempts(other.id)) == []


def test_requeue_sends_again_with_the_same_message_id_but_not_while_sending(store: Store) -> None:
    failed = _delivery(store, status=DeliveryStatus.FAILED)
    sending = _delivery(store)
    _claim(store, "w1")  # takes `sending` only: `failed` is not due
    assert store.write(lambda repo: repo.requeue_delivery(sending.id, at(1))) is False
    assert store.write(lambda repo: repo.requeue_delivery(failed.id, at(1))) is True
    assert store.write(lambda repo: repo.requeue_delivery(failed.id + 100, at(1))) is False
    requeued = _get(store, failed.id)
    assert (requeued.status, requeued.attempts, requeued.next_attempt_at, requeued.message_id) == (
        DeliveryStatus.PENDING,
        0,
        at(1),
        failed.message_id,
    )
    assert _get(store, sending.id).status is DeliveryStatus.SENDING


def test_requeue_of_a_range_takes_the_statuses_asked_created_inside_it(store: Store) -> None:
    made = {(status, minute): _delivery(store, status=status, created_at=at(minute)).id
            for status in (DeliveryStatus.FAILED, DeliveryStatus.SKIPPED, DeliveryStatus.SUCCEEDED)
            for minute in (0, 5, 10)}  # fmt: skip
    requeue = Requeue(at(0), at(10), frozenset({DeliveryStatus.FAILED, DeliveryStatus.SKIPPED}))
    assert store.write(lambda repo: repo.requeue_deliveries(requeue, at(20))) == 4
    pending = {d.id for d in store.read(lambda repo: repo.list_deliveries(Page(filters={"status": "pending"})))}
    assert pending == {made[s, m] for s in (DeliveryStatus.FAILED, DeliveryStatus.SKIPPED) for m in (0, 5)}
    again = Requeue(at(0), at(11), frozenset({DeliveryStatus.SUCCEEDED}))
    assert store.write(lambda repo: repo.requeue_deliveries(again, at(20))) == 3
    assert _get(store, made[DeliveryStatus.SUCCEEDED, 10]).next_attempt_at == at(20)


def test_a_delivery_for_an_unknown_endpoint_or_postback_is_refused(store: Store) -> None:
    with pytest.raises(store.integrity_error):
        _delivery(store, kind=DeliveryKind.WEBHOOK, endpoint_id=12345)
    with pytest.raises(store.integrity_error):
        _delivery(store, postback_id=12345)


def test_a_webhook_endpoint_round_trips_and_changes(store: Store) -> None:
    sent = body(WebhookCreate, url="https://hooks.example/a", event_types=["offer.created", "offer.created",
                                                                          "conversion.registered"])  # fmt: skip
    endpoint = store.write(lambda repo: repo.insert_webhook_endpoint(sent, "sealed-1", NOW))
    assert store.read(lambda repo: repo.get_webhook_endpoint(endpoint.id)) == endpoint
    assert (endpoint.url, endpoint.event_types, endpoint.description, endpoint.status, endpoint.secret) == (
        "https://hooks.example/a",
        ("offer.created", "conversion.registered"),
        None,
        EndpointStatus.ACTIVE,
        "sealed-1",
    )
    every = store.write(
        lambda repo: repo.insert_webhook_endpoint(
            body(WebhookCreate, url="https://hooks.example/b", description="all"), "sealed-2", NOW
        )
    )
    assert every.event_types is None and every.subscribes("partner.created")
    assert store.read(lambda repo: repo.all_webhook_endpoints()) == [endpoint, every]
    assert store.read(lambda repo: repo.list_webhook_endpoints(Page(limit=1))) == [every]
    changes = body(WebhookUpdate, event_types=None, description="changed", status="disabled")
    store.write(lambda repo: repo.update_webhook_endpoint(endpoint.id, changes, at(1)))
    changed = store.read(lambda repo: repo.get_webhook_endpoint(endpoint.id))
    assert changed is not None
    assert (changed.event_types, changed.description, changed.url, changed.updated_at) == (
        None,
        "changed",
        endpoint.url,
        at(1),
    )
    assert changed.status is EndpointStatus.ACTIVE  # the status changes through its own port
    state = EndpointState(EndpointStatus.DISABLED, "410 Gone", at(2), at(1))
    store.write(lambda repo: repo.set_webhook_endpoint_state(endpoint.id, state, at(2)))
    rotation = SecretRotation("sealed-3", "sealed-1", at(50))
    store.write(lambda repo: repo.rotate_webhook_secret(endpoint.id, rotation, at(3)))
    final = store.read(lambda repo: repo.get_webhook_endpoint(endpoint.id))
    assert final is not None and EndpointState.of(final) == state
    assert (final.secret, final.previous_secret, final.previous_secret_expires_at, final.updated_at) == (
        "sealed-3",
        "sealed-1",
        at(50),
        at(3),
    )
    assert final.signing_secrets(at(4)) == ["sealed-3", "sealed-1"]


def test_a_partner_postback_round_trips_and_changes(store: Store) -> None:
    partner = store.write(lambda repo: repo.insert_partner("Pat", "p@example.com", "active", NOW))
    other = store.write(lambda repo: repo.insert_partner("Oz", "o@example.com", "active", NOW))
    sent = body(PartnerPostbackCreate, url="https://partner.example/pb?tid={transaction_id}", method="post",
                delay_seconds=30, on="both", partner_id=other.id)  # fmt: skip
    postback = store.write(lambda repo: repo.insert_partner_postback(partner.id, sent, NOW))
    assert store.read(lambda repo: repo.get_partner_postback(postback.id)) == postback
    assert (postback.partner_id, postback.offer_id, postback.method, postback.delay_seconds, postback.on) == (
        partner.id,
        None,
        "POST",
        30,
        FiresOn.BOTH,
    )
    assert (postback.status, postback.failure_count, postback.failure_started_at) == (PostbackStatus.ACTIVE, 0, None)
    second = store.write(
        lambda repo: repo.insert_partner_postback(
            partner.id, body(PartnerPostbackCreate, url="https://partner.example/2"), NOW
        )
    )
    theirs = store.write(
        lambda repo: repo.insert_partner_postback(
            other.id, body(PartnerPostbackCreate, url="https://other.example/"), NOW
        )
    )
    assert store.read(lambda repo: repo.postbacks_of_partner(partner.id)) == [postback, second]
    assert store.read(lambda repo: repo.list_partner_postbacks(Page(filters={"partner_id": other.id}))) == [theirs]
    changes = body(PartnerPostbackUpdate, delay_seconds=0, success_body_contains="OK", status="inactive")
    store.write(lambda repo: repo.update_partner_postback(postback.id, changes, at(1)))
    changed = store.read(lambda repo: repo.get_partner_postback(postback.id))
    assert changed is not None
    assert (changed.delay_seconds, changed.success_body_contains, changed.status, changed.updated_at) == (
        0,
        "OK",
        PostbackStatus.ACTIVE,
        at(1),
    )
    state = PostbackState(PostbackStatus.INACTIVE, "10 failures", 10, at(-60))
    store.write(lambda repo: repo.set_partner_postback_state(postback.id, state, at(2)))
    final = store.read(lambda repo: repo.get_partner_postback(postback.id))
    assert final is not None and PostbackState.of(final) == state
    with pytest.raises(store.integrity_error):
        store.write(lambda repo: repo.insert_partner_postback(4242, sent, NOW))


def test_requeue_of_a_range_can_be_narrowed_to_an_endpoint_or_a_postback(store: Store) -> None:
    endpoints = [
        store.write(
            lambda repo, i=i: repo.insert_webhook_endpoint(  # type: ignore[misc]
                body(WebhookCreate, url=f"https://hooks.example/{i}"), "sealed", NOW
            )
        )
        for i in range(2)
    ]
    partner = store.write(lambda repo: repo.insert_partner("Pat", "p@example.com", "active", NOW))
    postback = store.write(
        lambda repo: repo.insert_partner_postback(
            partner.id, body(PartnerPostbackCreate, url="https://partner.example/"), NOW
        )
    )
    failed = DeliveryStatus.FAILED
    hooks = [_delivery(store, kind=DeliveryKind.WEBHOOK, endpoint_id=e.id, status=failed) for e in endpoints]
    pinged = _delivery(store, postback_id=postback.id, status=failed)
    statuses = frozenset({failed})
    to_first = Requeue(NOW, at(1), statuses, endpoint_id=endpoints[0].id)
    assert store.write(lambda repo: repo.requeue_deliveries(to_first, at(5))) == 1
    assert _get(store, hooks[0].id).status is DeliveryStatus.PENDING
    assert _get(store, hooks[1].id).status is failed
    to_postback = Requeue(NOW, at(1), statuses, postback_id=postback.id)
    assert store.write(lambda repo: repo.requeue_deliveries(to_postback, at(5))) == 1
    assert _get(store, pinged.id).status is DeliveryStatus.PENDING
    listed = store.read(lambda repo: repo.list_deliveries(Page(filters={"endpoint_id": endpoints[1].id})))
    assert [d.id for d in listed] == [hooks[1].id]
