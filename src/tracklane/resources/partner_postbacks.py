"""Partner postbacks: the bodies that register and change one, the postback as shown (the same to the admin
and to its partner), and the conversion as a partner postback carries it.

A partner postback leaves the process towards the partner, so what it carries is the partner's view of the
conversion (`PostbackConversion`): a type with no revenue, advertiser or `adv1`..`adv5` field at all, and
with the sale amount only where the offer shares it (`PostbackConversionWithAmount`). Its fields are the
values the URL's macros expand to and, for `POST`, the JSON body. A template may name only those macros:
the others are refused when it is saved.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated

import msgspec

from tracklane.domain.errors import InvalidParameter
from tracklane.domain.ids import MAX_ID
from tracklane.domain.macros import refuse_partner_hidden, refuse_unshared_amount, validate_template
from tracklane.domain.model import Click, Conversion, Offer
from tracklane.domain.money import format_money
from tracklane.domain.partner_postbacks import (
    MAX_DELAY_SECONDS,
    MAX_SUCCESS_TEXT,
    FiresOn,
    FiringStatus,
    PartnerPostback,
    PostbackStatus,
)
from tracklane.resources.fields import UNSET, Id, Struct, Unset, View

#: Why a postback for every offer may not name `{amount}`.
GLOBAL_AMOUNT = ("a postback for every offer also fires for offers that do not share the sale amount with "
                 "partners; give the offer_id of one offer that shares it (share_amount_with_partners)")  # fmt: skip

PostbackUrl = Annotated[str, msgspec.Meta(
    min_length=1, max_length=4096,
    description="http(s) URL template; macros only in the path and the query, and only those a partner may see "
                "(never {revenue}, {advertiser_id}, {adv1}..{adv5}; {amount} only with the offer_id of an offer "
                "that shares the sale amount)",
    examples=["https://track.partner.example/pb?click={transaction_id}&payout={payout}"],
)]  # fmt: skip
OwnerId = Annotated[int, msgspec.Meta(
    ge=1, le=MAX_ID,
    description="whose conversions fire it: required with an admin key; a partner key may leave it out "
                "(its own partner) and may give only its own id",
)]  # fmt: skip
OfferId = Annotated[int, msgspec.Meta(ge=1, le=MAX_ID, description="one offer only; null or absent: every offer")]
Method = Annotated[str, msgspec.Meta(
    description="GET, or POST with the conversion as a JSON body (any letter case)",
    extra_json_schema={"pattern": "^(?:[Gg][Ee][Tt]|[Pp][Oo][Ss][Tt])$"}, examples=["GET"],
)]  # fmt: skip
DelaySeconds = Annotated[int, msgspec.Meta(ge=0, le=MAX_DELAY_SECONDS,
                                           description="wait this long before the first attempt")]  # fmt: skip
FireStatus = Annotated[FiringStatus, msgspec.Meta(
    description="approved (default): once, when the conversion is or becomes approved; rejected: once, when it "
                "is or becomes rejected; any: when it is recorded, whatever its status, and on each change of status",
)]  # fmt: skip
SuccessText = Annotated[str, msgspec.Meta(
    min_length=1, max_length=MAX_SUCCESS_TEXT,
    description="besides a 2xx, success needs this text in the first 8 KB of the answer",
)]  # fmt: skip


def _template(url: str) -> str:
    url = validate_template(url, "url")
    refuse_partner_hidden(url, "url")
    return url


def _method(method: str) -> str:
    if method.upper() not in ("GET", "POST"):
        raise InvalidParameter("method", "must be GET or POST")
    return method.upper()


class PartnerPostbackCreate(Struct):
    url: PostbackUrl
    partner_id: OwnerId | None = None
    offer_id: OfferId | None = None
    on: FiresOn = FiresOn.CONVERSION
    fire_status: FireStatus = FiringStatus.APPROVED
    method: Method = "GET"
    delay_seconds: DelaySeconds = 0
    success_body_contains: SuccessText | None = None

    def __post_init__(self) -> None:
        self.url = _template(self.url)
        if self.offer_id is None:
            refuse_unshared_amount(self.url, "url", GLOBAL_AMOUNT)
        self.method = _method(self.method)


class PartnerPostbackUpdate(Struct):
    partner_id: Annotated[int | None, msgspec.Meta(description="cannot be changed (a 400)")] | Unset = UNSET
    url: PostbackUrl | Unset = UNSET
    offer_id: OfferId | Unset | None = UNSET
    on: FiresOn | Unset = UNSET
    fire_status: FireStatus | Unset = UNSET
    method: Method | Unset = UNSET
    delay_seconds: DelaySeconds | Unset = UNSET
    success_body_contains: SuccessText | Unset | None = UNSET
    status: (
        Annotated[
            PostbackStatus,
            msgspec.Meta(description="active re-activates a deactivated postback (its failure streak starts again)"),
        ]
        | Unset
    ) = UNSET

    def __post_init__(self) -> None:
        if self.partner_id is not UNSET:
            raise InvalidParameter("partner_id", "cannot be changed")
        if isinstance(self.url, str):
            self.url = _template(self.url)
        if isinstance(self.method, str):
            self.method = _method(self.method)


class PartnerPostbackView(View, frozen=True):
    id: Id
    partner_id: Id
    offer_id: Id | None
    url: str
    on: FiresOn
    fire_status: FiringStatus
    method: str
    delay_seconds: int
    success_body_contains: str | None
    status: PostbackStatus
    deactivated_reason: str | None
    failure_count: int
    created_at: datetime
    updated_at: datetime


def partner_postback_view(p: PartnerPostback) -> PartnerPostbackView:
    return PartnerPostbackView(
        id=p.id, partner_id=p.partner_id, offer_id=p.offer_id, url=p.url, on=p.on, fire_status=p.fire_status,
        method=p.method,
        delay_seconds=p.delay_seconds, success_body_contains=p.success_body_contains, status=p.status,
        deactivated_reason=p.deactivated_reason, failure_count=p.failure_count, created_at=p.created_at,
        updated_at=p.updated_at,
    )  # fmt: skip


class PostbackConversion(View, frozen=True):
    """A conversion or event as its partner's postbacks carry it: each field is a macro's value (a string,
    or null: the macro expands to nothing), and together they are the `POST` body. Money is a decimal
    string in the currency's places; `timestamp` is Unix seconds of the conversion."""

    transaction_id: str
    offer_id: str
    partner_id: str
    sub1: str | None
    sub2: str | None
    sub3: str | None
    sub4: str | None
    sub5: str | None
    source_id: str | None
    event_id: str | None
    event_name: str | None
    conversion_id: str
    payout: str | None
    currency: str
    order_id: str | None
    status: str
    timestamp: str | None


