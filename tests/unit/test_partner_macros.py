"""The partner's view of a conversion is exactly the partner-visible macro set: no revenue, advertiser or adv
field exists on it, and the amount only where the offer shares it."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal

import msgspec
import pytest

from tracklane.domain.errors import InvalidParameter
from tracklane.domain.macros import CATALOGUE, PARTNER_HIDDEN, expand, partner_macros
from tracklane.domain.model import (
    Click,
    ClickDevice,
    Conversion,
    ConversionStatus,
    Offer,
    OfferStatus,
    Origin,
    Visibility,
)
from tracklane.domain.money import PriceRule, PriceType
from tracklane.resources.decoding import decode
from tracklane.resources.partner_postbacks import (
    PartnerPostbackCreate,
    PartnerPostbackUpdate,
    PostbackConversion,
    PostbackConversionWithAmount,
    macro_values,
    postback_conversion,
)

NOW = datetime(2026, 11, 23, 10, 41, 7, tzinfo=UTC)
OFFER = Offer(
    id=1, advertiser_id=7, name="Shop", destination_url="https://shop.example/", fallback_url=None,
    status=OfferStatus.ACTIVE, visibility=Visibility.PUBLIC, currency="USD", attribution_window_days=30,
    revenue=PriceRule(PriceType.CPA, Decimal("37.31")), payout=PriceRule(PriceType.CPA, Decimal("11.17")),
    allow_multiple_conversions=False, default_status=ConversionStatus.APPROVED, created_at=NOW, updated_at=NOW,
)  # fmt: skip
CLICK = Click(
    id=5, transaction_id="a" * 32, offer_id=1, partner_id=3, advertiser_id=7, subs=("s1", None, None, None, "s5"),
    source_id="news", ip=None, user_agent=None, device=ClickDevice(), country=None, referrer=None,
    verdict="accepted", reject_reason=None, revenue=Decimal(0), payout=Decimal(0), created_at=NOW,
)  # fmt: skip
CONVERSION = Conversion(
    id=42, transaction_id="a" * 32, click_id=5, offer_id=1, partner_id=3, advertiser_id=7, event_id=None,
    event_name=None, status=ConversionStatus.APPROVED, status_reason=None, revenue=Decimal("37.31"),
    payout=Decimal("11.17"), revenue_type="cpa", payout_type="cpa", amount=Decimal("120.5"), currency="USD",
    order_id="A-1", advs=("adv-secret", None, None, None, None), origin=Origin.POSTBACK, created_at=NOW,
)  # fmt: skip


def test_the_views_are_the_partner_visible_macro_sets() -> None:
    assert set(PostbackConversion.__struct_fields__) == partner_macros(amount_shared=False)
    assert set(PostbackConversionWithAmount.__struct_fields__) == partner_macros(amount_shared=True)
    assert partner_macros(amount_shared=True) == CATALOGUE - PARTNER_HIDDEN
    assert {"revenue", "advertiser_id", "adv1", "adv5"} <= PARTNER_HIDDEN


def test_a_conversion_shown_to_its_partner_has_no_revenue_advertiser_or_adv() -> None:
    shown = postback_conversion(CONVERSION, CLICK, OFFER)
    assert type(shown) is PostbackConversion
    body = msgspec.json.encode(shown).decode()
    assert "37.31" not in body and "adv-secret" not in body and "120.50" not in body
    values = macro_values(shown)
    assert (values["payout"], values["sub1"], values["conversion_id"], values["timestamp"]) == (
        "11.17",
        "s1",
        "42",
        str(int(NOW.timestamp())),
    )
    every = "https://p.example/?" + "&".join(f"{name}={{{name}}}" for name in sorted(CATALOGUE))
    expanded = expand(every, values)
    assert "revenue=&" in expanded and "adv1=&" in expanded and "advertiser_id=&" in expanded
    assert "37.31" not in expanded and "adv-secret" not in expanded and "120.50" not in expanded


def test_the_amount_is_shown_only_where_the_offer_shares_it() -> None:
    shown = postback_conversion(CONVERSION, CLICK, replace(OFFER, share_amount_with_partners=True))
    assert isinstance(shown, PostbackConversionWithAmount) and shown.amount == "120.50"
    assert msgspec.json.decode(msgspec.json.encode(shown))["amount"] == "120.50"


@pytest.mark.parametrize("macro", sorted(PARTNER_HIDDEN))
def test_a_hidden_macro_is_refused_by_both_bodies(macro: str) -> None:
    raw = msgspec.json.encode({"url": f"https://p.example/pb?x={{{macro}}}", "offer_id": 1})
    for body_type in (PartnerPostbackCreate, PartnerPostbackUpdate):
        with pytest.raises(InvalidParameter) as refused:
            decode(raw, body_type)
        assert refused.value.field == "url" and "{" + macro + "}" in refused.value.detail


def test_amount_on_a_postback_for_every_offer_is_refused_with_the_reason() -> None:
    with pytest.raises(InvalidParameter) as refused:
        decode(b'{"url": "https://p.example/pb?a={amount}"}', PartnerPostbackCreate)
    assert refused.value.field == "url" and "{amount}" in refused.value.detail and "offer_id" in refused.value.detail
    bound = decode(b'{"url": "https://p.example/pb?a={amount}", "offer_id": 1, "method": "post"}',
                   PartnerPostbackCreate)  # fmt: skip
    assert bound.method == "POST"
