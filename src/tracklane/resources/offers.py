"""Offers and what hangs off them: price rules, caps, offer events, offer access and partner-specific payouts.

The request bodies decode and validate the input (money exact, every error naming its path, e.g.
`caps[1].limit` or `revenue.amount`) and are the service command and the write port's argument.

Each role sees an offer and its events through its own view type:
- the admin sees everything (`OfferView`, `OfferEventView`), an event's postback URL with the advertiser's
  postback token;
- an advertiser sees revenue but no payout (`OfferAdvertiserView`, `OfferEventAdvertiserView`), an event's
  postback URL with a placeholder for the token;
- a partner sees its own payout, its partner-specific one where it has one, and its tracking link, but no
  revenue, none of the advertiser's landing pages and no postback URL (`OfferPartnerView`,
  `OfferEventPartnerView`).
Webhooks carry the admin's view with the offer's events and its targeting (`OfferData`), never the token.
Offer access and partner-specific payouts are the admin's alone.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any, Final, Literal
from urllib.parse import quote

import msgspec

from tracklane.domain.attribution import choose_payout
from tracklane.domain.caps import CapMetric, CapPeriod, CapRule
from tracklane.domain.catalog import MAX_WINDOW_DAYS, parse_name
from tracklane.domain.errors import Forbidden, InvalidParameter
from tracklane.domain.ids import MAX_ID
from tracklane.domain.macros import DESTINATION_MACROS, validate_template
from tracklane.domain.model import (
    DEFAULT_CONVERSION_METHODS,
    AccessStatus,
    ConversionMethod,
    ConversionStatus,
    Offer,
    OfferAccess,
    OfferEvent,
    OfferStatus,
    PartnerPayout,
    Role,
    Visibility,
)
from tracklane.domain.money import PriceRule, PriceType, format_money, parse_currency, parse_money, parse_percent
from tracklane.domain.targeting import MatchKind, ParamRule, RuleAction, Targeting
from tracklane.domain.tenancy import Scope
from tracklane.resources.fields import (
    UNSET,
    Amount,
    Currency,
    Id,
    MoneyText,
    Name,
    Reason,
    Struct,
    Unset,
    Url,
    View,
)
from tracklane.resources.partners import PartnerData

_FLAT: Final = frozenset({PriceType.CPA, PriceType.CPL, PriceType.FIXED, PriceType.CPC, PriceType.CPA_CPS})
_SHARE: Final = frozenset({PriceType.CPS, PriceType.CPA_CPS})

FallbackUrl = Annotated[str, msgspec.Meta(max_length=4096, description="where refused clicks go; empty or null: "
                                          "the network fallback", examples=["https://shop.example/"])]  # fmt: skip
WindowDays = Annotated[int, msgspec.Meta(ge=1, le=MAX_WINDOW_DAYS, description="days a click can convert")]
CapLimit = Annotated[int, msgspec.Meta(ge=0, le=MAX_ID)]
DefaultStatus = Literal["approved", "pending"]
ConversionMethods = Annotated[list[ConversionMethod], msgspec.Meta(
    min_length=1, description="the channels that may convert this offer's clicks (default: all of them)")]  # fmt: skip


def _all_methods() -> list[ConversionMethod]:
    return [m for m in ConversionMethod if m in DEFAULT_CONVERSION_METHODS]


# price rules and caps


class PriceRuleBody(Struct):
    """How revenue or payout is computed: `amount` for cpa, cpl, fixed, cpc and cpa_cps; `percent` of the sale
    amount (0..100) for cps and cpa_cps."""

    type: PriceType
    amount: Amount | None = None
    percent: Amount | None = None

    def __post_init__(self) -> None:
        numbers = (("amount", self.type in _FLAT, self.amount), ("percent", self.type in _SHARE, self.percent))
        for field, needed, value in numbers:
            if needed and value is None:
                raise InvalidParameter(field, f"is required for type {self.type.value}")
        for field, needed, value in numbers:
            if not needed and value is not None:
                raise InvalidParameter(field, f"is not used by type {self.type.value}")
        if self.amount is not None:
            self.amount = Amount(parse_money(self.amount, "amount"))
        if self.percent is not None:
            self.percent = Amount(_plain(parse_percent(self.percent, "percent")))

    def rule(self) -> PriceRule:
        return PriceRule(self.type, self.amount, self.percent)


def _plain(number: Decimal) -> Decimal:
    """`1E+1` as `10`: a percent is stored and shown as written, without an exponent."""
    exponent = number.as_tuple().exponent
    return number.quantize(Decimal(1)) if isinstance(exponent, int) and exponent > 0 else number


class CapBody(Struct):
    metric: CapMetric
    period: CapPeriod
    limit: CapLimit
    per_partner: bool = False

    def rule(self) -> CapRule:
        return CapRule(self.metric, self.period, self.limit, self.per_partner)


class PriceRuleView(View, frozen=True):
    type: PriceType
    amount: MoneyText | None
    percent: str | None


class CapView(View, frozen=True):
    id: int
    metric: CapMetric
    period: CapPeriod
    limit: int
    per_partner: bool


def price_view(rule: PriceRule, currency: str) -> PriceRuleView:
    amount = None if rule.amount is None else format_money(rule.amount, currency)
    return PriceRuleView(type=rule.type, amount=amount, percent=None if rule.percent is None else str(rule.percent))


# targeting

CountryCode = Annotated[str, msgspec.Meta(pattern="^[A-Za-z]{2}$", description="ISO 3166-1 alpha-2",
                                          examples=["US"])]  # fmt: skip
DeviceType = Literal["desktop", "mobile", "tablet", "unknown"]
Label = Annotated[str, msgspec.Meta(min_length=1, max_length=100, description="as the user-agent parser names it",
                                    examples=["iOS", "Chrome Mobile"])]  # fmt: skip
RuleField = Literal["sub1", "sub2", "sub3", "sub4", "sub5", "source_id", "referrer"]
RuleValue = Annotated[str, msgspec.Meta(min_length=1, max_length=2048)]


class ParamRuleBody(Struct):
    """`allow`: only matching values go through; `block`: matching values are refused (case ignored)."""

    field: RuleField
    action: RuleAction
    values: Annotated[list[RuleValue], msgspec.Meta(min_length=1, max_length=1000)]
    match: MatchKind = MatchKind.EXACT

    def rule(self) -> ParamRule:
        return ParamRule(self.field, self.action, self.match, tuple(dict.fromkeys(v.lower() for v in self.values)))


class TargetingBody(Struct):
    """Which visitors may click through to the offer; an empty list is anyone. A visitor outside it is
    recorded, refused with `targeting:<what>` and sent to the fallback URL."""

    countries: Annotated[list[CountryCode], msgspec.Meta(max_length=300)] = []
    device_types: list[DeviceType] = []
    operating_systems: Annotated[list[Label], msgspec.Meta(max_length=100)] = []
    browsers: Annotated[list[Label], msgspec.Meta(max_length=100)] = []
    rules: Annotated[list[ParamRuleBody], msgspec.Meta(max_length=50)] = []

    def targeting(self) -> Targeting:
        return Targeting(
            countries=tuple(dict.fromkeys(c.upper() for c in self.countries)),
            device_types=tuple(dict.fromkeys(self.device_types)),
            operating_systems=tuple(dict.fromkeys(self.operating_systems)),
            browsers=tuple(dict.fromkeys(self.browsers)),
            rules=tuple(r.rule() for r in self.rules),
        )


class ParamRuleView(View, frozen=True):
    field: str
    action: RuleAction
    match: MatchKind
    values: list[str]


class TargetingView(View, frozen=True):
    """Which visitors may click through to the offer, by what their clicks record (country, device type,
    operating system, browser) and by their parameters (`rules`); an empty list is anyone."""

    countries: list[str]
    device_types: list[str]
    operating_systems: list[str]
    browsers: list[str]
    rules: list[ParamRuleView]


def targeting_view(t: Targeting) -> TargetingView:
    return TargetingView(countries=list(t.countries), device_types=list(t.device_types),
                         operating_systems=list(t.operating_systems), browsers=list(t.browsers),
                         rules=[ParamRuleView(field=r.field, action=r.action, match=r.match, values=list(r.values))
                                for r in t.rules])  # fmt: skip


# offers


def _unique_caps(caps: Sequence[CapBody]) -> None:
    rules = [c.rule() for c in caps]
    if len(set(rules)) != len(rules):
        raise InvalidParameter("caps", "lists the same cap twice")


def _landing_url(template: object, field: str) -> str:
    """A destination or fallback URL: the macros of a click, `{click_token}` included."""
    return validate_template(template, field, DESTINATION_MACROS)


def _methods(methods: Sequence[ConversionMethod]) -> list[ConversionMethod]:
    return list(dict.fromkeys(methods))


class OfferCreate(Struct):
    advertiser_id: Id
    name: Name
    destination_url: Url
    revenue: PriceRuleBody
    payout: PriceRuleBody
    fallback_url: FallbackUrl | None = None
    status: OfferStatus = OfferStatus.ACTIVE
    visibility: Visibility = Visibility.PUBLIC
    currency: Currency = "USD"
    attribution_window_days: WindowDays = 30
    allow_multiple_conversions: bool = False
    default_status: DefaultStatus = "approved"
    caps: list[CapBody] = []
    conversion_methods: ConversionMethods = msgspec.field(default_factory=_all_methods)
    share_amount_with_partners: bool = False
    targeting: TargetingBody = msgspec.field(default_factory=TargetingBody)

    def __post_init__(self) -> None:
        self.name = parse_name(self.name)
        self.destination_url = _landing_url(self.destination_url, "destination_url")
        self.fallback_url = _landing_url(self.fallback_url, "fallback_url") if self.fallback_url else None
        self.currency = parse_currency(self.currency)
        _unique_caps(self.caps)
        self.conversion_methods = _methods(self.conversion_methods)


class OfferUpdate(Struct):
    """The fields sent change; `fallback_url: null` removes it. An offer keeps its advertiser."""

    advertiser_id: Annotated[int, msgspec.Meta(description="cannot be changed: sending it is refused")] | Unset = UNSET
    name: Name | Unset = UNSET
    destination_url: Url | Unset = UNSET
    revenue: PriceRuleBody | Unset = UNSET
    payout: PriceRuleBody | Unset = UNSET
    fallback_url: FallbackUrl | Unset | None = UNSET
    status: OfferStatus | Unset = UNSET
    visibility: Visibility | Unset = UNSET
    currency: Currency | Unset = UNSET
    attribution_window_days: WindowDays | Unset = UNSET
    allow_multiple_conversions: bool | Unset = UNSET
    default_status: DefaultStatus | Unset = UNSET
    caps: list[CapBody] | Unset = UNSET
    conversion_methods: ConversionMethods | Unset = UNSET
    share_amount_with_partners: bool | Unset = UNSET
    targeting: TargetingBody | Unset = UNSET

    def __post_init__(self) -> None:
        if self.advertiser_id is not UNSET:
            raise InvalidParameter("advertiser_id", "cannot be changed")
        if isinstance(self.name, str):
            self.name = parse_name(self.name)
        if isinstance(self.destination_url, str):
            self.destination_url = _landing_url(self.destination_url, "destination_url")
        if isinstance(self.fallback_url, str):
            self.fallback_url = _landing_url(self.fallback_url, "fallback_url") if self.fallback_url else None
        if isinstance(self.currency, str):
            self.currency = parse_currency(self.currency)
        if isinstance(self.caps, list):
            _unique_caps(self.caps)
        if isinstance(self.conversion_methods, list):
            self.conversion_methods = _methods(self.conversion_methods)


class _OfferSeen(View, frozen=True):
    """What every role that may see an offer sees of it."""

    id: int
    advertiser_id: int
    name: str
    status: OfferStatus
    visibility: Visibility
    currency: str
    attribution_window_days: int
    allow_multiple_conversions: bool
    default_status: ConversionStatus
    caps: list[CapView]
    conversion_methods: list[ConversionMethod]
    share_amount_with_partners: bool
    targeting: TargetingView
    created_at: datetime
    updated_at: datetime


class OfferAdvertiserView(_OfferSeen, frozen=True):
    """The offer as its advertiser sees it: its landing pages and what it pays, never the partners' payout."""

    destination_url: str
    fallback_url: str | None
    revenue: PriceRuleView


