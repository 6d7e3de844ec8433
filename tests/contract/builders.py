"""Commands for the contract tests: clicks, conversions and deliveries with defaults, changed per test, and
request bodies as the API decodes them."""

from __future__ import annotations

import itertools
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from tests.fakes import body
from tracklane.domain.delivery import DeliveryKind, DeliveryStatus
from tracklane.domain.model import Click, ClickDevice, ConversionStatus
from tracklane.domain.trace import Side, TraceStep
from tracklane.services.ports import NewClick, NewConversion, NewDelivery

__all__ = ["NOW", "at", "body", "new_click", "new_conversion", "new_delivery"]

NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
_serial = itertools.count(1)


def at(minutes: float) -> datetime:
    """A moment `minutes` after NOW."""
    return NOW + timedelta(minutes=minutes)


def new_click(**changes: Any) -> NewClick:
    click = NewClick(
        transaction_id=f"{next(_serial):032x}", offer_id=1, partner_id=1, advertiser_id=1,
        subs=("s1", None, None, None, None), source_id="site", ip="203.0.113.9", user_agent="Mozilla/5.0",
        device=ClickDevice("desktop", "Linux", "Firefox", False), country="DE", referrer=None,
        verdict="accepted", reject_reason=None, revenue=Decimal("0.25"), payout=Decimal("0.10"), created_at=NOW,
    )  # fmt: skip
    return replace(click, **changes)


def new_conversion(click: Click, **changes: Any) -> NewConversion:
    conversion = NewConversion(
        transaction_id=click.transaction_id, click_id=click.id, offer_id=click.offer_id,
        partner_id=click.partner_id, advertiser_id=click.advertiser_id or 1, event_id=None, event_name=None,
        status=ConversionStatus.APPROVED, status_reason=None, revenue=Decimal("10.00"), payout=Decimal("6.5000"),
        revenue_type="cpa", payout_type="cpa", amount=Decimal("99.9900"), currency="EUR", order_id="o-1",
        advs=("a1", None, None, None, None), origin="postback", dedup_key=f"{click.id}:base",
        trace=(TraceStep("click", "found", f"click #{click.id}"),
               TraceStep("payout", "6.50", "offer payout", Side.PAYOUT)),
        created_at=NOW,
    )  # fmt: skip
    return replace(conversion, **changes)


def new_delivery(**changes: Any) -> NewDelivery:
    delivery = NewDelivery(
        kind=DeliveryKind.POSTBACK, event_type="conversion", method="GET", body=None,
        status=DeliveryStatus.PENDING, next_attempt_at=NOW, created_at=NOW, url="https://partner.example/pb?x=1",
    )  # fmt: skip
    return replace(delivery, **changes)
