"""Partner postbacks: URL templates a partner registers, and which ones a conversion fires.

A template is global (every offer) or for one offer, fires on conversions, events or both, by GET or POST,
optionally after a delay of up to five minutes. Its firing status (Integr8's) says at which status:
`approved` (the default) fires once, when the conversion is recorded approved or later becomes approved;
`rejected` fires once, when it is recorded rejected or later rejected (a reversal the partner's tracker
should hear of); `any` fires when it is recorded, whatever its status, and again on each change of status,
the `{status}` macro carrying the new one. Macros stand only in the path and the query and each value
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


class FiringStatus(StrEnum):
    APPROVED = "approved"
    REJECTED = "rejected"
    ANY = "any"


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
    fire_status: FiringStatus
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
        if not (self.on is FiresOn.BOTH or (self.on is FiresOn.EVENT) == is_event):
            return False
        return self.fire_status is FiringStatus.ANY or self.fire_status.value == conversion.status.value

    def dedup_key(self, conversion: Conversion) -> str:
        """Once per postback and conversion for `approved` and `rejected`; once per status and moment of the
        conversion's history (its trace grows with each change) for `any`."""
        key = f"postback:{self.id}:conversion:{conversion.id}"
        if self.fire_status is FiringStatus.REJECTED:
            return key + ":rejected"
        if self.fire_status is FiringStatus.ANY:
            return key + f":{conversion.status.value}:{len(conversion.trace)}"
        return key