class OfferView(OfferAdvertiserView, frozen=True):
    """The offer as the admin sees it and webhooks carry it."""

    payout: PriceRuleView


class OfferPartnerView(_OfferSeen, frozen=True):
    """The offer as a partner sees it: its tracking link and its own payout (its partner-specific one where it
    has one); no revenue and none of the advertiser's landing pages."""

    tracking_url: str
    payout: PriceRuleView


OfferRoleView = OfferView | OfferAdvertiserView | OfferPartnerView


def _seen(o: Offer) -> dict[str, Any]:
    return {
        "id": o.id, "advertiser_id": o.advertiser_id, "name": o.name, "status": o.status,
        "visibility": o.visibility, "currency": o.currency, "attribution_window_days": o.attribution_window_days,
        "allow_multiple_conversions": o.allow_multiple_conversions, "default_status": o.default_status,
        "caps": [CapView(id=c.id, metric=c.rule.metric, period=c.rule.period, limit=c.rule.limit,
                         per_partner=c.rule.per_partner) for c in o.caps],
        "conversion_methods": [m for m in ConversionMethod if m in o.conversion_methods],
        "share_amount_with_partners": o.share_amount_with_partners, "targeting": targeting_view(o.targeting),
        "created_at": o.created_at, "updated_at": o.updated_at,
    }  # fmt: skip


