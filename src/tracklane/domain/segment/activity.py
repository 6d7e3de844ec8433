"""Customer activity: what a Segment message records for its customer, and the key that makes it count once.

A customer signs up once and churns once: a second `signup` or `cancel` of the same customer is kept in the
message log but counts nothing. A payment counts once per its own id (`properties.payment_id` or
`paymentId`, else the order id: `order_id` or `orderId`), else once per messageId; a refund once per its own
id (`refund_id` or `refundId`), else once per messageId (two partial refunds of one order are two refunds).
A track with no special meaning (not a signup, payment, refund or churn, not an audience track) is a
**custom event** of its customer, counted once per message under its event name.
"""

from __future__ import annotations

from dataclasses import dataclass

from tracklane.domain.segment.mapping import AUDIENCE_TRACKS
from tracklane.domain.segment.messages import Message

#: Activity kinds, as stored: the first four are the customer metrics, `event` a custom event.
SIGNUP, PAYMENT, REFUND, CHURN, EVENT = "signup", "payment", "refund", "churn", "event"
ONCE_PER_CUSTOMER = (SIGNUP, CHURN)
PAYMENT_ID_FIELDS = ("payment_id", "paymentId", "order_id", "orderId")
REFUND_ID_FIELDS = ("refund_id", "refundId")
MAX_ID_TEXT = 255
MAX_EVENT_NAME = 255


@dataclass(frozen=True, slots=True)
class ActivityRecord:
    """One activity to record: its kind, its dedup key (unique per source and kind) and, for a custom event,
    the event's name."""

    kind: str
    dedup_key: str
    event: str | None = None


def customer_key(customer_id: int) -> str:
    """The dedup key of the activity a customer has at most once (its signup, its churn)."""
    return f"customer:{customer_id}"


def message_key(message_id: str) -> str:
    return f"message:{message_id}"


def customer_activity(message: Message, kind: str | None, customer_id: int) -> ActivityRecord | None:
    """The activity the message records for the customer, given the kind its mapping found (None: none)."""
    if kind in ONCE_PER_CUSTOMER:
        return ActivityRecord(kind, customer_key(customer_id))
    if kind == PAYMENT:
        return ActivityRecord(kind, _own_key(message, "payment", PAYMENT_ID_FIELDS))
    if kind == REFUND:
        return ActivityRecord(kind, _own_key(message, "refund", REFUND_ID_FIELDS))
    if kind is None and is_custom_event(message):
        assert message.event is not None
        return ActivityRecord(EVENT, message_key(message.message_id), message.event[:MAX_EVENT_NAME])
    return None


def is_custom_event(message: Message) -> bool:
    """A track that is not an audience track (the caller has checked it is no other activity)."""
    return message.type == "track" and bool(message.event) and message.event not in AUDIENCE_TRACKS


def _own_key(message: Message, kind: str, names: tuple[str, ...]) -> str:
    for name in names:
        value = message.properties.get(name)
        if isinstance(value, str | int) and not isinstance(value, bool) and str(value).strip():
            return f"{kind}:{str(value).strip()[:MAX_ID_TEXT]}"
    return message_key(message.message_id)
