"""The demo program: an advertiser, two offers with a base conversion and two events, three partners."""

from __future__ import annotations

from dataclasses import dataclass

from tracklane.domain.model import Advertiser, Offer, OfferEvent, Partner, PartnerStatus
from tracklane.services.catalog import CatalogService

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
    advertiser = await catalog.create_advertiser({"name": DEMO_ADVERTISER})
    landing = landing_base.rstrip("/") + "/demo/landing"
    trial = await catalog.create_offer({
        "advertiser_id": advertiser.id, "name": "Acme Pro: free trial",
        "destination_url": landing + "?offer=trial&tid={transaction_id}&aff={partner_id}&s1={sub1}",
        "revenue": {"type": "cpl", "amount": "12.00"}, "payout": {"type": "cpl", "amount": "8.00"},
        "attribution_window_days": 30,
    })  # fmt: skip
    shop = await catalog.create_offer({
        "advertiser_id": advertiser.id, "name": "Acme Store: first order",
        "destination_url": landing + "?offer=store&tid={transaction_id}&aff={partner_id}&s1={sub1}",
        "revenue": {"type": "cpa_cps", "amount": "2.00", "percent": "10"},
        "payout": {"type": "cps", "percent": "7.5"},
        "caps": [{"metric": "conversions", "period": "day", "limit": 500}],
    })  # fmt: skip
    events = {
        trial.id: [
            await catalog.create_offer_event(trial.id, {
                "name": "purchase", "revenue": {"type": "cps", "percent": "30"},
                "payout": {"type": "cps", "percent": "20"}, "allow_multiple_per_click": True,
            }),
            await catalog.create_offer_event(trial.id, {
                "name": "upgrade", "revenue": {"type": "fixed", "amount": "25.00"},
                "payout": {"type": "fixed", "amount": "15.00"},
            }),
        ],
        shop.id: [],
    }  # fmt: skip
    partners = [
        await catalog.create_partner({"name": name, "email": email}, PartnerStatus.ACTIVE)
        for name, email in (
            ("Trail Reviews Blog", "editor@trailreviews.example"),
            ("Peak Deals Newsletter", "team@peakdeals.example"),
            ("Campfire Creators", "hello@campfire.example"),
        )
    ]
    return DemoProgram(advertiser, [trial, shop], events, partners)


async def _find_existing(catalog: CatalogService) -> DemoProgram | None:
    from tracklane.services.ports import Page

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
