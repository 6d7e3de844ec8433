"""Sources (a write key plus mapping settings, owned by one advertiser), customers seen through Segment calls
(with the count of each custom event they sent), stored messages and their outcomes."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any


class MessageOutcome(StrEnum):
    """What became of one stored message."""

    CONVERSION = "conversion"  # a conversion or event was recorded (or found as a duplicate)
    REFUND = "refund"
    CUSTOMER = "customer"  # customer data or activity only
    UNATTRIBUTED = "unattributed"  # a conversion with no click to attribute it to
    REFUSED = "refused"  # attribution refused it (see the detail)
    IGNORED = "ignored"  # nothing maps it


@dataclass(frozen=True, slots=True)
class Source:
    id: int
    name: str
    preset: str
    write_key: str
    webhook_secret: str
    settings: Mapping[str, Any]
    created_at: datetime
    updated_at: datetime
    advertiser_id: int | None = None  # None only for a source migrated without one: it attributes nothing


@dataclass(frozen=True, slots=True)
class StoredMessage:
    """A message a source received, as stored: its ids, times, what it was mapped to and its outcome."""

    id: int
    source_id: int
    message_id: str
    type: str
    event: str | None
    user_id: str | None
    anonymous_id: str | None
    timestamp: datetime
    original_timestamp: datetime
    sent_at: datetime | None
    received_at: datetime
    relayed: bool
    outcome: MessageOutcome
    detail: str | None
    conversion_id: int | None
    customer_id: int | None
    mapped: Mapping[str, Any]
    payload: Mapping[str, Any]
    created_at: datetime


@dataclass(frozen=True, slots=True)
class Customer:
    """A person: ids (the current `user_id`, the `previous_ids` an alias replaced), attributes, the click that
    acquired them, and `events`: how many times they sent each custom event (by name)."""

    id: int
    source_id: int
    user_id: str | None
    anonymous_ids: Sequence[str]
    previous_ids: Sequence[str]
    traits: Mapping[str, Any]
    group_id: str | None
    group_traits: Mapping[str, Any]
    audiences: Sequence[str]
    status: str  # active or churned
    transaction_id: str | None
    offer_id: int | None
    partner_id: int | None
    visits: int
    signed_up_at: datetime | None
    churned_at: datetime | None
    created_at: datetime
    updated_at: datetime
    identities: Sequence[str] = field(default_factory=tuple)
    events: Mapping[str, int] = field(default_factory=dict)