def offer_view(o: Offer) -> OfferView:
    return OfferView(**_seen(o), destination_url=o.destination_url, fallback_url=o.fallback_url,
                     revenue=price_view(o.revenue, o.currency), payout=price_view(o.payout, o.currency))  # fmt: skip


def offer_advertiser_view(o: Offer) -> OfferAdvertiserView:
    return OfferAdvertiserView(**_seen(o), destination_url=o.destination_url,
                               fallback_url=o.fallback_url, revenue=price_view(o.revenue, o.currency))  # fmt: skip


def tracking_url(base_url: str, offer_id: int, partner_id: int) -> str:
    """The partner's tracking link of an offer (`GET /r/{offer_id}/{partner_id}`)."""
    return f"{base_url.rstrip('/')}/r/{offer_id}/{partner_id}"


def offer_partner_view(o: Offer, partner_id: int, payouts: Sequence[PartnerPayout], base_url: str) -> OfferPartnerView:
    """`payouts`: partner-specific payouts of the offer (those of other partners are ignored)."""
    payout = choose_payout(o, None, payouts, partner_id).rule
    return OfferPartnerView(**_seen(o), tracking_url=tracking_url(base_url, o.id, partner_id),
                            payout=price_view(payout, o.currency))  # fmt: skip


def offer_view_for(scope: Scope, o: Offer, payouts: Sequence[PartnerPayout], base_url: str) -> OfferRoleView:
    """The offer as the caller's role sees it (a partner's view needs its partner-specific payouts)."""
    if scope.role is Role.ADMIN:
        return offer_view(o)
    if scope.role is Role.ADVERTISER:
        return offer_advertiser_view(o)
    return offer_partner_view(o, _partner_of(scope), payouts, base_url)


