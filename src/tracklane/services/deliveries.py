"""Use cases of the outbox: claim due deliveries, record each attempt and decide what follows, list,
resend one, replay a time range.

What follows an attempt (`domain.retry`): success ends the delivery; 410 ends it and disables the
webhook endpoint (or deactivates the partner postback); a destination the SSRF rules refuse (a name that
now resolves to a private address, say) ends it at once as a failure, since sending it again cannot help;
other failures are retried on the schedule, then the delivery fails; our own failures do not spend an
attempt. An endpoint failing without a success for `disable_after` is disabled; a partner postback failing
10 times in a row within 72 h is deactivated; every failure above counts. Both keep the reason and are
logged. A partner postback's test is sent once, even while the postback is off, and never counts.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from tracklane.domain.delivery import Delivery, DeliveryAttempt, DeliveryKind, DeliveryStatus
from tracklane.domain.errors import InvalidParameter, NotFound
from tracklane.domain.partner_postbacks import PartnerPostback, PostbackStatus
from tracklane.domain.retry import (
    POSTBACK_FAILURE_WINDOW,
    AttemptResult,
    FailureStreak,
    Random,
    Verdict,
    endpoint_should_be_disabled,
    judge,
    next_delay,
)
from tracklane.domain.webhooks import EndpointStatus, WebhookEndpoint
from tracklane.resources.deliveries import Replay
from tracklane.services.ports import (
    Clock,
    Database,
    EndpointState,
    NewAttempt,
    Page,
    PostbackState,
    Release,
    Repository,
    Requeue,
    SecretBox,
)

log = logging.getLogger("tracklane.delivery")

#: Failures that end a delivery at their first attempt; they count towards deactivation like any failure.
TERMINAL_ERROR_CLASSES = frozenset({"refused_destination"})


@dataclass(frozen=True, slots=True)
class OutboundMessage:
    """A claimed delivery with everything needed to send it."""

    delivery: Delivery
    url: str
    method: str
    body: str | None
    signing_secrets: tuple[str, ...] = ()  # webhooks only
    success_body_contains: str | None = None  # partner postbacks only


@dataclass(frozen=True, slots=True)
class AttemptReport:
    """One attempt as the sender saw it."""

    result: AttemptResult
    latency_ms: int
    response_excerpt: str | None = None
    error: str | None = None


@dataclass(frozen=True, slots=True)
class DeliveryPolicy:
    retry_scale: float = 1.0
    lease: timedelta = timedelta(seconds=60)
    disable_after: timedelta = timedelta(hours=120)


class DeliveryService:
    def __init__(self, db: Database, clock: Clock, random: Random, policy: DeliveryPolicy, box: SecretBox) -> None:
        self._box = box
        self._db = db
        self._clock = clock
        self._random = random
        self._policy = policy

    async def claim(self, worker: str, limit: int) -> list[OutboundMessage]:
        """Lease up to `limit` due deliveries; those whose endpoint or postback is off become `skipped`."""
        now = self._clock()
        lease_until = now + self._policy.lease

        def work(repo: Repository) -> list[OutboundMessage]:
            messages, targets = [], _Targets(repo, now, self._box)
            for delivery in repo.claim_deliveries(worker, now, lease_until, limit):
                message = targets.message(delivery)
                if message is None:
                    repo.release_delivery(delivery.id, worker, Release(DeliveryStatus.SKIPPED), now)
                else:
                    messages.append(message)
            return messages

        return await self._db.write(work)

    async def complete(self, worker: str, message: OutboundMessage, report: AttemptReport) -> bool:
        """Record the attempt and apply its consequences; false when this worker had lost the lease."""
        return (await self.complete_all(worker, [(message, report)]))[0]

    async def complete_all(self, worker: str, attempts: Sequence[tuple[OutboundMessage, AttemptReport]]) -> list[bool]:
        """`complete` for each attempt, in one write (a worker's attempts that finished together): their rows
        and releases in a statement each, then each one's consequences for its endpoint or postback, in
        order."""
        now = self._clock()
        judged = [(message, report, judge(report.result)) for message, report in attempts]
        releases = [(m.delivery.id, self._outcome(m.delivery, v, r, self._random(), now)) for m, r, v in judged]

        def work(repo: Repository) -> list[bool]:
            repo.insert_attempts(
                [_attempt(worker, message, report, verdict, now) for message, report, verdict in judged]
            )
            released = repo.release_deliveries(releases, worker, now)
            consequences = _Consequences(repo, now, self._policy.disable_after)
            for (message, _, verdict), kept in zip(judged, released, strict=True):
                if kept:
                    consequences.apply(message.delivery, verdict)
                else:
                    log.warning("delivery %s: lease lost before the attempt was recorded", message.delivery.id)
            return released

        return await self._db.write(work)

    def _outcome(
        self, delivery: Delivery, verdict: Verdict, report: AttemptReport, jitter: float, now: datetime
    ) -> Release:
        spent = verdict is not Verdict.OURS
        attempts = delivery.attempts + (1 if spent else 0)
        attempted = Release(DeliveryStatus.SUCCEEDED, attempts, report.result.status_code, _describe(verdict, report))
        if verdict is Verdict.SUCCESS:
            return attempted
        if report.result.error_class in TERMINAL_ERROR_CLASSES or (delivery.is_test and verdict is not Verdict.OURS):
            return replace(attempted, status=DeliveryStatus.FAILED)
        delay = next_delay(attempts, verdict, report.result.retry_after, lambda: jitter, self._policy.retry_scale)
        if delay is None:
            return replace(attempted, status=DeliveryStatus.FAILED)
        return replace(attempted, status=DeliveryStatus.PENDING, next_attempt_at=now + delay)

    async def get(self, delivery_id: int) -> tuple[Delivery, list[DeliveryAttempt]]:
        def work(repo: Repository) -> tuple[Delivery | None, list[DeliveryAttempt]]:
            return repo.get_delivery(delivery_id), repo.list_attempts(delivery_id)

        delivery, attempts = await self._db.read(work)
        if delivery is None:
            raise NotFound(f"delivery {delivery_id} does not exist")
        return delivery, attempts

    async def list(self, page: Page) -> list[Delivery]:
        return await self._db.read(lambda repo: repo.list_deliveries(page))

    async def resend(self, delivery_id: int) -> Delivery:
        """Send again now, with the same message id (`webhook-id`) and a fresh series of attempts."""
        now = self._clock()

        def work(repo: Repository) -> Delivery:
            delivery = repo.get_delivery(delivery_id)
            if delivery is None:
                raise NotFound(f"delivery {delivery_id} does not exist")
            if not repo.requeue_delivery(delivery_id, now):
                raise InvalidParameter("delivery_id", "is being sent right now; try again when it is done")
            requeued = repo.get_delivery(delivery_id)
            assert requeued is not None
            return requeued

        return await self._db.write(work)

    async def replay(self, replay: Replay) -> int:
        """Queue again the deliveries created in [from, to) (at most 31 days) with the statuses asked for."""
        requeue = Requeue(replay.created_from, replay.created_to, replay.replayed_statuses, replay.endpoint_id,
                          replay.postback_id)  # fmt: skip
        now = self._clock()
        return await self._db.write(lambda repo: repo.requeue_deliveries(requeue, now))


class _Targets:
    """Where each claimed delivery goes, each endpoint (with its secrets opened) and postback read once per
    claim: a claim of hundreds of deliveries has few of them."""

    def __init__(self, repo: Repository, now: datetime, box: SecretBox) -> None:
        self._repo, self._now, self._box = repo, now, box
        self._endpoints: dict[int, tuple[WebhookEndpoint, tuple[str, ...]] | None] = {}
        self._postbacks: dict[int, PartnerPostback | None] = {}

    def message(self, delivery: Delivery) -> OutboundMessage | None:
        """The message to send, or None when its endpoint or postback is gone or off (it is skipped)."""
        if delivery.kind is DeliveryKind.WEBHOOK:
            assert delivery.endpoint_id is not None
            found = self._endpoint(delivery.endpoint_id)
            if found is None:
                return None
            endpoint, secrets = found
            return OutboundMessage(delivery, endpoint.url, "POST", delivery.body, secrets)
        assert delivery.postback_id is not None and delivery.url is not None
        if delivery.postback_id not in self._postbacks:
            self._postbacks[delivery.postback_id] = self._repo.get_partner_postback(delivery.postback_id)
        postback = self._postbacks[delivery.postback_id]
        if postback is None or (postback.status is not PostbackStatus.ACTIVE and not delivery.is_test):
            return None
        return OutboundMessage(
            delivery, delivery.url, delivery.method, delivery.body, success_body_contains=postback.success_body_contains
        )

    def _endpoint(self, endpoint_id: int) -> tuple[WebhookEndpoint, tuple[str, ...]] | None:
        if endpoint_id not in self._endpoints:
            endpoint = self._repo.get_webhook_endpoint(endpoint_id)
            active = endpoint is not None and endpoint.status is EndpointStatus.ACTIVE
            self._endpoints[endpoint_id] = None if endpoint is None or not active else (
                endpoint, tuple(self._box.open(sealed) for sealed in endpoint.signing_secrets(self._now))
            )  # fmt: skip
        return self._endpoints[endpoint_id]


def _attempt(
    worker: str, message: OutboundMessage, report: AttemptReport, verdict: Verdict, now: datetime
) -> NewAttempt:
    return NewAttempt(
        delivery_id=message.delivery.id, worker=worker, status_code=report.result.status_code,
        error_class=report.result.error_class, error=report.error, latency_ms=report.latency_ms,
        response_excerpt=report.response_excerpt, verdict=verdict.value, created_at=now,
    )  # fmt: skip


class _Consequences:
    """What each recorded attempt means for its endpoint or postback, applied in the attempts' order; a
    success after a success of the same one writes nothing more (its failure state is already clear)."""

    def __init__(self, repo: Repository, now: datetime, disable_after: timedelta) -> None:
        self._repo, self._now, self._disable_after = repo, now, disable_after
        self._clear: set[tuple[str, int]] = set()

    def apply(self, delivery: Delivery, verdict: Verdict) -> None:
        endpoint_id, postback_id = delivery.endpoint_id, delivery.postback_id
        if endpoint_id is not None and self._due(("endpoint", endpoint_id), verdict):
            _after_endpoint_attempt(self._repo, endpoint_id, verdict, self._now, self._disable_after)
        if postback_id is not None and not delivery.is_test and self._due(("postback", postback_id), verdict):
            _after_postback_attempt(self._repo, postback_id, verdict, self._now)

    def _due(self, target: tuple[str, int], verdict: Verdict) -> bool:
        """Whether the attempt's consequence is still to apply: not a success right after a success."""
        if verdict is Verdict.SUCCESS:
            if target in self._clear:
                return False
            self._clear.add(target)
        elif verdict is not Verdict.OURS:
            self._clear.discard(target)
        return True


def _after_endpoint_attempt(
    repo: Repository, endpoint_id: int, verdict: Verdict, now: datetime, disable_after: timedelta
) -> None:
    if verdict is Verdict.OURS:
        return
    if verdict is Verdict.SUCCESS:  # the common case, written without reading the endpoint
        repo.clear_webhook_endpoint_failure(endpoint_id, now)
        return
    endpoint = repo.get_webhook_endpoint(endpoint_id)
    if endpoint is None:
        return
    if endpoint.status is not EndpointStatus.ACTIVE:
        return
    if verdict is Verdict.GONE:
        _disable(repo, endpoint, "the endpoint answered 410 Gone", now)
    elif endpoint_should_be_disabled(endpoint.failing_since, now, disable_after):
        assert endpoint.failing_since is not None
        hours = (now - endpoint.failing_since).total_seconds() / 3600
        _disable(
            repo,
            endpoint,
            f"every delivery failed for {hours:.1f} hours (since "
            f"{endpoint.failing_since.isoformat()}) without a success",
            now,
        )
    elif endpoint.failing_since is None:
        repo.set_webhook_endpoint_state(endpoint_id, replace(EndpointState.of(endpoint), failing_since=now), now)


def _disable(repo: Repository, endpoint: WebhookEndpoint, reason: str, now: datetime) -> None:
    state = replace(EndpointState.of(endpoint), status=EndpointStatus.DISABLED, disabled_reason=reason,
                    disabled_at=now)  # fmt: skip
    repo.set_webhook_endpoint_state(endpoint.id, state, now)
    log.warning("webhook endpoint %s disabled: %s; its deliveries are kept as skipped for replay", endpoint.id, reason)


def _after_postback_attempt(repo: Repository, postback_id: int, verdict: Verdict, now: datetime) -> None:
    if verdict is Verdict.OURS:
        return
    if verdict is Verdict.SUCCESS:  # the common case, written without reading the postback
        repo.clear_partner_postback_failures(postback_id, now)
        return
    postback = repo.get_partner_postback(postback_id)
    if postback is None:
        return
    streak = FailureStreak(postback.failure_count, postback.failure_started_at).after_failure(now)
    state = replace(PostbackState.of(postback), failure_count=streak.count, failure_started_at=streak.started_at)
    reason = None
    if verdict is Verdict.GONE:
        reason = "the partner's URL answered 410 Gone"
    elif streak.deactivates:
        window = POSTBACK_FAILURE_WINDOW.total_seconds() / 3600
        reason = f"{streak.count} consecutive failures within {window:.0f} hours"
    if reason is not None and postback.status is PostbackStatus.ACTIVE:
        state = replace(state, status=PostbackStatus.INACTIVE, deactivated_reason=reason)
        _log_deactivation(postback, reason)
    repo.set_partner_postback_state(postback_id, state, now)


def _log_deactivation(postback: PartnerPostback, reason: str) -> None:
    log.warning("partner postback %s of partner %s deactivated: %s", postback.id, postback.partner_id, reason)


def _describe(verdict: Verdict, report: AttemptReport) -> str | None:
    if verdict is Verdict.SUCCESS:
        return None
    if report.error:
        return f"{report.result.error_class}: {report.error}"
    if report.result.status_code is not None and 200 <= report.result.status_code < 300:
        return "the answer lacks the text the success rule requires"
    return f"HTTP {report.result.status_code}"
