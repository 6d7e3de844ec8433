"""The catalogue: advertisers, partners, offers with caps, offer events, access, partner payouts and API keys."""

from __future__ import annotations

from decimal import Decimal

import pytest

from tests.contract.builders import NOW, at, body
from tests.contract.conftest import Store
from tracklane.domain.caps import CapMetric, CapPeriod, CapRule, counter_key
from tracklane.domain.errors import DuplicateKey
from tracklane.domain.model import (
    AccessStatus,
    Advertiser,
    ConversionMethod,
    ConversionStatus,
    Offer,
    OfferStatus,
    Partner,
    PartnerStatus,
    Role,
    Visibility,
)
from tracklane.domain.money import PriceRule, PriceType
from tracklane.resources.advertisers import AdvertiserUpdate
from tracklane.resources.offers import (
    OfferAccessCreate,
    OfferAccessUpdate,
    OfferCreate,
    OfferEventCreate,
    OfferEventUpdate,
    OfferUpdate,
    PartnerPayoutCreate,
)
from tracklane.resources.partners import PartnerUpdate
from tracklane.services.ports import Page

CPA = {"type": "cpa", "amount": "10.00"}
CPS = {"type": "cps", "percent": "12.5"}


def _advertiser(store: Store, token: str = "token-a") -> Advertiser:
    return store.write(lambda repo: repo.insert_advertiser("Acme", token, NOW))


def _partner(store: Store, email: str = "p@example.com", status: str = "active") -> Partner:
    return store.write(lambda repo: repo.insert_partner("Pat", email, status, NOW))


def _offer(store: Store, advertiser_id: int, **fields: object) -> Offer:
    sent = body(OfferCreate, **{"advertiser_id": advertiser_id, "name": "Shoes",
                                "destination_url": "https://shop.example/?t={transaction_id}",
                                "revenue": CPA, "payout": CPS, **fields})  # fmt: skip
    return store.write(lambda repo: repo.insert_offer(sent, NOW))


def test_an_advertiser_round_trips_and_changes(store: Store) -> None:
    advertiser = _advertiser(store)
    assert (advertiser.name, advertiser.status, advertiser.postback_token) == ("Acme", "active", "token-a")
    assert store.read(lambda repo: repo.get_advertiser(advertiser.id)) == advertiser
    assert store.read(lambda repo: repo.find_advertiser_by_token("token-a")) == advertiser
    assert store.read(lambda repo: repo.find_advertiser_by_token("other")) is None
    changes = body(AdvertiserUpdate, status="inactive", rotate_postback_token=True)
    store.write(lambda repo: repo.update_advertiser(advertiser.id, changes, "token-b", at(1)))
    changed = store.read(lambda repo: repo.get_advertiser(advertiser.id))
    assert changed is not None
    assert (changed.name, changed.status, changed.postback_token) == ("Acme", "inactive", "token-b")
    assert (changed.created_at, changed.updated_at) == (NOW, at(1))
    renamed = body(AdvertiserUpdate, name="Acme 2")
    store.write(lambda repo: repo.update_advertiser(advertiser.id, renamed, None, at(2)))
    assert store.read(lambda repo: repo.find_advertiser_by_token("token-b")) == Advertiser(
        advertiser.id, "Acme 2", "token-b", "inactive", NOW, at(2)
    )
    assert store.read(lambda repo: repo.get_advertiser(advertiser.id + 100)) is None


def test_a_postback_token_is_unique(store: Store) -> None:
    _advertiser(store)
    with pytest.raises(DuplicateKey) as refused:
        _advertiser(store)
    assert refused.value.field == "postback_token_hash"  # tokens are unique by their lookup hash (sealed at rest)