def _partner_of(scope: Scope) -> int:
    if scope.partner_id is None:
        raise Forbidden("this partner key belongs to no partner")
    return scope.partner_id


class ApprovedForOfferData(View, frozen=True):
    """The `partner.approved_for_offer` webhook payload: the full offer and the full partner."""

    offer_id: int
    partner_id: int
    access_id: int
    approved_at: datetime
    offer: OfferData
    partner: PartnerData


def approved_for_offer_data(access: OfferAccess, offer: OfferData, partner: PartnerData) -> ApprovedForOfferData:
    return ApprovedForOfferData(offer_id=offer.id, partner_id=partner.id, access_id=access.id,
                                approved_at=access.updated_at, offer=offer, partner=partner)  # fmt: skip


# offer events


class OfferEventCreate(Struct):
    name: Name
    revenue: PriceRuleBody
    payout: PriceRuleBody
    allow_multiple_per_click: bool = False

    def __post_init__(self) -> None:
        self.name = parse_name(self.name)


class OfferEventUpdate(Struct):
    name: Name | Unset = UNSET
    revenue: PriceRuleBody | Unset = UNSET
    payout: PriceRuleBody | Unset = UNSET
    allow_multiple_per_click: bool | Unset = UNSET

    def __post_init__(self) -> None:
        if isinstance(self.name, str):
            self.name = parse_name(self.name)