class PostbackConversionWithAmount(PostbackConversion, frozen=True):
    """The same, for an offer that shares the sale amount with partners."""

    amount: str | None


def postback_conversion(conversion: Conversion, click: Click | None, offer: Offer) -> PostbackConversion:
    """The partner's view of a conversion of `offer` (with the amount only if the offer shares it)."""

    def money(value: Decimal | None) -> str | None:
        return None if value is None else format_money(value, conversion.currency)

    subs = click.subs if click is not None else (None,) * 5
    created = conversion.created_at
    shown = PostbackConversion(
        transaction_id=conversion.transaction_id, offer_id=str(conversion.offer_id),
        partner_id=str(conversion.partner_id), sub1=subs[0], sub2=subs[1], sub3=subs[2], sub4=subs[3], sub5=subs[4],
        source_id=click.source_id if click is not None else None,
        event_id=None if conversion.event_id is None else str(conversion.event_id), event_name=conversion.event_name,
        conversion_id=str(conversion.id), payout=money(conversion.payout), currency=conversion.currency,
        order_id=conversion.order_id, status=conversion.status.value,
        timestamp=None if created is None else str(int(created.timestamp())),
    )  # fmt: skip
    if not offer.share_amount_with_partners:
        return shown
    return PostbackConversionWithAmount(**msgspec.structs.asdict(shown), amount=money(conversion.amount))


#: The sample values a postback's test carries (the ids and money the partner's URL would get, made up).
SAMPLE_TRANSACTION_ID = "0" * 32
SAMPLE_PAYOUT = Decimal("1.00")
SAMPLE_AMOUNT = Decimal("10.00")
SAMPLE_CURRENCY = "USD"


def sample_conversion(postback: PartnerPostback, offer: Offer | None, now: datetime) -> PostbackConversion:
    """What a test of `postback` carries: the partner's view of a made-up approved conversion (an event for a
    postback that fires on events only) of its offer, in that offer's currency (USD for a postback of every
    offer), with the amount only where the offer shares it, like a real one."""
    currency = offer.currency if offer is not None else SAMPLE_CURRENCY
    event = postback.on is FiresOn.EVENT
    shown = PostbackConversion(
        transaction_id=SAMPLE_TRANSACTION_ID, offer_id=str(postback.offer_id or 0), partner_id=str(postback.partner_id),
        sub1="test_sub1", sub2="test_sub2", sub3="test_sub3", sub4="test_sub4", sub5="test_sub5",
        source_id="test_source", event_id="0" if event else None, event_name="test_event" if event else None,
        conversion_id="0", payout=format_money(SAMPLE_PAYOUT, currency), currency=currency, order_id="TEST-ORDER",
        status="approved", timestamp=str(int(now.timestamp())),
    )  # fmt: skip
    if offer is None or not offer.share_amount_with_partners:
        return shown
    return PostbackConversionWithAmount(**msgspec.structs.asdict(shown), amount=format_money(SAMPLE_AMOUNT, currency))


def macro_values(shown: PostbackConversion) -> dict[str, str | None]:
    """The value of each macro a partner postback may name: the fields of the partner's view, by name."""
    return msgspec.structs.asdict(shown)
