"""The value objects of the program: advertisers, partners, offers and their events, clicks, conversions, API keys
and the people who sign in (users and their sessions)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Final

from tracklane.domain.billing import AdvertiserBilling, PartnerBilling
from tracklane.domain.caps import Cap
from tracklane.domain.money import PriceRule
from tracklane.domain.targeting import NO_TARGETING, Targeting
from tracklane.domain.trace import TraceStep


class OfferStatus(StrEnum):
    ACTIVE = "active"
    PAUSED = "paused"


class Visibility(StrEnum):
    PUBLIC = "public"
    APPROVAL_REQUIRED = "approval_required"
    PRIVATE = "private"


class PartnerStatus(StrEnum):
    PENDING = "pending"
    ACTIVE = "active"
    REJECTED = "rejected"
    BLOCKED = "blocked"


class AccessStatus(StrEnum):
    REQUESTED = "requested"
    APPROVED = "approved"
    REJECTED = "rejected"


class ConversionStatus(StrEnum):
    APPROVED = "approved"
    PENDING = "pending"
    REJECTED = "rejected"


class ReasonCode(StrEnum):
    """Why a conversion is rejected, reversed or adjusted: codes modelled on impact.com's reversal and
    modification reasons, kept at the front of the reason (`ITEM_RETURNED: two of three items`)."""

    ITEM_RETURNED = "ITEM_RETURNED"
    ITEM_OUT_OF_STOCK = "ITEM_OUT_OF_STOCK"
    ORDER_UPDATE = "ORDER_UPDATE"
    ORDER_ERROR = "ORDER_ERROR"
    CONS_FRAUD = "CONS_FRAUD"
    CONS_ERROR = "CONS_ERROR"
    PARTNER_FRAUD = "PARTNER_FRAUD"
    DUPLICATE = "DUPLICATE"
    OUT_OF_TERMS = "OUT_OF_TERMS"
    TEST_ORDER = "TEST_ORDER"
    DISPUTE = "DISPUTE"
    OTHER = "OTHER"


#: What each reason code means, for people (the console's choices, the docs).
REASON_CODES: Final = {
    ReasonCode.ITEM_RETURNED: "the order, or items of it, were returned",
    ReasonCode.ITEM_OUT_OF_STOCK: "items were out of stock and never shipped",
    ReasonCode.ORDER_UPDATE: "the order changed after it was placed",
    ReasonCode.ORDER_ERROR: "the order was recorded in error",
    ReasonCode.CONS_FRAUD: "the customer's order was fraudulent (chargeback, stolen card)",
    ReasonCode.CONS_ERROR: "the customer cancelled or ordered by mistake",
    ReasonCode.PARTNER_FRAUD: "the partner's traffic broke the rules (incentivised, cookie stuffing)",
    ReasonCode.DUPLICATE: "the same order was recorded twice",
    ReasonCode.OUT_OF_TERMS: "outside the offer's terms (coupon site, brand bidding, existing customer)",
    ReasonCode.TEST_ORDER: "a test order",
    ReasonCode.DISPUTE: "settled in a dispute between advertiser and partner",
    ReasonCode.OTHER: "another reason, given in words",
}


class Origin(StrEnum):
    POSTBACK = "postback"
    SEGMENT = "segment"
    SDK = "sdk"
    API = "api"


class ConversionMethod(StrEnum):
    """A channel an offer accepts conversions from; each offer lists those it enables."""

    POSTBACK = "postback"  # server-to-server `/postback` with the advertiser's token
    PIXEL = "pixel"  # `/pixel` in the visitor's browser, with the offer's cookie or a click-bound token
    SDK = "sdk"  # the browser SDK
    SEGMENT = "segment"  # a Segment source of the offer's advertiser
    API = "api"  # the management API


#: What an offer accepts when it is created without `conversion_methods` (every channel; each one
#: still checks its own owner: the token, the offer's cookie, the source's advertiser, the API key).
DEFAULT_CONVERSION_METHODS: frozenset[ConversionMethod] = frozenset(ConversionMethod)


class Role(StrEnum):
    ADMIN = "admin"
    ADVERTISER = "advertiser"
    PARTNER = "partner"


@dataclass(frozen=True, slots=True)
class Advertiser:
    id: int
    name: str
    postback_token: str
    status: str
    created_at: datetime
    updated_at: datetime
    billing: AdvertiserBilling = field(default_factory=AdvertiserBilling)
    status_reason: str | None = None  # why it is rejected or inactive (a verdict's reason)


@dataclass(frozen=True, slots=True)
class Partner:
    id: int
    name: str
    email: str
    status: PartnerStatus
    created_at: datetime
    updated_at: datetime
    billing: PartnerBilling = field(default_factory=PartnerBilling)
    status_reason: str | None = None  # why it is rejected or blocked (a verdict's reason)


@dataclass(frozen=True, slots=True)
class OfferEvent:
    """A payable action of an offer beyond the base conversion."""

    id: int
    offer_id: int
    name: str
    revenue: PriceRule
    payout: PriceRule
    allow_multiple_per_click: bool
    created_at: datetime


@dataclass(frozen=True, slots=True)
class Offer:
    id: int
    advertiser_id: int
    name: str
    destination_url: str
    fallback_url: str | None
    status: OfferStatus
    visibility: Visibility
    currency: str
    attribution_window_days: int
    revenue: PriceRule
    payout: PriceRule
    allow_multiple_conversions: bool
    default_status: ConversionStatus
    created_at: datetime
    updated_at: datetime
    caps: tuple[Cap, ...] = ()
    conversion_methods: frozenset[ConversionMethod] = DEFAULT_CONVERSION_METHODS
    share_amount_with_partners: bool = False
    targeting: Targeting = NO_TARGETING

    def accepts(self, method: ConversionMethod) -> bool:
        return method in self.conversion_methods

    def visible_to_partner(self, access: OfferAccess | None) -> bool:
        """Whether a partner may see (and run) this offer: it is not private, or the partner is approved for it."""
        approved = access is not None and access.status is AccessStatus.APPROVED
        return self.visibility is not Visibility.PRIVATE or approved


@dataclass(frozen=True, slots=True)
class OfferAccess:
    id: int
    offer_id: int
    partner_id: int
    status: AccessStatus
    reason: str | None
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class PartnerPayout:
    """A partner-specific payout that overrides the offer's (or one event's) payout."""

    id: int
    offer_id: int
    partner_id: int
    event_id: int | None
    payout: PriceRule
    created_at: datetime


@dataclass(frozen=True, slots=True)
class ClickDevice:
    """What the user agent says about the visitor."""

    device_type: str = "unknown"
    os: str | None = None
    browser: str | None = None
    is_bot: bool = False


@dataclass(frozen=True, slots=True)
class Click:
    id: int
    transaction_id: str
    offer_id: int
    partner_id: int
    advertiser_id: int | None
    subs: tuple[str | None, str | None, str | None, str | None, str | None]
    source_id: str | None
    ip: str | None
    user_agent: str | None
    device: ClickDevice
    country: str | None
    referrer: str | None
    verdict: str
    reject_reason: str | None
    revenue: Decimal
    payout: Decimal
    created_at: datetime

    @property
    def accepted(self) -> bool:
        return self.verdict == "accepted"


@dataclass(frozen=True, slots=True)
class Conversion:
    id: int
    transaction_id: str
    click_id: int
    offer_id: int
    partner_id: int
    advertiser_id: int
    event_id: int | None
    event_name: str | None
    status: ConversionStatus
    status_reason: str | None
    revenue: Decimal
    payout: Decimal
    revenue_type: str
    payout_type: str
    amount: Decimal | None
    currency: str
    order_id: str | None
    advs: tuple[str | None, ...]
    origin: Origin
    trace: tuple[TraceStep, ...] = ()
    created_at: datetime | None = None
    updated_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class ApiKey:
    id: int
    role: Role
    advertiser_id: int | None
    partner_id: int | None
    prefix: str
    created_at: datetime


class UserStatus(StrEnum):
    INVITED = "invited"  # no password yet: becomes active by accepting an invitation
    ACTIVE = "active"
    DISABLED = "disabled"  # may not sign in; its sessions ended when it was disabled


class LinkKind(StrEnum):
    """What a one-time link lets its holder do: set the first password, or a new one."""

    INVITATION = "invitation"
    PASSWORD_RESET = "password_reset"


@dataclass(frozen=True, slots=True)
class User:
    """A person who signs in to the console (admin) or a portal (advertiser, partner); API keys are for machines.

    An advertiser's user has `advertiser_id`, a partner's `partner_id`, an admin neither. The password's hash is
    not part of it: it stays in storage, and only the sign-in step reads it.
    """

    id: int
    email: str
    name: str
    role: Role
    advertiser_id: int | None
    partner_id: int | None
    status: UserStatus
    created_at: datetime
    last_sign_in_at: datetime | None


@dataclass(frozen=True, slots=True)
class SignedIn:
    """A valid session: whose it is, the token its forms must carry (CSRF), and when it ends."""

    user: User
    csrf_token: str
    expires_at: datetime
