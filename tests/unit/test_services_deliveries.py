"""`DeliveryService` on the in-memory ports: retries on the schedule, giving up, 410, our own failures, lost
leases, and endpoints that are disabled or skipped."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from tests.fakes import FakeClock, FakeDatabase, body
from tracklane.domain.delivery import Delivery, DeliveryKind, DeliveryStatus
from tracklane.domain.retry import MAX_ATTEMPTS, OUR_FAILURE_PAUSE, SCHEDULE, AttemptResult
from tracklane.domain.webhooks import EndpointStatus, WebhookEndpoint
from tracklane.resources.webhooks import WebhookCreate
from tracklane.services.deliveries import AttemptReport, DeliveryPolicy, DeliveryService, OutboundMessage
from tracklane.services.ports import NewDelivery, Page

START = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
LEASE = timedelta(seconds=60)


class Box:
    """Seals by prefixing, so a test sees that the sender gets the opened secret."""

    def seal(self, secret: str) -> str:
        return "sealed:" + secret

    def open(self, sealed: str) -> str:
        return sealed.removeprefix("sealed:")


class Outbox:
    def __init__(self, disable_after: timedelta = timedelta(hours=120)) -> None:
        self.db = FakeDatabase()
        self.clock = FakeClock(START)
        policy = DeliveryPolicy(retry_scale=1.0, lease=LEASE, disable_after=disable_after)
        self.service = DeliveryService(self.db, self.clock, lambda: 0.5, policy, Box())  # 0.5: no jitter

    def endpoint(self, url: str = "https://hooks.example/") -> WebhookEndpoint:
        return self.db.write_now(
            lambda repo: repo.insert_webhook_endpoint(body(WebhookCreate, url=url), Box().seal("whsec_one"), START)
        )

    def queue(self, endpoint: WebhookEndpoint) -> Delivery:
        delivery = self.db.write_now(lambda repo: repo.insert_delivery(NewDelivery(
            kind=DeliveryKind.WEBHOOK, event_type="offer.created", method="POST", body='{"type":"offer.created"}',
            status=DeliveryStatus.PENDING, next_attempt_at=self.clock(), created_at=self.clock(),
            endpoint_id=endpoint.id)))  # fmt: skip
        assert delivery is not None
        return delivery

    def claim(self, worker: str = "w1") -> list[OutboundMessage]:
        return asyncio.run(self.service.claim(worker, 10))

    def answer(self, message: OutboundMessage, status: int | None, worker: str = "w1", **result: object) -> bool:
        report = AttemptReport(AttemptResult(status, **result), latency_ms=12)  # type: ignore[arg-type]
        return asyncio.run(self.service.complete(worker, message, report))

    def delivery(self, delivery_id: int) -> Delivery:
        found = self.db.read_now(lambda repo: repo.get_delivery(delivery_id))
        assert found is not None
        return found


@pytest.fixture
def out() -> Outbox:
    return Outbox()


def test_a_failed_attempt_is_retried_on_the_schedule_until_it_succeeds(out: Outbox) -> None:
    queued = out.queue(out.endpoint())
    [message] = out.claim()
    assert (message.url, message.method, message.signing_secrets) == ("https://hooks.example/", "POST", ("whsec_one",))
    assert out.answer(message, 500) is True
    retry = out.delivery(queued.id)
    assert (retry.status, retry.attempts, retry.last_status_code, retry.last_error) == (
        DeliveryStatus.PENDING,
        1,
        500,
        "HTTP 500",
    )
    assert retry.next_attempt_at == START + SCHEDULE[0]
    assert out.claim() == []
    out.clock.advance(SCHEDULE[0])
    [again] = out.claim()
    assert out.answer(again, 204) is True
    done = out.delivery(queued.id)
    assert (done.status, done.attempts, done.last_error, done.message_id) == (
        DeliveryStatus.SUCCEEDED,
        2,
        None,
        queued.message_id,
    )
    _, attempts = asyncio.run(out.service.get(queued.id))
    assert [(a.status_code, a.verdict, a.worker) for a in attempts] == [(500, "failure", "w1"), (204, "success", "w1")]


def test_a_delivery_fails_after_the_last_attempt() -> None:
    out = Outbox(disable_after=timedelta(days=30))
    queued = out.queue(out.endpoint())
    for attempt in range(MAX_ATTEMPTS):
        [message] = out.claim()
        out.answer(message, 500)
        out.clock.advance(SCHEDULE[attempt] if attempt < len(SCHEDULE) else timedelta(days=1))
    failed = out.delivery(queued.id)
    assert (failed.status, failed.attempts) == (DeliveryStatus.FAILED, MAX_ATTEMPTS)
    assert out.claim() == []


def test_throttling_backs_off_harder_and_honours_retry_after(out: Outbox) -> None:
    queued = out.queue(out.endpoint())
    [message] = out.claim()
    out.answer(message, 503, retry_after=timedelta(minutes=10))
    assert out.delivery(queued.id).next_attempt_at == START + timedelta(minutes=10)


def test_our_own_failure_spends_no_attempt(out: Outbox) -> None:
    queued = out.queue(out.endpoint())
    [message] = out.claim()
    out.answer(message, None, error_class="resolver")
    paused = out.delivery(queued.id)
    assert (paused.status, paused.attempts, paused.next_attempt_at) == (
        DeliveryStatus.PENDING,
        0,
        START + OUR_FAILURE_PAUSE,
    )


def test_gone_fails_the_delivery_and_disables_the_endpoint_whose_next_deliveries_are_skipped(out: Outbox) -> None:
    endpoint = out.endpoint()
    first = out.queue(endpoint)
    [message] = out.claim()
    out.answer(message, 410)
    assert out.delivery(first.id).status is DeliveryStatus.FAILED
    disabled = out.db.read_now(lambda repo: repo.get_webhook_endpoint(endpoint.id))
    assert disabled is not None and disabled.status is EndpointStatus.DISABLED
    assert disabled.disabled_reason == "the endpoint answered 410 Gone"
    second = out.queue(endpoint)
    assert out.claim() == []
    assert out.delivery(second.id).status is DeliveryStatus.SKIPPED


def test_an_endpoint_failing_without_a_success_for_long_enough_is_disabled() -> None:
    out = Outbox(disable_after=timedelta(hours=1))
    endpoint = out.endpoint()
    for minutes in (0, 30, 61):
        out.clock.now = START + timedelta(minutes=minutes)
        out.queue(endpoint)
        for message in out.claim():
            out.answer(message, 500)
        found = out.db.read_now(lambda repo: repo.get_webhook_endpoint(endpoint.id))
        assert found is not None and found.failing_since == START
    assert found is not None and found.status is EndpointStatus.DISABLED
    assert "without a success" in (found.disabled_reason or "")


def test_a_success_ends_the_failing_streak(out: Outbox) -> None:
    endpoint = out.endpoint()
    out.queue(endpoint)
    [message] = out.claim()
    out.answer(message, 500)
    out.clock.advance(SCHEDULE[0])
    [again] = out.claim()
    out.answer(again, 200)
    found = out.db.read_now(lambda repo: repo.get_webhook_endpoint(endpoint.id))
    assert found is not None and (found.failing_since, found.status) == (None, EndpointStatus.ACTIVE)


def test_a_worker_that_lost_its_lease_cannot_record_the_outcome(out: Outbox) -> None:
    queued = out.queue(out.endpoint())
    [slow] = out.claim("w1")
    out.clock.advance(LEASE + timedelta(seconds=1))
    [taken] = out.claim("w2")
    assert taken.delivery.id == slow.delivery.id
    assert out.answer(slow, 200, worker="w1") is False
    assert out.delivery(queued.id).status is DeliveryStatus.SENDING
    assert out.answer(taken, 200, worker="w2") is True
    assert out.delivery(queued.id).status is DeliveryStatus.SUCCEEDED


def test_resend_and_replay_queue_finished_deliveries_again(out: Outbox) -> None:
    endpoint = out.endpoint()
    queued = out.queue(endpoint)
    [message] = out.claim()
    out.answer(message, 410)
    out.clock.advance(timedelta(minutes=1))
    resent = asyncio.run(out.service.resend(queued.id))
    assert (resent.status, resent.attempts, resent.message_id) == (DeliveryStatus.PENDING, 0, queued.message_id)
    assert [d.id for d in asyncio.run(out.service.list(Page(filters={"status": "pending"})))] == [queued.id]