#: What the advertiser's server puts in a postback URL: the click's transaction id, its postback token.
TRANSACTION_ID_PLACEHOLDER: Final = "TRANSACTION_ID"
POSTBACK_TOKEN_PLACEHOLDER: Final = "POSTBACK_TOKEN"


def postback_url(base_url: str, postback_token: str | None, event_id: int | None = None) -> str:
    """The `/postback` URL an advertiser's server calls: for a base conversion (of any of its offers), or with
    `event_id` for that event of its offer (Integr8's event postback URL). `TRANSACTION_ID` stands for the
    click's transaction id; without `postback_token`, `POSTBACK_TOKEN` stands for it. `amount`, `order_id`,
    `currency` and `adv1`..`adv5` may be appended."""
    token = POSTBACK_TOKEN_PLACEHOLDER if postback_token is None else quote(postback_token, safe="")
    url = f"{base_url.rstrip('/')}/postback?transaction_id={TRANSACTION_ID_PLACEHOLDER}&secure={token}"
    return url if event_id is None else f"{url}&event_id={event_id}"


class _OfferEventSeen(View, frozen=True):
    id: int
    offer_id: int
    name: str
    allow_multiple_per_click: bool
    created_at: datetime


class OfferEventData(_OfferEventSeen, frozen=True):
    """The event as webhooks carry it (in its offer's payload) and the console lists it: both prices."""

    revenue: PriceRuleView
    payout: PriceRuleView


class OfferEventView(OfferEventData, frozen=True):
    """The event as the admin API shows it, with its postback URL (the advertiser's token in it)."""

    postback_url: str


class OfferEventAdvertiserView(_OfferEventSeen, frozen=True):
    """The event as its advertiser sees it: its revenue, and its postback URL with `POSTBACK_TOKEN` for the
    token."""

    revenue: PriceRuleView
    postback_url: str


class OfferEventPartnerView(_OfferEventSeen, frozen=True):
    """The event's payout for this partner: its partner-specific one where it has one."""

    payout: PriceRuleView


OfferEventRoleView = OfferEventView | OfferEventAdvertiserView | OfferEventPartnerView


def _event_seen(e: OfferEvent) -> dict[str, Any]:
    return {"id": e.id, "offer_id": e.offer_id, "name": e.name, "allow_multiple_per_click": e.allow_multiple_per_click,
            "created_at": e.created_at}  # fmt: skip


