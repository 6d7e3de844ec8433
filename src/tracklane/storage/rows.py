"""Turning rows into domain values and price rules into columns: the only place that knows both shapes."""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from typing import Any

import msgspec
from sqlalchemy import Row

from tracklane.domain import targeting
from tracklane.domain.billing import AdvertiserBilling, BillingFrequency, PartnerBilling, PaymentMethod
from tracklane.domain.caps import Cap, CapMetric, CapPeriod, CapRule
from tracklane.domain.delivery import Delivery, DeliveryAttempt, DeliveryKind, DeliveryStatus
from tracklane.domain.model import (
    AccessStatus,
    Advertiser,
    ApiKey,
    Click,
    ClickDevice,
    Conversion,
    ConversionMethod,
    ConversionStatus,
    Offer,
    OfferAccess,
    OfferEvent,
    OfferStatus,
    Origin,
    Partner,
    PartnerPayout,
    PartnerStatus,
    Role,
    Visibility,
)
from tracklane.domain.money import PriceRule, PriceType
from tracklane.domain.partner_postbacks import FiresOn, FiringStatus, PartnerPostback, PostbackStatus
from tracklane.domain.targeting import MatchKind
from tracklane.domain.trace import read_steps
from tracklane.domain.traffic import BlockStatus, RuleKind, RuleStatus, TrafficBlock, TrafficRule, TrafficVariable
from tracklane.domain.webhooks import EndpointStatus, WebhookEndpoint


def set_fields(body: msgspec.Struct, *, exclude: frozenset[str] = frozenset()) -> dict[str, Any]:
    """The fields an update body sent (absent ones are `UNSET`), by name: the column names. A `billing` block
    (advertisers, partners) is spread over its own columns, the fields it sent only."""
    values = {name: value for name, value in msgspec.structs.asdict(body).items()
              if value is not msgspec.UNSET and name not in exclude}  # fmt: skip
    billing = values.pop("billing", None)
    if isinstance(billing, msgspec.Struct):
        values.update(set_fields(billing))
    return values


def price_columns(prefix: str, rule: PriceRule) -> dict[str, Any]:
    return {
        f"{prefix}_type": rule.type.value,
        f"{prefix}_amount": rule.amount,
        f"{prefix}_percent": None if rule.percent is None else str(rule.percent),
    }


def price_rule(row: Row[Any], prefix: str) -> PriceRule:
    mapping = row._mapping
    percent = mapping[f"{prefix}_percent"]
    return PriceRule(
        type=PriceType(mapping[f"{prefix}_type"]),
        amount=mapping[f"{prefix}_amount"],
        percent=None if percent is None else Decimal(percent),
    )


def advertiser(row: Row[Any]) -> Advertiser:
    billing = AdvertiserBilling(_frequency(row.billing_frequency), row.payment_terms_days, row.tax_id)
    return Advertiser(row.id, row.name, row.postback_token, row.status, row.created_at, row.updated_at, billing,
                      row.status_reason)  # fmt: skip


def partner(row: Row[Any]) -> Partner:
    method = None if row.payment_method is None else PaymentMethod(row.payment_method)
    billing = PartnerBilling(_frequency(row.billing_frequency), method, row.tax_id)
    return Partner(row.id, row.name, row.email, PartnerStatus(row.status), row.created_at, row.updated_at, billing,
                   row.status_reason)  # fmt: skip


def _frequency(value: str | None) -> BillingFrequency | None:
    return None if value is None else BillingFrequency(value)


def cap(row: Row[Any]) -> Cap:
    rule = CapRule(CapMetric(row.metric), CapPeriod(row.period), int(row.cap_limit), bool(row.per_partner))
    return Cap(row.id, rule)


def offer(row: Row[Any], caps: Sequence[Cap]) -> Offer:
    return Offer(
        id=row.id,
        advertiser_id=row.advertiser_id,
        name=row.name,
        destination_url=row.destination_url,
        fallback_url=row.fallback_url,
        status=OfferStatus(row.status),
        visibility=Visibility(row.visibility),
        currency=row.currency,
        attribution_window_days=row.attribution_window_days,
        revenue=price_rule(row, "revenue"),
        payout=price_rule(row, "payout"),
        allow_multiple_conversions=bool(row.allow_multiple_conversions),
        default_status=ConversionStatus(row.default_status),
        created_at=row.created_at,
        updated_at=row.updated_at,
        caps=tuple(caps),
        conversion_methods=frozenset(ConversionMethod(m) for m in row.conversion_methods),
        share_amount_with_partners=bool(row.share_amount_with_partners),
        targeting=targeting.from_document(row.targeting),
    )


def offer_event(row: Row[Any]) -> OfferEvent:
    return OfferEvent(
        id=row.id,
        offer_id=row.offer_id,
        name=row.name,
        revenue=price_rule(row, "revenue"),
        payout=price_rule(row, "payout"),
        allow_multiple_per_click=bool(row.allow_multiple_per_click),
        created_at=row.created_at,
    )


def access(row: Row[Any]) -> OfferAccess:
    return OfferAccess(
        row.id, row.offer_id, row.partner_id, AccessStatus(row.status), row.reason, row.created_at, row.updated_at
    )


def partner_payout(row: Row[Any]) -> PartnerPayout:
    return PartnerPayout(row.id, row.offer_id, row.partner_id, row.event_id, price_rule(row, "payout"), row.created_at)


