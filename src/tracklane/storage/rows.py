"""Turning rows into domain values and price rules into columns: the only place that knows both shapes."""

from __future__ import annotations

from collections.abc import Sequence
from decimal import Decimal
from typing import Any

from sqlalchemy import Row

from tracklane.domain.caps import Cap, CapMetric, CapPeriod, CapRule
from tracklane.domain.model import (
    AccessStatus,
    Advertiser,
    ApiKey,
    Click,
    ClickDevice,
    Conversion,
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
    return Advertiser(row.id, row.name, row.postback_token, row.status, row.created_at, row.updated_at)


def partner(row: Row[Any]) -> Partner:
    return Partner(row.id, row.name, row.email, PartnerStatus(row.status), row.created_at, row.updated_at)


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
        trace=list(row.trace),
        created_at=row.created_at,
        updated_at=row.updated_at,
    )
