"""Domain values as JSON: money as decimal strings in the offer's currency, times in ISO 8601 UTC."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from tracklane.domain.delivery import Delivery, DeliveryAttempt
from tracklane.domain.model import (
    Advertiser,
    ApiKey,
    Click,
    Conversion,
    Offer,
    OfferAccess,
    OfferEvent,
    Partner,
    PartnerPayout,
)
from tracklane.domain.money import format_money
from tracklane.domain.partner_postbacks import PartnerPostback
from tracklane.domain.segment.model import Customer, Source
from tracklane.domain.segment.settings import settings_json, source_settings
from tracklane.domain.webhooks import WebhookEndpoint, advertiser_data, iso, offer_data, partner_data


def advertiser(a: Advertiser) -> dict[str, Any]:
    """The advertiser as its webhooks carry it, with its postback token (the API is authenticated)."""
    return {**advertiser_data(a), "postback_token": a.postback_token}


def partner(p: Partner) -> dict[str, Any]:
    return partner_data(p)


def offer(o: Offer) -> dict[str, Any]:
    return offer_data(o)


def offer_event(e: OfferEvent, currency: str) -> dict[str, Any]:
    return {"id": e.id, "offer_id": e.offer_id, "name": e.name, "revenue": e.revenue.to_json(currency),
            "payout": e.payout.to_json(currency), "allow_multiple_per_click": e.allow_multiple_per_click,
            "created_at": iso(e.created_at)}


def access(a: OfferAccess) -> dict[str, Any]:
    return {"id": a.id, "offer_id": a.offer_id, "partner_id": a.partner_id, "status": a.status.value,
            "reason": a.reason, "created_at": iso(a.created_at), "updated_at": iso(a.updated_at)}


def partner_payout(p: PartnerPayout, currency: str) -> dict[str, Any]:
    return {"id": p.id, "offer_id": p.offer_id, "partner_id": p.partner_id, "event_id": p.event_id,
            "payout": p.payout.to_json(currency), "created_at": iso(p.created_at)}


def api_key(k: ApiKey) -> dict[str, Any]:
    return {"id": k.id, "role": k.role.value, "advertiser_id": k.advertiser_id, "partner_id": k.partner_id,
            "prefix": k.prefix, "created_at": iso(k.created_at)}


def click(c: Click, currency: str = "USD") -> dict[str, Any]:
    return {
        "id": c.id, "transaction_id": c.transaction_id, "offer_id": c.offer_id, "partner_id": c.partner_id,
        "advertiser_id": c.advertiser_id,
        **{f"sub{i}": sub for i, sub in enumerate(c.subs, start=1)},
        "source_id": c.source_id, "ip": c.ip, "user_agent": c.user_agent, "device_type": c.device.device_type,
        "os": c.device.os, "browser": c.device.browser, "is_bot": c.device.is_bot, "country": c.country,
        "referrer": c.referrer, "verdict": c.verdict, "reject_reason": c.reject_reason,
        "revenue": format_money(c.revenue, currency), "payout": format_money(c.payout, currency),
        "created_at": iso(c.created_at),
    }  # fmt: skip


def conversion(c: Conversion) -> dict[str, Any]:
    return {
        "id": c.id, "transaction_id": c.transaction_id, "click_id": c.click_id, "offer_id": c.offer_id,
        "partner_id": c.partner_id, "advertiser_id": c.advertiser_id, "event_id": c.event_id,
        "event_name": c.event_name, "status": c.status.value, "status_reason": c.status_reason,
        "revenue": format_money(c.revenue, c.currency), "payout": format_money(c.payout, c.currency),
        "revenue_type": c.revenue_type, "payout_type": c.payout_type,
        "amount": None if c.amount is None else format_money(c.amount, c.currency), "currency": c.currency,
        "order_id": c.order_id, **{f"adv{i}": adv for i, adv in enumerate(c.advs, start=1)},
        "origin": c.origin.value, "created_at": iso(c.created_at), "updated_at": iso(c.updated_at),
        "trace": c.trace,
    }  # fmt: skip


def report_value(value: Any) -> Any:
    """Report cells: money and ratios as decimal strings (at least two places)."""
    return format_money(value, "USD") if isinstance(value, Decimal) else value


def source(s: Source) -> dict[str, Any]:
    """A Segment source with its write key, webhook secret and the effective mapping settings."""
    return {"id": s.id, "name": s.name, "preset": s.preset, "write_key": s.write_key,
            "webhook_secret": s.webhook_secret, "settings": dict(s.settings),
            "effective_settings": settings_json(source_settings(s.preset, s.settings)),
            "created_at": iso(s.created_at), "updated_at": iso(s.updated_at)}


def customer(c: Customer) -> dict[str, Any]:
    return {
        "id": c.id, "source_id": c.source_id, "user_id": c.user_id, "anonymous_ids": list(c.anonymous_ids),
        "previous_ids": list(c.previous_ids), "traits": _json(c.traits), "group_id": c.group_id,
        "group_traits": _json(c.group_traits), "audiences": list(c.audiences), "status": c.status,
        "transaction_id": c.transaction_id, "offer_id": c.offer_id, "partner_id": c.partner_id, "visits": c.visits,
        "signed_up_at": iso(c.signed_up_at), "churned_at": iso(c.churned_at),
        "created_at": iso(c.created_at), "updated_at": iso(c.updated_at),
    }  # fmt: skip


def segment_message(m: dict[str, Any]) -> dict[str, Any]:
    """A received Segment message: its ids, corrected timestamp, outcome and what it was mapped to."""
    times = ("timestamp", "original_timestamp", "sent_at", "received_at", "created_at")
    return {k: iso(v) if k in times else v for k, v in m.items()}


def _json(value: Any) -> Any:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, dict):
        return {k: _json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_json(v) for v in value]
    return value


def webhook_endpoint(e: WebhookEndpoint, secret: str | None = None) -> dict[str, Any]:
    """An endpoint; its secret only when just issued (creation, rotation)."""
    body = {
        "id": e.id, "url": e.url, "description": e.description,
        "event_types": None if e.event_types is None else list(e.event_types), "status": e.status.value,
        "disabled_reason": e.disabled_reason, "disabled_at": iso(e.disabled_at),
        "failing_since": iso(e.failing_since),
        "previous_secret_expires_at": iso(e.previous_secret_expires_at),
        "created_at": iso(e.created_at), "updated_at": iso(e.updated_at),
    }  # fmt: skip
    if secret is not None:
        body["secret"] = secret
    return body


def partner_postback(p: PartnerPostback) -> dict[str, Any]:
    return {
        "id": p.id, "partner_id": p.partner_id, "offer_id": p.offer_id, "url": p.url, "on": p.on.value,
        "method": p.method, "delay_seconds": p.delay_seconds, "success_body_contains": p.success_body_contains,
        "status": p.status.value, "deactivated_reason": p.deactivated_reason, "failure_count": p.failure_count,
        "created_at": iso(p.created_at), "updated_at": iso(p.updated_at),
    }  # fmt: skip


def delivery(d: Delivery, attempts: list[DeliveryAttempt] | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": d.id, "message_id": d.message_id, "kind": d.kind.value, "endpoint_id": d.endpoint_id,
        "postback_id": d.postback_id, "event_type": d.event_type, "method": d.method, "url": d.url,
        "status": d.status.value, "attempts": d.attempts, "next_attempt_at": iso(d.next_attempt_at),
        "last_status_code": d.last_status_code, "last_error": d.last_error,
        "created_at": iso(d.created_at), "updated_at": iso(d.updated_at),
    }  # fmt: skip
    if attempts is not None:
        body["body"] = d.body
        body["attempt_log"] = [delivery_attempt(a) for a in attempts]
    return body


def delivery_attempt(a: DeliveryAttempt) -> dict[str, Any]:
    return {"id": a.id, "worker": a.worker, "status_code": a.status_code, "error_class": a.error_class,
            "error": a.error, "latency_ms": a.latency_ms, "response_excerpt": a.response_excerpt,
            "verdict": a.verdict, "created_at": iso(a.created_at)}
