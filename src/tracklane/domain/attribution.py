"""Attribution decisions for one conversion or event: which offer event, window, duplicates, money, status.

Each function decides one thing, raises `PostbackRefused` with the public result code when the request
must be refused, and returns what the trace should say. The service runs them in order inside one
transaction and writes the trace next to the conversion.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from tracklane.domain.errors import PostbackRefused
from tracklane.domain.model import Click, ConversionStatus, Offer, OfferEvent, PartnerPayout
from tracklane.domain.money import PriceRule
from tracklane.domain.postback import ConversionRequest


def match_event(request: ConversionRequest, events: Sequence[OfferEvent]) -> OfferEvent | None:
    """The offer event the request names (by id, by exact name, or both), or None for the base conversion."""
    if not request.is_event:
        return None
    by_id = next((e for e in events if e.id == request.event_id), None) if request.event_id else None
    by_name = next((e for e in events if e.name == request.event_name), None) if request.event_name else None
    if request.event_id is not None and by_id is None:
        raise PostbackRefused("unknown_event", f"event_id {request.event_id} is not an event of this offer")
    if request.event_name is not None and by_name is None:
        raise PostbackRefused("unknown_event", f"event_name {request.event_name!r} is not an event of this offer")
    if by_id is not None and by_name is not None and by_id.id != by_name.id:
        raise PostbackRefused("unknown_event", "event_id and event_name name different events")
    return by_id or by_name


def check_window(click: Click, offer: Offer, now: datetime) -> str:
    """Refuse a conversion later than the offer's attribution window after the click."""
    deadline = click.created_at + timedelta(days=offer.attribution_window_days)
    if now > deadline:
        raise PostbackRefused(
            "outside_window",
            f"the click is older than the offer's {offer.attribution_window_days}-day attribution window",
        )
    return (
        f"click at {click.created_at.isoformat(timespec='seconds')}, window {offer.attribution_window_days} days, "
        f"until {deadline.isoformat(timespec='seconds')}"
    )


def dedup_key(click: Click, event: OfferEvent | None, offer: Offer, order_id: str | None) -> str | None:
    """The key two requests share exactly when the second is a duplicate of the first.

    Without *allow multiple*, one per click and event; with it, one per order id (none without one).
    """
    action = f"e{event.id}" if event else "base"
    multiple = event.allow_multiple_per_click if event else offer.allow_multiple_conversions
    if not multiple:
        return f"{click.id}:{action}"
    if order_id is None:
        return None
    return f"{click.id}:{action}:order:{order_id}"


@dataclass(frozen=True, slots=True)
class PayoutChoice:
    rule: PriceRule
    source: str


def choose_payout(
    offer: Offer, event: OfferEvent | None, overrides: Sequence[PartnerPayout], partner_id: int
) -> PayoutChoice:
    """A partner-specific payout (for this event, else for the offer) overrides the offer's own."""
    event_id = event.id if event else None
    for override in overrides:
        if override.partner_id == partner_id and override.event_id == event_id:
            return PayoutChoice(override.payout, f"partner payout #{override.id} for partner {partner_id}")
    if event is not None:
        return PayoutChoice(event.payout, f"event {event.name!r} payout")
    return PayoutChoice(offer.payout, "offer payout")


@dataclass(frozen=True, slots=True)
class StatusChoice:
    status: ConversionStatus
    reason: str | None
    detail: str


def choose_status(offer: Offer, click: Click, within_caps: bool) -> StatusChoice:
    """Approved unless the click was not billable, a cap is full, or the offer approves by hand."""
    if not click.accepted:
        return StatusChoice(
            ConversionStatus.REJECTED, f"click_{click.reject_reason}", f"the click was rejected ({click.reject_reason})"
        )
    if click.device.is_bot:
        return StatusChoice(ConversionStatus.PENDING, "bot_click", "the click was flagged as a bot; held for review")
    if not within_caps:
        return StatusChoice(ConversionStatus.PENDING, "over_cap", "a conversion cap is full; held as pending")
    if offer.default_status is ConversionStatus.PENDING:
        return StatusChoice(ConversionStatus.PENDING, "manual_approval", "the offer approves conversions by hand")
    return StatusChoice(ConversionStatus.APPROVED, None, "approved")
