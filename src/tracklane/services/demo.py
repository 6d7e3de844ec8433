"""The demo programs: the small one `serve --demo` prints links for (an advertiser, two offers with a base
conversion and two events, three partners), and the network `tracklane demo --clicks` fills with past traffic
(`services/demo_traffic.py`): three advertisers (offers in USD, EUR and JPY), nine offers with events, caps,
restricted visibility and a partner-specific payout, eighteen partners in every status (three sign-ups waiting
for review), offer access in every status, a Segment source, and the network's first admin user.

Everything is created through the catalogue, sources and users services, so it follows their rules and
announces itself like any change. A second run finds what exists (by name, e-mail address) and reuses it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tracklane.domain.caps import CapMetric, CapPeriod
from tracklane.domain.errors import NotFound
from tracklane.domain.model import (
    AccessStatus,
    Advertiser,
    LinkKind,
    Offer,
    OfferEvent,
    Partner,
    PartnerStatus,
    Role,
    User,
    UserStatus,
    Visibility,
)
from tracklane.domain.money import PriceType
from tracklane.domain.segment.model import Source
from tracklane.domain.traffic import RuleKind, TrafficBlock, TrafficVariable
from tracklane.resources.advertisers import AdvertiserCreate
from tracklane.resources.fields import Amount
from tracklane.resources.offers import (
    CapBody,
    OfferAccessCreate,
    OfferCreate,
    OfferEventCreate,
    PartnerPayoutCreate,
    PriceRuleBody,
)
from tracklane.resources.partners import PartnerCreate, PartnerUpdate, Verdict, decided_by_system
from tracklane.resources.sources import SourceCreate
from tracklane.resources.traffic import TrafficRuleCreate
from tracklane.resources.users import UserCreate
from tracklane.services.catalog import CatalogService
from tracklane.services.ports import Page
from tracklane.services.sources import SourceService
from tracklane.services.traffic import TrafficService
from tracklane.services.users import UserService

DEMO_ADVERTISER = "Demo Advertiser (Acme Outdoor)"
TRAVEL_ADVERTISER = "Nordlicht Reisen GmbH"
MOBILE_ADVERTISER = "Sakura Mobile K.K."
DEMO_OFFERS = ("Acme Pro: free trial", "Acme Store: first order")
DEMO_PARTNERS = (
    ("Trail Reviews Blog", "editor@trailreviews.example"),
    ("Peak Deals Newsletter", "team@peakdeals.example"),
    ("Campfire Creators", "hello@campfire.example"),
)
DEMO_SOURCE = "Acme web and app (analytics.js, analytics-node)"
DEMO_ADMIN = "admin@demo.test"
LISTED = 500  # the demo's catalogue is far smaller: one page of each list holds it


@dataclass(frozen=True, slots=True)
class DemoProgram:
    advertiser: Advertiser
    offers: list[Offer]
    events: dict[int, list[OfferEvent]]
    partners: list[Partner]


@dataclass(frozen=True, slots=True)
class DemoNetwork:
    """The program of `tracklane demo --clicks`: everything by name (partners by e-mail address)."""

    program: DemoProgram  # the small program within it, whose links `serve --demo` prints
    advertisers: dict[str, Advertiser]
    offers: dict[str, Offer]
    events: dict[int, list[OfferEvent]]
    partners: dict[str, Partner]
    source: Source


async def create_demo(catalog: CatalogService, landing_base: str) -> DemoProgram:
    """Create the demo program; a second run reuses the one that exists."""
    existing = await _find_existing(catalog)
    if existing is not None:
        return existing
    advertiser = await catalog.create_advertiser(AdvertiserCreate(name=DEMO_ADVERTISER))
    landing = landing_base.rstrip("/") + "/demo/landing"
    trial = await catalog.create_offer(OfferCreate(
        advertiser_id=advertiser.id, name=DEMO_OFFERS[0],
        destination_url=landing + "?offer=trial&tid={transaction_id}&aff={partner_id}&s1={sub1}",
        revenue=_flat(PriceType.CPL, "12.00"), payout=_flat(PriceType.CPL, "8.00"), attribution_window_days=30,
    ))  # fmt: skip
    shop = await catalog.create_offer(OfferCreate(
        advertiser_id=advertiser.id, name=DEMO_OFFERS[1],
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
        for name, email in DEMO_PARTNERS
    ]
    return DemoProgram(advertiser, [trial, shop], events, partners)


def _flat(price_type: PriceType, amount: str) -> PriceRuleBody:
    return PriceRuleBody(type=price_type, amount=Amount(amount))


def _share(percent: str) -> PriceRuleBody:
    return PriceRuleBody(type=PriceType.CPS, percent=Amount(percent))


def _both(amount: str, percent: str) -> PriceRuleBody:
    return PriceRuleBody(type=PriceType.CPA_CPS, amount=Amount(amount), percent=Amount(percent))


async def _find_existing(catalog: CatalogService) -> DemoProgram | None:
    advertisers = [a for a in await catalog.list_advertisers(Page(limit=LISTED)) if a.name == DEMO_ADVERTISER]
    if not advertisers:
        return None
    advertiser = min(advertisers, key=lambda a: a.id)
    named = {o.name: o for o in await catalog.list_offers(Page(limit=LISTED)) if o.advertiser_id == advertiser.id}
    offers = [named[name] for name in DEMO_OFFERS if name in named]
    events = {o.id: await catalog.list_offer_events(o.id) for o in offers}
    by_email = {p.email: p for p in await catalog.list_partners(Page(limit=LISTED))}
    partners = [by_email[email] for _, email in DEMO_PARTNERS if email in by_email]
    return DemoProgram(advertiser, offers, events, partners)


# The network: the small program's advertiser and partners, and everything below.

#: Advertiser, then the offer's fields (the landing page's `offer` parameter is `slug`), then its events.
_OFFERS: tuple[tuple[str, dict[str, Any], tuple[OfferEventCreate, ...]], ...] = (
    (DEMO_ADVERTISER, {
        "name": "Acme Store: summer sale", "slug": "sale", "visibility": Visibility.APPROVAL_REQUIRED,
        "revenue": _share("12"), "payout": _share("8"),
        "caps": [CapBody(metric=CapMetric.CLICKS, period=CapPeriod.DAY, limit=150, per_partner=True)],
    }, ()),
    (TRAVEL_ADVERTISER, {
        "name": "Nordlicht: hotel bookings", "slug": "hotels", "currency": "EUR", "attribution_window_days": 45,
        "revenue": _share("6"), "payout": _share("4"), "share_amount_with_partners": True,
    }, (OfferEventCreate(name="purchase", revenue=_share("5"), payout=_share("3"), allow_multiple_per_click=True),)),
    (TRAVEL_ADVERTISER, {
        "name": "Nordlicht Club: free membership", "slug": "club", "currency": "EUR", "default_status": "pending",
        "revenue": _flat(PriceType.CPL, "2.50"), "payout": _flat(PriceType.CPL, "1.50"),
        "caps": [CapBody(metric=CapMetric.CONVERSIONS, period=CapPeriod.MONTH, limit=2000)],
    }, (OfferEventCreate(name="purchase", revenue=_flat(PriceType.FIXED, "20.00"),
                         payout=_flat(PriceType.FIXED, "12.00")),)),
    (TRAVEL_ADVERTISER, {
        "name": "Nordlicht: city breaks", "slug": "citybreaks", "currency": "EUR", "visibility": Visibility.PRIVATE,
        "attribution_window_days": 14, "revenue": _flat(PriceType.CPA, "35.00"),
        "payout": _flat(PriceType.CPA, "20.00"),
    }, ()),
    (MOBILE_ADVERTISER, {
        "name": "Sakura Pay: app install", "slug": "pay", "currency": "JPY", "attribution_window_days": 7,
        "revenue": _flat(PriceType.CPA, "400"), "payout": _flat(PriceType.CPA, "250"),
        "caps": [CapBody(metric=CapMetric.CONVERSIONS, period=CapPeriod.DAY, limit=8, per_partner=True)],
    }, (
        OfferEventCreate(name="signup", revenue=_flat(PriceType.FIXED, "1200"), payout=_flat(PriceType.FIXED, "700")),
        OfferEventCreate(name="purchase", revenue=_share("6"), payout=_share("3"), allow_multiple_per_click=True),
    )),
    (MOBILE_ADVERTISER, {
        "name": "Sakura Mobile: plan finder", "slug": "plans", "currency": "JPY",
        "revenue": _flat(PriceType.CPC, "30"), "payout": _flat(PriceType.CPC, "18"),
    }, ()),
    (MOBILE_ADVERTISER, {
        "name": "Sakura Mobile: eSIM for travellers", "slug": "esim", "currency": "JPY",
        "visibility": Visibility.APPROVAL_REQUIRED, "attribution_window_days": 7, "share_amount_with_partners": True,
        "revenue": _both("300", "5"), "payout": _both("150", "3"),
    }, ()),
)  # fmt: skip

#: Name, e-mail address, status, and the reason of a rejected sign-up.
_PARTNERS: tuple[tuple[str, str, PartnerStatus, str | None], ...] = (
    ("CouponFox", "partners@couponfox.example", PartnerStatus.ACTIVE, None),
    ("Cashback Cloud", "affiliates@cashbackcloud.example", PartnerStatus.ACTIVE, None),
    ("TravelTales Media", "hello@traveltales.example", PartnerStatus.ACTIVE, None),
    ("Fernweh Blog", "redaktion@fernweh-blog.example", PartnerStatus.ACTIVE, None),
    ("Budget Backpacker", "sam@budgetbackpacker.example", PartnerStatus.ACTIVE, None),
    ("AppRadar Japan", "team@appradar.example", PartnerStatus.ACTIVE, None),
    ("Tokyo Gadget Reviews", "contact@tokyogadget.example", PartnerStatus.ACTIVE, None),
    ("SearchPulse Media", "buying@searchpulse.example", PartnerStatus.ACTIVE, None),
    ("AdMesh Network", "publishers@admesh.example", PartnerStatus.ACTIVE, None),
    ("Deal Hunters Weekly", "editor@dealhunters.example", PartnerStatus.ACTIVE, None),
    ("ClickStorm Ltd", "ops@clickstorm.example", PartnerStatus.BLOCKED, None),
    ("Quick Cash Offers", "admin@quickcash.example", PartnerStatus.REJECTED, "incentivised traffic is not allowed"),
    ("Fresh Traffic Co", "hello@freshtraffic.example", PartnerStatus.PENDING, None),
    ("Moonlight Coupons", "team@moonlightcoupons.example", PartnerStatus.PENDING, None),
    ("Gaming Guru TV", "business@gamingguru.example", PartnerStatus.PENDING, None),
)

#: Offer, partner e-mail address, access status and its reason.
_ACCESS: tuple[tuple[str, str, AccessStatus, str | None], ...] = (
    ("Acme Store: summer sale", "editor@trailreviews.example", AccessStatus.APPROVED, None),
    ("Acme Store: summer sale", "partners@couponfox.example", AccessStatus.APPROVED, None),
    ("Acme Store: summer sale", "affiliates@cashbackcloud.example", AccessStatus.APPROVED, None),
    ("Acme Store: summer sale", "editor@dealhunters.example", AccessStatus.APPROVED, None),
    ("Acme Store: summer sale", "hello@campfire.example", AccessStatus.REQUESTED, None),
    ("Acme Store: summer sale", "sam@budgetbackpacker.example", AccessStatus.REQUESTED, None),
    ("Acme Store: summer sale", "publishers@admesh.example", AccessStatus.REJECTED, "no sub-publisher traffic"),
    ("Nordlicht: city breaks", "hello@traveltales.example", AccessStatus.APPROVED, None),
    ("Nordlicht: city breaks", "redaktion@fernweh-blog.example", AccessStatus.APPROVED, None),
    ("Sakura Mobile: eSIM for travellers", "team@appradar.example", AccessStatus.APPROVED, None),
    ("Sakura Mobile: eSIM for travellers", "contact@tokyogadget.example", AccessStatus.APPROVED, None),
    ("Sakura Mobile: eSIM for travellers", "hello@traveltales.example", AccessStatus.APPROVED, None),
    ("Sakura Mobile: eSIM for travellers", "sam@budgetbackpacker.example", AccessStatus.APPROVED, None),
    ("Sakura Mobile: eSIM for travellers", "redaktion@fernweh-blog.example", AccessStatus.REQUESTED, None),
)

#: Offer, partner e-mail address and the payout that partner earns there instead of the offer's.
_PAYOUTS: tuple[tuple[str, str, PriceRuleBody], ...] = (
    ("Acme Pro: free trial", "editor@trailreviews.example", _flat(PriceType.CPL, "9.00")),
    ("Sakura Pay: app install", "team@appradar.example", _flat(PriceType.CPA, "280")),
)

#: The source's settings: Acme's subscription charges are payments too, a cancellation is churn, and the
#: shop's `repeat_buyers` trait is an audience.
_SOURCE_SETTINGS = {
    "payment_events": ["Order Completed", "Subscription Charged"],
    "churn_events": ["Subscription Cancelled"],
    "audiences": ["repeat_buyers"],
}


async def create_network(catalog: CatalogService, sources: SourceService, landing_base: str) -> DemoNetwork:
    """Create the network (with the small demo program in it); a second run reuses what exists."""
    program = await create_demo(catalog, landing_base)
    advertisers = {a.name: a for a in await catalog.list_advertisers(Page(limit=LISTED))}
    advertisers[DEMO_ADVERTISER] = program.advertiser
    for name in (TRAVEL_ADVERTISER, MOBILE_ADVERTISER):
        if name not in advertisers:
            advertisers[name] = await catalog.create_advertiser(AdvertiserCreate(name=name))
    offers, events = await _offers(catalog, program, advertisers, landing_base.rstrip("/") + "/demo/landing")
    partners = await _partners(catalog, program)
    await _access(catalog, offers, partners)
    source = await _source(sources, program.advertiser)
    return DemoNetwork(program, advertisers, offers, events, partners, source)


async def _offers(
    catalog: CatalogService, program: DemoProgram, advertisers: dict[str, Advertiser], landing: str
) -> tuple[dict[str, Offer], dict[int, list[OfferEvent]]]:
    ours = {a.id for a in advertisers.values()}
    existing = {
        (o.advertiser_id, o.name): o for o in await catalog.list_offers(Page(limit=LISTED)) if o.advertiser_id in ours
    }
    offers = {o.name: o for o in program.offers}
    events = dict(program.events)
    for advertiser_name, spec, offer_events in _OFFERS:
        advertiser = advertisers[advertiser_name]
        offer = existing.get((advertiser.id, spec["name"]))
        if offer is None:
            fields = {k: v for k, v in spec.items() if k != "slug"}
            url = landing + f"?offer={spec['slug']}&tid={{transaction_id}}&aff={{partner_id}}&s1={{sub1}}"
            offer = await catalog.create_offer(OfferCreate(advertiser_id=advertiser.id, destination_url=url, **fields))
            for event in offer_events:
                await catalog.create_offer_event(offer.id, event)
        offers[offer.name] = offer
        events[offer.id] = await catalog.list_offer_events(offer.id)
    return offers, events


async def _partners(catalog: CatalogService, program: DemoProgram) -> dict[str, Partner]:
    """The small program's partners and the others, each brought to its status when it is created (a blocked
    partner was active first; a rejected one signed up and was refused)."""
    partners = {p.email: p for p in await catalog.list_partners(Page(limit=LISTED))}
    partners.update({p.email: p for p in program.partners})
    for name, email, status, reason in _PARTNERS:
        if email in partners:
            continue
        signed_up = status in (PartnerStatus.PENDING, PartnerStatus.REJECTED)
        partner = await catalog.create_partner(
            PartnerCreate(name=name, email=email), PartnerStatus.PENDING if signed_up else PartnerStatus.ACTIVE
        )
        if status is PartnerStatus.REJECTED:
            verdict = Verdict(verdict="rejected", reason=reason)
            partner = await catalog.partner_verdict(partner.id, verdict, decided_by_system("tracklane demo"))
        elif status is PartnerStatus.BLOCKED:
            partner = await catalog.update_partner(partner.id, PartnerUpdate(status=PartnerStatus.BLOCKED))
        partners[email] = partner
    return partners


async def _access(catalog: CatalogService, offers: dict[str, Offer], partners: dict[str, Partner]) -> None:
    """Offer access and partner payouts, where the partner has none yet (a verdict given since is kept)."""
    given = {(a.offer_id, a.partner_id) for a in await catalog.list_access(Page(limit=LISTED))}
    for offer_name, email, status, reason in _ACCESS:
        offer_id, partner_id = offers[offer_name].id, partners[email].id
        if (offer_id, partner_id) not in given:
            await catalog.set_access(OfferAccessCreate(offer_id=offer_id, partner_id=partner_id, status=status,
                                                       reason=reason))  # fmt: skip
    for offer_name, email, payout in _PAYOUTS:
        offer_id, partner_id = offers[offer_name].id, partners[email].id
        if all(p.partner_id != partner_id for p in (await catalog.list_partner_payouts(offer_id))[0]):
            await catalog.set_partner_payout(offer_id, PartnerPayoutCreate(partner_id=partner_id, payout=payout))


async def _source(sources: SourceService, advertiser: Advertiser) -> Source:
    for source in await sources.list(Page(limit=LISTED)):
        if source.name == DEMO_SOURCE and source.advertiser_id == advertiser.id:
            return source
    return await sources.create(SourceCreate(name=DEMO_SOURCE, advertiser_id=advertiser.id,
                                             settings=dict(_SOURCE_SETTINGS)))  # fmt: skip


async def admin_link(users: UserService) -> tuple[User, LinkKind, str | None]:
    """The demo's admin user (created, invited, on the first run) and a new one-time link for it: an
    invitation while it has no password, else a password reset (none for a user an admin disabled). The raw
    token is returned once."""
    try:
        user = await users.by_email(DEMO_ADMIN)
    except NotFound:
        user = await users.create(UserCreate(email=DEMO_ADMIN, role=Role.ADMIN, name="Demo Admin"))
    kind = LinkKind.INVITATION if user.status is UserStatus.INVITED else LinkKind.PASSWORD_RESET
    if user.status is UserStatus.DISABLED:
        return user, kind, None
    return user, kind, await users.one_time_link(user.id, kind)


#: The network's traffic rules: a block list of a known scraper's source, and an optimization rule that
#: blocks the sub ids that bring clicks without customers.
SCRAPER_RULE = "Known scrapers"
OPTIMIZATION_RULE = "Placements that do not convert"


async def traffic_rules(traffic: TrafficService) -> list[TrafficBlock]:
    """Create the demo's traffic rules (a second run reuses them) and evaluate the optimization rule on the
    traffic recorded so far; the blocks it made this time."""
    rules = {r.name: r for r in await traffic.rules(Page(limit=LISTED))}
    if SCRAPER_RULE not in rules:
        await traffic.create(TrafficRuleCreate(kind=RuleKind.BLOCK, name=SCRAPER_RULE,
                                               variable=TrafficVariable.SOURCE_ID, values=["scraper-net"]))  # fmt: skip
    optimizing = rules.get(OPTIMIZATION_RULE)
    if optimizing is None:
        optimizing = await traffic.create(TrafficRuleCreate(
            kind=RuleKind.OPTIMIZE, name=OPTIMIZATION_RULE, variable=TrafficVariable.SUB1, min_clicks=30,
            cvr_below_percent=Amount("0.5"), window_days=30,
        ))  # fmt: skip
    _, blocks = await traffic.evaluate(optimizing.id)
    return blocks
