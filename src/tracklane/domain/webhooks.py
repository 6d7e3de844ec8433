"""Webhook endpoints, the event types they subscribe to, the envelope of a message, and the payloads of
conversions and events.

A message body is the Standard Webhooks envelope `{"type", "timestamp", "data"}`, minified, money as
decimal strings in the currency's places, times in ISO 8601 UTC. The payloads of the catalogue's types are
the resources' webhook views (`AdvertiserData`, `PartnerData`, `OfferData`, `SignupVerdictData`,
`ApprovedForOfferData`); `docs/webhooks.md` shows every payload.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from tracklane.domain.model import Click, Conversion
from tracklane.domain.money import format_money


class EventType(StrEnum):
    OFFER_CREATED = "offer.created"
    OFFER_UPDATED = "offer.updated"
    ADVERTISER_CREATED = "advertiser.created"
    ADVERTISER_UPDATED = "advertiser.updated"
    ADVERTISER_SIGNED_UP = "advertiser.signed_up"
    PARTNER_CREATED = "partner.created"
    PARTNER_UPDATED = "partner.updated"
    PARTNER_SIGNED_UP = "partner.signed_up"
    PARTNER_SIGNUP_VERDICT = "partner.signup_verdict"
    PARTNER_APPROVED_FOR_OFFER = "partner.approved_for_offer"
    CONVERSION_REGISTERED = "conversion.registered"
    EVENT_REGISTERED = "event.registered"
    CONVERSION_UPDATED = "conversion.updated"
    TRAFFIC_OPTIMIZED = "traffic.optimized"


class EndpointStatus(StrEnum):
    ACTIVE = "active"
    DISABLED = "disabled"


@dataclass(frozen=True, slots=True)
class WebhookEndpoint:
    id: int
    url: str
    description: str | None
    event_types: tuple[str, ...] | None  # None: every type
    status: EndpointStatus
    disabled_reason: str | None
    disabled_at: datetime | None
    failing_since: datetime | None
    secret: str
    previous_secret: str | None
    previous_secret_expires_at: datetime | None
    created_at: datetime
    updated_at: datetime

    def subscribes(self, event_type: str) -> bool:
        return self.event_types is None or event_type in self.event_types

    def signing_secrets(self, now: datetime) -> list[str]:
        """The current secret, and the previous one during its overlap period after a rotation."""
        secrets = [self.secret]
        expires = self.previous_secret_expires_at
        if self.previous_secret is not None and expires is not None and now < expires:
            secrets.append(self.previous_secret)
        return secrets


def envelope(event_type: EventType, at: datetime, data: Mapping[str, Any]) -> str:
    """The exact body sent (and signed): minified JSON."""
    document = {"type": event_type.value, "timestamp": iso(at), "data": data}
    return json.dumps(document, separators=(",", ":"), ensure_ascii=False)


def iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat().replace("+00:00", "Z")


def conversion_data(c: Conversion, click: Click | None) -> dict[str, Any]:
    """A conversion or event as registered (no trace: fetch it from the API when needed)."""

    def money(value: Any) -> str | None:
        return None if value is None else format_money(value, c.currency)

    subs = click.subs if click is not None else (None,) * 5
    return {
        "id": c.id, "transaction_id": c.transaction_id, "offer_id": c.offer_id, "partner_id": c.partner_id,
        "advertiser_id": c.advertiser_id, "is_event": c.event_id is not None, "event_id": c.event_id,
        "event_name": c.event_name, "status": c.status.value, "status_reason": c.status_reason,
        "revenue": money(c.revenue), "payout": money(c.payout), "revenue_type": c.revenue_type,
        "payout_type": c.payout_type, "amount": money(c.amount), "currency": c.currency, "order_id": c.order_id,
        **{f"adv{i}": adv for i, adv in enumerate(c.advs, start=1)},
        **{f"sub{i}": sub for i, sub in enumerate(subs, start=1)},
        "source_id": click.source_id if click is not None else None,
        "click_created_at": iso(click.created_at) if click is not None else None,
        "origin": c.origin.value, "created_at": iso(c.created_at), "updated_at": iso(c.updated_at),
    }  # fmt: skip


def conversion_updated_data(c: Conversion, click: Click | None, previous_status: str) -> dict[str, Any]:
    return {**conversion_data(c, click), "previous_status": previous_status}