def test_partners_round_trip_page_filter_and_keep_emails_unique(store: Store) -> None:
    made = [_partner(store, f"p{i}@example.com", "active" if i % 2 else "pending") for i in range(4)]
    assert store.read(lambda repo: repo.get_partner(made[0].id)) == made[0]
    assert made[0].status is PartnerStatus.PENDING
    assert store.read(lambda repo: repo.find_partner_by_email("p1@example.com")) == made[1]
    active = store.read(lambda repo: repo.list_partners(Page(filters={"status": "active"})))
    assert active == [made[3], made[1]]
    assert store.read(lambda repo: repo.list_partners(Page(limit=1, cursor=made[3].id))) == [made[2]]
    store.write(lambda repo: repo.update_partner(made[0].id, body(PartnerUpdate, email="NEW@example.com"), at(1)))
    changed = store.read(lambda repo: repo.get_partner(made[0].id))
    assert changed is not None and (changed.email, changed.name, changed.updated_at) == (
        "new@example.com",
        "Pat",
        at(1),
    )
    with pytest.raises(DuplicateKey) as refused:
        store.write(lambda repo: repo.update_partner(made[1].id, body(PartnerUpdate, email="new@example.com"), NOW))
    assert refused.value.field == "email"
    with pytest.raises(DuplicateKey):
        _partner(store, "p2@example.com")


def test_an_offer_round_trips_with_its_caps_methods_and_prices(store: Store) -> None:
    advertiser = _advertiser(store)
    caps = [
        {"metric": "conversions", "period": "day", "limit": 5},
        {"metric": "clicks", "period": "total", "limit": 0, "per_partner": True},
    ]
    offer = _offer(store, advertiser.id, caps=caps, conversion_methods=["segment", "postback", "segment"],
                   share_amount_with_partners=True, default_status="pending", visibility="private",
                   fallback_url="https://shop.example/other", attribution_window_days=7)  # fmt: skip
    assert store.read(lambda repo: repo.get_offer(offer.id)) == offer
    assert (offer.advertiser_id, offer.name, offer.currency, offer.status) == (
        advertiser.id,
        "Shoes",
        "USD",
        OfferStatus.ACTIVE,
    )
    assert (offer.visibility, offer.default_status, offer.attribution_window_days) == (
        Visibility.PRIVATE,
        ConversionStatus.PENDING,
        7,
    )
    assert offer.revenue == PriceRule(PriceType.CPA, Decimal("10.00"))
    assert offer.payout == PriceRule(PriceType.CPS, None, Decimal("12.5"))
    assert [c.rule for c in offer.caps] == [CapRule(CapMetric.CONVERSIONS, CapPeriod.DAY, 5),
                                            CapRule(CapMetric.CLICKS, CapPeriod.TOTAL, 0, True)]  # fmt: skip
    assert offer.conversion_methods == frozenset({ConversionMethod.SEGMENT, ConversionMethod.POSTBACK})
    assert offer.share_amount_with_partners is True
    assert offer.fallback_url == "https://shop.example/other"
    plain = _offer(store, advertiser.id)
    assert plain.conversion_methods == frozenset(ConversionMethod) and plain.caps == ()
    assert (plain.share_amount_with_partners, plain.fallback_url) == (False, None)


def test_an_offer_needs_its_advertiser(store: Store) -> None:
    with pytest.raises(store.integrity_error):
        _offer(store, 4242)


def test_an_offer_change_keeps_the_ids_of_unchanged_caps(store: Store) -> None:
    day = {"metric": "conversions", "period": "day", "limit": 5}
    week = {"metric": "clicks", "period": "week", "limit": 50}
    offer = _offer(store, _advertiser(store).id, caps=[day, week])
    kept = offer.caps[0]
    changes = body(OfferUpdate, caps=[day, {**week, "limit": 60}], name="Boots", fallback_url=None,
                   payout={"type": "fixed", "amount": "1.5"})  # fmt: skip
    store.write(lambda repo: repo.update_offer(offer.id, changes, at(1)))
    changed = store.read(lambda repo: repo.get_offer(offer.id))
    assert changed is not None
    assert changed.caps[0] == kept and changed.caps[1].rule.limit == 60
    assert (changed.name, changed.payout, changed.updated_at) == ("Boots", PriceRule(PriceType.FIXED, Decimal("1.5")),
                                                                  at(1))  # fmt: skip
    store.write(lambda repo: repo.update_offer(offer.id, body(OfferUpdate, status="paused"), at(2)))
    paused = store.read(lambda repo: repo.get_offer(offer.id))
    assert paused is not None and paused.caps == changed.caps and paused.status is OfferStatus.PAUSED
    store.write(lambda repo: repo.update_offer(offer.id, body(OfferUpdate, caps=[]), at(3)))
    assert store.read(lambda repo: repo.get_offer(offer.id)).caps == ()  # type: ignore[union-attr]


