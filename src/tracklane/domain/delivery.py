"""Deliveries: one outbound message (a webhook or a partner postback) kept in the outbox, and its attempts.

A delivery's state machine:

    pending ──claim──▶ sending ──2xx──▶ succeeded
       ▲                  │
       └──── retry ───────┤──gave up / 410──▶ failed
                          └──endpoint disabled──▶ skipped

A `sending` delivery whose lease has expired (its worker died) is claimed again by another worker.
Skipped and failed deliveries can be resent or replayed; they keep their `message_id` (the
`webhook-id` header), so receivers can deduplicate.

A partner postback's *test* (`event_type` "test") carries sample values to the partner's URL when the partner or
an admin asks for one. It is sent once (no retries), also for a postback that is turned off, and its outcome
never counts towards turning the postback off.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum


class DeliveryKind(StrEnum):
    WEBHOOK = "webhook"
    POSTBACK = "postback"


class DeliveryStatus(StrEnum):
    PENDING = "pending"
    SENDING = "sending"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    SKIPPED = "skipped"


REPLAYABLE = frozenset({DeliveryStatus.FAILED, DeliveryStatus.SKIPPED})
#: The event type of a partner postback's test delivery.
TEST_EVENT_TYPE = "test"
RESPONSE_EXCERPT_BYTES = 1024


@dataclass(frozen=True, slots=True)
class Delivery:
    id: int
    message_id: str
    kind: DeliveryKind
    endpoint_id: int | None
    postback_id: int | None
    event_type: str
    method: str
    url: str | None  # postbacks: the expanded URL; webhooks: the endpoint's URL at send time
    body: str | None
    status: DeliveryStatus
    attempts: int
    next_attempt_at: datetime
    last_status_code: int | None
    last_error: str | None
    created_at: datetime
    updated_at: datetime

    @property
    def is_test(self) -> bool:
        """A partner postback's test (sample values, sent once, never counted against the postback)."""
        return self.kind is DeliveryKind.POSTBACK and self.event_type == TEST_EVENT_TYPE


@dataclass(frozen=True, slots=True)
class DeliveryAttempt:
    id: int
    delivery_id: int
    worker: str
    status_code: int | None
    error_class: str | None
    error: str | None
    latency_ms: int
    response_excerpt: str | None
    verdict: str
    created_at: datetime