def api_key(row: Row[Any]) -> ApiKey:
    return ApiKey(row.id, Role(row.role), row.advertiser_id, row.partner_id, row.prefix, row.created_at)


def click(row: Row[Any]) -> Click:
    return Click(
        id=row.id,
        transaction_id=row.transaction_id,
        offer_id=row.offer_id,
        partner_id=row.partner_id,
        advertiser_id=row.advertiser_id,
        subs=(row.sub1, row.sub2, row.sub3, row.sub4, row.sub5),
        source_id=row.source_id,
        ip=row.ip,
        user_agent=row.user_agent,
        device=ClickDevice(row.device_type, row.os, row.browser, bool(row.is_bot)),
        country=row.country,
        referrer=row.referrer,
        verdict=row.verdict,
        reject_reason=row.reject_reason,
        revenue=row.revenue,
        payout=row.payout,
        created_at=row.created_at,
    )


def conversion(row: Row[Any]) -> Conversion:
    return Conversion(
        id=row.id,
        transaction_id=row.transaction_id,
        click_id=row.click_id,
        offer_id=row.offer_id,
        partner_id=row.partner_id,
        advertiser_id=row.advertiser_id,
        event_id=row.event_id,
        event_name=row.event_name,
        status=ConversionStatus(row.status),
        status_reason=row.status_reason,
        revenue=row.revenue,
        payout=row.payout,
        revenue_type=row.revenue_type,
        payout_type=row.payout_type,
        amount=row.amount,
        currency=row.currency,
        order_id=row.order_id,
        advs=(row.adv1, row.adv2, row.adv3, row.adv4, row.adv5),
        origin=Origin(row.origin),
        trace=read_steps(row.trace),
        created_at=row.created_at,
        updated_at=row.updated_at,
    )


def webhook_endpoint(row: Row[Any]) -> WebhookEndpoint:
    return WebhookEndpoint(
        id=row.id, url=row.url, description=row.description,
        event_types=None if row.event_types is None else tuple(row.event_types),
        status=EndpointStatus(row.status), disabled_reason=row.disabled_reason, disabled_at=row.disabled_at,
        failing_since=row.failing_since, secret=row.secret, previous_secret=row.previous_secret,
        previous_secret_expires_at=row.previous_secret_expires_at, created_at=row.created_at,
        updated_at=row.updated_at,
    )  # fmt: skip


def partner_postback(row: Row[Any]) -> PartnerPostback:
    return PartnerPostback(
        id=row.id, partner_id=row.partner_id, offer_id=row.offer_id, url=row.url, on=FiresOn(row.on),
        fire_status=FiringStatus(row.fire_status),
        method=row.method, delay_seconds=row.delay_seconds, success_body_contains=row.success_body_contains,
        status=PostbackStatus(row.status), deactivated_reason=row.deactivated_reason,
        failure_count=row.failure_count, failure_started_at=row.failure_started_at,
        created_at=row.created_at, updated_at=row.updated_at,
    )  # fmt: skip


def delivery(row: Row[Any]) -> Delivery:
    return Delivery(
        id=row.id, message_id=row.message_id, kind=DeliveryKind(row.kind), endpoint_id=row.endpoint_id,
        postback_id=row.postback_id, event_type=row.event_type, method=row.method, url=row.url, body=row.body,
        status=DeliveryStatus(row.status), attempts=row.attempts, next_attempt_at=row.next_attempt_at,
        last_status_code=row.last_status_code, last_error=row.last_error, created_at=row.created_at,
        updated_at=row.updated_at,
    )  # fmt: skip


def delivery_attempt(row: Row[Any]) -> DeliveryAttempt:
    return DeliveryAttempt(
        id=row.id, delivery_id=row.delivery_id, worker=row.worker, status_code=row.status_code,
        error_class=row.error_class, error=row.error, latency_ms=row.latency_ms,
        response_excerpt=row.response_excerpt, verdict=row.verdict, created_at=row.created_at,
    )  # fmt: skip


def traffic_rule(row: Row[Any]) -> TrafficRule:
    return TrafficRule(
        id=row.id, kind=RuleKind(row.kind), name=row.name, offer_id=row.offer_id, partner_id=row.partner_id,
        variable=TrafficVariable(row.variable), match=MatchKind(row.match), values=tuple(row.values or ()),
        min_clicks=row.min_clicks,
        cvr_below_percent=None if row.cvr_below_percent is None else Decimal(row.cvr_below_percent),
        window_days=row.window_days, status=RuleStatus(row.status), last_evaluated_at=row.last_evaluated_at,
        created_at=row.created_at, updated_at=row.updated_at,
    )  # fmt: skip


def traffic_block(row: Row[Any]) -> TrafficBlock:
    return TrafficBlock(
        id=row.id, rule_id=row.rule_id, offer_id=row.offer_id, partner_id=row.partner_id,
        variable=TrafficVariable(row.variable), value=row.value, clicks=row.clicks, conversions=row.conversions,
        cvr_percent=Decimal(row.cvr_percent), status=BlockStatus(row.status), created_at=row.created_at,
        lifted_at=row.lifted_at, lifted_by=row.lifted_by, lift_reason=row.lift_reason,
    )  # fmt: skip
