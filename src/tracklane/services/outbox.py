"""The transactional outbox: outbound messages are written by the same write that makes the domain change.

Every function here runs on the repository of a `Database.write` (one transaction), so a change and its
webhooks and partner postbacks are committed together or not at all. Fan-out happens here: one delivery
per subscribed endpoint; an endpoint that is disabled gets its delivery as `skipped` (kept for replay).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import Any

import msgspec

from tracklane.domain.delivery import DeliveryKind, DeliveryStatus
from tracklane.domain.macros import expand
from tracklane.domain.model import Click, Conversion
from tracklane.domain.webhooks import EndpointStatus, EventType, conversion_data, envelope
from tracklane.resources.fields import View
from tracklane.resources.partner_postbacks import macro_values, postback_conversion
from tracklane.services.ports import NewDelivery, Repository

Data = View | Mapping[str, Any]


def emit(repo: Repository, event_type: EventType, data: Data | Callable[[], Data], now: datetime) -> int:
    """Queue one webhook message per endpoint subscribed to `event_type`; return how many were queued.

    `data` is the admin's view of the resource (webhook endpoints are the network's own integrations), or
    what builds it, called only when some endpoint subscribes (most conversions have none to go to).
    """
    endpoints = [e for e in repo.all_webhook_endpoints() if e.subscribes(event_type.value)]
    if not endpoints:
        return 0
    body = envelope(event_type, now, msgspec.to_builtins(data() if callable(data) else data))
    for endpoint in endpoints:
        active = endpoint.status is EndpointStatus.ACTIVE
        repo.insert_delivery(NewDelivery(
            kind=DeliveryKind.WEBHOOK, event_type=event_type.value, method="POST", body=body,
            status=DeliveryStatus.PENDING if active else DeliveryStatus.SKIPPED, next_attempt_at=now,
            created_at=now, endpoint_id=endpoint.id,
        ))  # fmt: skip
    return len(endpoints)


def conversion_registered(repo: Repository, conversion: Conversion, click: Click | None, now: datetime) -> None:
    """`conversion.registered` or `event.registered`, and the partner's postbacks."""
    kind = EventType.EVENT_REGISTERED if conversion.event_id is not None else EventType.CONVERSION_REGISTERED
    emit(repo, kind, lambda: conversion_data(conversion, click), now)
    fire_postbacks(repo, conversion, click, now)


def fire_postbacks(repo: Repository, conversion: Conversion, click: Click | None, now: datetime) -> int:
    """Queue the partner's postbacks that fire for the conversion at its status (`PartnerPostback.fires_for`),
    once per postback and moment (`PartnerPostback.dedup_key`).

    What they carry is the partner's view of the conversion: its fields are the macro values, and the body of
    a `POST` postback is that view as JSON (no revenue, advertiser or adv values; the amount where shared).
    """
    postbacks = [p for p in repo.postbacks_of_partner(conversion.partner_id) if p.fires_for(conversion)]
    if not postbacks:
        return 0
    offer = repo.get_offer(conversion.offer_id)
    assert offer is not None, "a conversion's offer always exists"
    shown = postback_conversion(conversion, click, offer)
    values = macro_values(shown)
    queued = 0
    for postback in postbacks:
        body = msgspec.json.encode(shown).decode() if postback.method == "POST" else None
        delivery = repo.insert_delivery(NewDelivery(
            kind=DeliveryKind.POSTBACK, event_type="event" if conversion.event_id else "conversion",
            method=postback.method, body=body, status=DeliveryStatus.PENDING,
            next_attempt_at=now + timedelta(seconds=postback.delay_seconds), created_at=now,
            postback_id=postback.id, url=expand(postback.url, values),
            dedup_key=postback.dedup_key(conversion),
        ))  # fmt: skip
        queued += delivery is not None
    return queued
