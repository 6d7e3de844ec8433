"""Partner postbacks: URL templates a partner registers, which ones a conversion fires, and their macro values.

A template is global (every offer) or for one offer, fires on conversions, events or both, by GET or POST,
optionally after a delay of up to five minutes. Macros stand only in the path and the query and each value
is percent-encoded (`domain.macros`). Success is a 2xx answer, and, when `success_body_contains` is set,
an answer whose first KB contains that text.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from tracklane.domain.errors import InvalidParameter
from tracklane.domain.macros import validate_template
from tracklane.domain.model import Click, Conversion
from tracklane.domain.money import format_money

MAX_DELAY_SECONDS = 300


class FiresOn(StrEnum):
    CONVERSION = "conversion"
    EVENT = "event"
    BOTH = "both"


class PostbackStatus(StrEnum):
    ACTIVE = "active"
    INACTIVE = "inactive"


@dataclass(frozen=True, slots=True)
class PartnerPostback:
    id: int
    partner_id: int
    offer_id: int | None
    url: str
    on: FiresOn
    method: str
    delay_seconds: int
    success_body_contains: str | None
    status: PostbackStatus
    deactivated_reason: str | None
    failure_count: int
    failure_started_at: datetime | None
    created_at: datetime
    updated_at: datetime

    def fires_for(self, conversion: Conversion) -> bool:
        if self.status is not PostbackStatus.ACTIVE or self.partner_id != conversion.partner_id:
            return False
        if self.offer_id is not None and self.offer_id != conversion.offer_id:
            return False
        is_event = conversion.event_id is not None
        return self.on is FiresOn.BOTH or (self.on is FiresOn.EVENT) == is_event


def parse_postback(body: Mapping[str, Any], *, partial: bool) -> dict[str, Any]:
    """Validate the fields of a partner postback; an unknown macro is refused naming `url`."""
    values: dict[str, Any] = {}
    if "url" in body or not partial:
        values["url"] = validate_template(body.get("url"), "url")
    if "on" in body or not partial:
        try:
            values["on"] = FiresOn(body.get("on", "conversion"))
        except ValueError:
            raise InvalidParameter("on", "must be conversion, event or both") from None
    if "method" in body or not partial:
        method = body.get("method", "GET")
        if not isinstance(method, str) or method.upper() not in ("GET", "POST"):
            raise InvalidParameter("method", "must be GET or POST")
        values["method"] = method.upper()
    if "delay_seconds" in body or not partial:
        delay = body.get("delay_seconds", 0)
        if isinstance(delay, bool) or not isinstance(delay, int) or not 0 <= delay <= MAX_DELAY_SECONDS:
            raise InvalidParameter("delay_seconds", f"must be an integer from 0 to {MAX_DELAY_SECONDS}")
        values["delay_seconds"] = delay
    if "success_body_contains" in body:
        text = body["success_body_contains"]
        if text is not None and (not isinstance(text, str) or not text or len(text) > 200):
            raise InvalidParameter("success_body_contains", "must be a non-empty string of at most 200 characters")
        values["success_body_contains"] = text
    return values


def macro_values(conversion: Conversion, click: Click | None) -> dict[str, str | None]:
    """The value of every catalogue macro for a conversion or event (money as decimal strings)."""
    def money(value: Any) -> str | None:
        return None if value is None else format_money(value, conversion.currency)

    subs = click.subs if click is not None else (None,) * 5
    created = conversion.created_at
    return {
        "transaction_id": conversion.transaction_id, "offer_id": str(conversion.offer_id),
        "partner_id": str(conversion.partner_id), "advertiser_id": str(conversion.advertiser_id),
        **{f"sub{i}": sub for i, sub in enumerate(subs, start=1)},
        "source_id": click.source_id if click is not None else None,
        "event_id": None if conversion.event_id is None else str(conversion.event_id),
        "event_name": conversion.event_name, "conversion_id": str(conversion.id),
        "payout": money(conversion.payout), "revenue": money(conversion.revenue), "amount": money(conversion.amount),
        "currency": conversion.currency, "order_id": conversion.order_id, "status": conversion.status.value,
        **{f"adv{i}": adv for i, adv in enumerate(conversion.advs, start=1)},
        "timestamp": None if created is None else str(int(created.timestamp())),
    }  # fmt: skip
