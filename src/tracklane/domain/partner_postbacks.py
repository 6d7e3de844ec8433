"""Partner postbacks: URL templates a partner registers, and which ones a conversion fires.

A template is global (every offer) or for one offer, fires on conversions, events or both, by GET or POST,
optionally after a delay of up to five minutes. Macros stand only in the path and the query and each value
is percent-encoded (`domain.macros`). Success is a 2xx answer, and, when `success_body_contains` is set,
an answer whose first KB contains that text. What a postback may carry is the partner's view of the
conversion (`tracklane.resources.partner_postbacks`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from tracklane.domain.model import Conversion

MAX_DELAY_SECONDS = 300
MAX_SUCCESS_TEXT = 200


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