def test_offers_page_and_show_partners_the_private_ones_they_were_approved_for(store: Store) -> None:
    advertiser = _advertiser(store)
    partner, other = _partner(store), _partner(store, "o@example.com")
    public = _offer(store, advertiser.id)
    gated = _offer(store, advertiser.id, visibility="approval_required")
    approved, refused, others = (_offer(store, advertiser.id, visibility="private") for _ in range(3))
    _offer(store, advertiser.id, visibility="private")
    for offer_id, partner_id, status in ((approved.id, partner.id, "approved"), (refused.id, partner.id, "rejected"),
                                         (others.id, other.id, "approved")):  # fmt: skip
        access = OfferAccessCreate(offer_id=offer_id, partner_id=partner_id, status=AccessStatus(status))
        store.write(lambda repo, access=access: repo.save_access(access, NOW))  # type: ignore[misc]
    visible = store.read(lambda repo: repo.list_offers_visible_to(partner.id, Page()))
    assert [o.id for o in visible] == [approved.id, gated.id, public.id]
    first = store.read(lambda repo: repo.list_offers_visible_to(partner.id, Page(limit=1, cursor=approved.id)))
    assert [o.id for o in first] == [gated.id]
    assert len(store.read(lambda repo: repo.list_offers(Page()))) == 6
    assert store.read(lambda repo: repo.list_offers(Page(filters={"visibility": "public"}))) == [public]


def test_offer_events_round_trip_change_and_keep_names_unique_per_offer(store: Store) -> None:
    advertiser = _advertiser(store)
    offer, other = _offer(store, advertiser.id), _offer(store, advertiser.id)
    sent = body(OfferEventCreate, name="upsell", revenue=CPA, payout={"type": "fixed", "amount": "2"})
    first = store.write(lambda repo: repo.insert_offer_event(offer.id, sent, NOW))
    second = store.write(
        lambda repo: repo.insert_offer_event(
            offer.id,
            body(OfferEventCreate, name="renewal", revenue=CPA, payout=CPA, allow_multiple_per_click=True),
            NOW,
        )
    )
    store.write(lambda repo: repo.insert_offer_event(other.id, sent, NOW))  # the same name on another offer
    assert store.read(lambda repo: repo.list_offer_events(offer.id)) == [first, second]
    assert (first.name, first.offer_id, first.allow_multiple_per_click, first.created_at) == (
        "upsell",
        offer.id,
        False,
        NOW,
    )
    assert first.payout == PriceRule(PriceType.FIXED, Decimal(2)) and second.allow_multiple_per_click
    changes = body(OfferEventUpdate, name="upgrade", payout=CPS)
    store.write(lambda repo: repo.update_offer_event(first.id, changes))
    changed = store.read(lambda repo: repo.list_offer_events(offer.id))[0]
    assert (changed.name, changed.payout, changed.revenue) == (
        "upgrade",
        PriceRule(PriceType.CPS, None, Decimal("12.5")),
        first.revenue,
    )
    with pytest.raises(DuplicateKey) as refused:
        store.write(
            lambda repo: repo.insert_offer_event(
                offer.id, body(OfferEventCreate, name="renewal", revenue=CPA, payout=CPA), NOW
            )
        )
    assert refused.value.field == "name"


def test_access_is_saved_once_per_offer_and_partner_and_changes(store: Store) -> None:
    offer = _offer(store, _advertiser(store).id)
    partner = _partner(store)
    asked = OfferAccessCreate(offer_id=offer.id, partner_id=partner.id, status=AccessStatus.REQUESTED)
    first = store.write(lambda repo: repo.save_access(asked, NOW))
    assert store.read(lambda repo: repo.get_access(offer.id, partner.id)) == first
    assert store.read(lambda repo: repo.get_access_by_id(first.id)) == first
    assert store.read(lambda repo: repo.get_access(offer.id, partner.id + 1)) is None
    refusal = OfferAccessCreate(offer_id=offer.id, partner_id=partner.id, status=AccessStatus.REJECTED, reason="spam")
    again = store.write(lambda repo: repo.save_access(refusal, at(1)))
    assert (again.id, again.status, again.reason, again.created_at, again.updated_at) == (
        first.id,
        AccessStatus.REJECTED,
        "spam",
        NOW,
        at(1),
    )
    changes = body(OfferAccessUpdate, status="approved", reason=None)
    store.write(lambda repo: repo.update_access(first.id, changes, at(2)))
    changed = store.read(lambda repo: repo.get_access_by_id(first.id))
    assert changed is not None and (changed.status, changed.reason, changed.updated_at) == (
        AccessStatus.APPROVED,
        None,
        at(2),
    )
    assert store.read(lambda repo: repo.list_access(Page(filters={"partner_id": partner.id}))) == [changed]
    with pytest.raises(store.integrity_error):
        store.write(
            lambda repo: repo.save_access(OfferAccessCreate(offer_id=offer.id, partner_id=partner.id + 100), NOW)
        )


