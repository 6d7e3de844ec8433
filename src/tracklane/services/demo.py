"""The demo program: an advertiser, two offers with a base conversion and two events, three partners."""

from __future__ import annotations

from dataclasses import dataclass

from tracklane.domain.caps import CapMetric, CapPeriod
from tracklane.domain.model import Advertiser, Offer, OfferEvent, Partner, PartnerStatus
from tracklane.domain.money import PriceType
from tracklane.resources.advertisers import AdvertiserCreate
from tracklane.resources.fields import Amount
from tracklane.resources.offers import CapBody, OfferCreate, OfferEventCreate, PriceRuleBody
from tracklane.resources.partners import PartnerCreate
from tracklane.services.catalog import CatalogService
from tracklane.services.ports import Page

DEMO_ADVERTISER = "Demo Advertiser (Acme Outdoor)"


@dataclass(frozen=True, slots=True)
class DemoProgram:
    advertiser: Advertiser
    offers: list[Offer]
    events: dict[int, list[OfferEvent]]
    partners: list[Partner]


async def create_demo(catalog: CatalogService, landing_base: str) -> DemoProgram:
    """Create the demo program; a second run reuses the one that exists."""
    existing = await _find_existing(catalog)
    if existing is not None:
        return existing
    advertiser = await catalog.create_advertiser(AdvertiserCreate(name=DEMO_ADVERTISER))
    landing = landing_base.rstrip("/") + "/demo/landing"
    trial = await catalog.create_offer(OfferCreate(
        advertiser_id=advertiser.id, name="Acme Pro: free trial",
        destination_url=landing + "?offer=trial&tid={transaction_id}&aff={partner_id}&s1={sub1}",
        revenue=_flat(PriceType.CPL, "12.00"), payout=_flat(PriceType.CPL, "8.00"), attribution_window_days=30,
    ))  # fmt: skip
    shop = await catalog.create_offer(OfferCreate(
        advertiser_id=advertiser.id, name="Acme Store: first order",
        destination_url=landing + "?offer=store&tid={transaction_id}&aff={partner_id}&s1={sub1}",
        revenue=PriceRuleBody(type=PriceType.CPA_CPS, amount=Amount("2.00"), percent=Amount(10)),
        payout=_share("7.5"),
        caps=[CapBody(metric=CapMetric.CONVERSIONS, period=CapPeriod.DAY, limit=500)],
    ))  # fmt: skip
    events = {
        trial.id: [
            (await catalog.create_offer_event(trial.id, OfferEventCreate(
                name="purchase", revenue=_share("30"), payout=_share("20"), allow_multiple_per_click=True,
            )))[0],
            (await catalog.create_offer_event(trial.id, OfferEventCreate(
                name="upgrade", revenue=_flat(PriceType.FIXED, "25.00"), payout=_flat(PriceType.FIXED, "15.00"),
            )))[0],
        ],
        shop.id: [],
    }  # fmt: skip
    partners = [
        await catalog.create_partner(PartnerCreate(name=name, email=email), PartnerStatus.ACTIVE)
        for name, email in (
            ("Trail Reviews Blog", "editor@trailreviews.example"),
            ("Peak Deals Newsletter", "team@peakdeals.example"),
            ("Campfire Creators", "hello@campfire.example"),
        )
    ]
    return DemoProgram(advertiser, [trial, shop], events, partners)


def _flat(price_type: PriceType, amount: str) -> PriceRuleBody:
    return PriceRuleBody(type=price_type, amount=Amount(amount))


def _share(percent: str) -> PriceRuleBody:
    return PriceRuleBody(type=PriceType.CPS, percent=Amount(percent))


async def _find_existing(catalog: CatalogService) -> DemoProgram | None:
    advertisers = [a for a in await catalog.list_advertisers(Page(limit=100)) if a.name == DEMO_ADVERTISER]
    if not advertisers:
        return None
    advertiser = advertisers[0]
    offers = sorted(
        (o for o in await catalog.list_offers(Page(limit=100)) if o.advertiser_id == advertiser.id),
        key=lambda o: o.id,
    )
    events = {o.id: await catalog.list_offer_events(o.id) for o in offers}
    partners = sorted(await catalog.list_partners(Page(limit=3, filters={"status": "active"})), key=lambda p: p.id)
    return DemoProgram(advertiser, offers, events, partners)