def offer_event_data(e: OfferEvent, currency: str) -> OfferEventData:
    return OfferEventData(**_event_seen(e), revenue=price_view(e.revenue, currency),
                          payout=price_view(e.payout, currency))  # fmt: skip


def offer_event_view(e: OfferEvent, currency: str, base_url: str, postback_token: str | None) -> OfferEventView:
    return OfferEventView(**_event_seen(e), revenue=price_view(e.revenue, currency),
                          payout=price_view(e.payout, currency),
                          postback_url=postback_url(base_url, postback_token, e.id))  # fmt: skip


def offer_event_view_for(
    scope: Scope,
    e: OfferEvent,
    offer: Offer,
    payouts: Sequence[PartnerPayout],
    base_url: str,
    postback_token: str | None,
) -> OfferEventRoleView:
    """The event as the caller's role sees it (a partner's view needs its partner-specific payouts); the
    advertiser's `postback_token` is shown to the admin only (the caller may leave it out for other roles)."""
    if scope.role is Role.ADMIN:
        return offer_event_view(e, offer.currency, base_url, postback_token)
    if scope.role is Role.ADVERTISER:
        return OfferEventAdvertiserView(**_event_seen(e), revenue=price_view(e.revenue, offer.currency),
                                        postback_url=postback_url(base_url, None, e.id))  # fmt: skip
    payout = choose_payout(offer, e, payouts, _partner_of(scope)).rule
    return OfferEventPartnerView(**_event_seen(e), payout=price_view(payout, offer.currency))


class OfferData(OfferView, frozen=True):
    """The offer as webhooks carry it: the admin's view, its events (oldest first) and its targeting."""

    events: list[OfferEventData]


def offer_data(o: Offer, events: Sequence[OfferEvent]) -> OfferData:
    """`events`: the offer's events (others are left out)."""
    own = sorted((e for e in events if e.offer_id == o.id), key=lambda e: e.id)
    return OfferData(**_seen(o), destination_url=o.destination_url, fallback_url=o.fallback_url,
                     revenue=price_view(o.revenue, o.currency), payout=price_view(o.payout, o.currency),
                     events=[offer_event_data(e, o.currency) for e in own])  # fmt: skip


# offer access


class OfferAccessCreate(Struct):
    """A partner's access to an offer; it replaces the partner's earlier access to that offer."""

    offer_id: Id
    partner_id: Id
    status: AccessStatus = AccessStatus.APPROVED
    reason: Reason | None = None


class OfferAccessUpdate(Struct):
    status: AccessStatus | Unset = UNSET
    reason: Reason | Unset | None = UNSET


class OfferAccessView(View, frozen=True):
    id: int
    offer_id: int
    partner_id: int
    status: AccessStatus
    reason: str | None
    created_at: datetime
    updated_at: datetime


def offer_access_view(a: OfferAccess) -> OfferAccessView:
    return OfferAccessView(id=a.id, offer_id=a.offer_id, partner_id=a.partner_id, status=a.status, reason=a.reason,
                           created_at=a.created_at, updated_at=a.updated_at)  # fmt: skip


# partner-specific payouts


class PartnerPayoutCreate(Struct):
    """A partner's own payout for the offer's base conversion, or for one event; it replaces an earlier one."""

    partner_id: Id
    payout: PriceRuleBody
    event_id: Annotated[int, msgspec.Meta(ge=1, le=MAX_ID, description="absent: the base conversion")] | None = None


class PartnerPayoutView(View, frozen=True):
    id: int
    offer_id: int
    partner_id: int
    event_id: int | None
    payout: PriceRuleView
    created_at: datetime


def partner_payout_view(p: PartnerPayout, currency: str) -> PartnerPayoutView:
    return PartnerPayoutView(id=p.id, offer_id=p.offer_id, partner_id=p.partner_id, event_id=p.event_id,
                             payout=price_view(p.payout, currency), created_at=p.created_at)  # fmt: skip