def test_a_partner_payout_replaces_the_earlier_one_for_its_offer_and_event(store: Store) -> None:
    offer = _offer(store, _advertiser(store).id)
    partner = _partner(store)
    event = store.write(
        lambda repo: repo.insert_offer_event(
            offer.id, body(OfferEventCreate, name="upsell", revenue=CPA, payout=CPA), NOW
        )
    )

    def payout(amount: str, event_id: int | None = None) -> PartnerPayoutCreate:
        return body(PartnerPayoutCreate, partner_id=partner.id, event_id=event_id,
                    payout={"type": "cpa", "amount": amount})  # fmt: skip

    base = store.write(lambda repo: repo.insert_partner_payout(offer.id, payout("1"), NOW))
    on_event = store.write(lambda repo: repo.insert_partner_payout(offer.id, payout("2", event.id), NOW))
    newer = store.write(lambda repo: repo.insert_partner_payout(offer.id, payout("3"), at(1)))
    assert store.read(lambda repo: repo.list_partner_payouts(offer.id)) == [on_event, newer]
    assert (newer.partner_id, newer.event_id, newer.payout, newer.created_at) == (
        partner.id,
        None,
        PriceRule(PriceType.CPA, Decimal(3)),
        at(1),
    )
    assert base.id not in {on_event.id, newer.id}
    assert store.write(lambda repo: repo.delete_partner_payout(offer.id + 1, newer.id)) is False
    assert store.write(lambda repo: repo.delete_partner_payout(offer.id, newer.id)) is True
    assert store.write(lambda repo: repo.delete_partner_payout(offer.id, newer.id)) is False
    assert store.read(lambda repo: repo.list_partner_payouts(offer.id)) == [on_event]


def test_api_keys_are_found_by_hash_until_revoked(store: Store) -> None:
    partner = _partner(store)
    admin = store.write(lambda repo: repo.insert_api_key("admin", None, None, "h" * 64, "tlk_abc", NOW))
    own = store.write(lambda repo: repo.insert_api_key("partner", None, partner.id, "k" * 64, "tlk_def", NOW))
    assert (own.role, own.partner_id, own.advertiser_id, own.prefix) == (Role.PARTNER, partner.id, None, "tlk_def")
    assert store.read(lambda repo: repo.find_api_key("k" * 64)) == own
    assert store.read(lambda repo: repo.list_api_keys(Page())) == [own, admin]
    assert store.write(lambda repo: repo.revoke_api_key(own.id, at(1))) is True
    assert store.write(lambda repo: repo.revoke_api_key(own.id, at(2))) is False
    assert store.read(lambda repo: repo.find_api_key("k" * 64)) is None
    assert store.read(lambda repo: repo.list_api_keys(Page())) == [admin]
    with pytest.raises(DuplicateKey):
        store.write(lambda repo: repo.insert_api_key("admin", None, None, "h" * 64, "tlk_xyz", NOW))


def test_a_replaced_cap_counts_from_zero(store: Store) -> None:
    week = {"metric": "clicks", "period": "week", "limit": 1}
    offer = _offer(store, _advertiser(store).id, caps=[week])
    old = counter_key(offer.caps[0], 1, NOW)
    assert store.write(lambda repo: repo.take_caps([(old, 1)])) is True
    store.write(lambda repo: repo.update_offer(offer.id, body(OfferUpdate, caps=[{**week, "limit": 2}]), at(1)))
    changed = store.read(lambda repo: repo.get_offer(offer.id))
    assert changed is not None
    # (SQLite may hand the deleted cap's id to the new one: its counters are deleted with the cap.)
    new = counter_key(changed.caps[0], 1, at(1))
    assert [store.write(lambda repo: repo.take_caps([(new, 2)])) for _ in range(3)] == [True, True, False]
