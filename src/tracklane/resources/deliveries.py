"""Deliveries: the body of a replay, and a delivery as the admin sees it (in a list, or one with its body and
attempt log). The delivery log is admin-only: a delivery's body is the full webhook payload."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, Final

import msgspec

from tracklane.domain.delivery import REPLAYABLE, Delivery, DeliveryAttempt, DeliveryKind, DeliveryStatus
from tracklane.domain.errors import InvalidParameter
from tracklane.resources.fields import Id, Struct, View, instant

MAX_REPLAY_WINDOW: Final = timedelta(days=31)
_MAY_REPLAY: Final = REPLAYABLE | {DeliveryStatus.SUCCEEDED}

Instant = Annotated[str, msgspec.Meta(description="ISO 8601 date or date-time; without a zone it is UTC",
                                      examples=["2026-01-01T00:00:00Z"])]  # fmt: skip
Statuses = Annotated[str, msgspec.Meta(description="comma-separated: failed, skipped, succeeded "
                                       "(default: failed,skipped)", examples=["failed,skipped"])]  # fmt: skip


class Replay(Struct):
    """Queue again the deliveries created in [from, to) (at most 31 days) that have one of `statuses`."""

    from_: Instant = msgspec.field(name="from")
    to: Instant
    statuses: Statuses | None = None
    endpoint_id: Id | None = None
    postback_id: Id | None = None

    def __post_init__(self) -> None:
        created_from, created_to = self.created_from, self.created_to
        if not created_from < created_to <= created_from + MAX_REPLAY_WINDOW:
            raise InvalidParameter("to", "must be after from, and at most 31 days later")
        _statuses(self.statuses)

    @property
    def created_from(self) -> datetime:
        return instant(self.from_, "from")

    @property
    def created_to(self) -> datetime:
        return instant(self.to, "to")

    @property
    def replayed_statuses(self) -> frozenset[DeliveryStatus]:
        return _statuses(self.statuses)


def _statuses(raw: str | None) -> frozenset[DeliveryStatus]:
    if raw is None:
        return REPLAYABLE
    names = {name.strip() for name in raw.split(",")}
    if not names <= {s.value for s in _MAY_REPLAY}:
        raise InvalidParameter("statuses", "must list failed, skipped or succeeded, comma-separated")
    return frozenset(DeliveryStatus(name) for name in names)


class ReplayResult(View, frozen=True):
    replayed: Annotated[int, msgspec.Meta(description="how many deliveries were queued again")]


class DeliveryView(View, frozen=True):
    id: int
    message_id: Annotated[str, msgspec.Meta(description="the webhook-id: the same on every retry, resend, replay")]
    kind: DeliveryKind
    endpoint_id: int | None
    postback_id: int | None
    event_type: str
    method: str
    url: Annotated[str | None, msgspec.Meta(description="a partner postback's expanded URL (null for a webhook)")]
    status: DeliveryStatus
    attempts: int
    next_attempt_at: datetime
    last_status_code: int | None
    last_error: str | None
    created_at: datetime
    updated_at: datetime


class AttemptView(View, frozen=True):
    id: int
    worker: str
    status_code: int | None
    error_class: str | None
    error: str | None
    latency_ms: int
    response_excerpt: Annotated[str | None, msgspec.Meta(description="the first KB of the answer")]
    verdict: str
    created_at: datetime


class DeliveryDetailView(DeliveryView, frozen=True):
    """One delivery with the exact body sent and every attempt."""

    body: str | None
    attempt_log: list[AttemptView]


def delivery_view(d: Delivery) -> DeliveryView:
    return DeliveryView(
        id=d.id, message_id=d.message_id, kind=d.kind, endpoint_id=d.endpoint_id, postback_id=d.postback_id,
        event_type=d.event_type, method=d.method, url=d.url, status=d.status, attempts=d.attempts,
        next_attempt_at=d.next_attempt_at, last_status_code=d.last_status_code, last_error=d.last_error,
        created_at=d.created_at, updated_at=d.updated_at,
    )  # fmt: skip


def attempt_view(a: DeliveryAttempt) -> AttemptView:
    return AttemptView(id=a.id, worker=a.worker, status_code=a.status_code, error_class=a.error_class, error=a.error,
                       latency_ms=a.latency_ms, response_excerpt=a.response_excerpt, verdict=a.verdict,
                       created_at=a.created_at)  # fmt: skip


def delivery_detail_view(d: Delivery, attempts: list[DeliveryAttempt]) -> DeliveryDetailView:
    return DeliveryDetailView(**msgspec.structs.asdict(delivery_view(d)), body=d.body,
                              attempt_log=[attempt_view(a) for a in attempts])  # fmt: skip
