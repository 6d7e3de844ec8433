"""Past traffic for the demo network (`tracklane demo --clicks N`): months of clicks with daily and weekly
seasonality, and what the visitors did next (conversions, events, Segment calls, refunds, reviews).

The traffic is planned first, from seeded random generators alone (the same seed, database and end time give
the same traffic), as one timeline of actions in time order. It is then recorded at the time each action
happened, in large writes of the database's write path (each runs for at most `WRITE_BUDGET_SECONDS`):

- a click with the click service's decisions, made by the same rules (`routing.reject_reason`, the offer's
  click caps counted by `take_caps`, CPC money by `money.price_click`), inserted by `insert_click`;
- a postback by the conversion service's own recording (token, window, duplicates, caps, money, trace);
- a Segment call by the Segment service's own ingestion (customers, identities, activity, conversions, refunds);
- a review (approve, reject with a reason) by the conversion service's status change.

So every amount is computed by the domain's money and attribution rules, and reports of the demo agree with
its rows. The past is not announced: recorded through `_Historic`, the write sees no webhook endpoint and no
partner postback, so it queues no delivery (a network with endpoints gets none for traffic of months ago).
"""

from __future__ import annotations

import random
import uuid
from bisect import bisect_right
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from functools import partial
from itertools import accumulate
from time import monotonic
from typing import Any, Generic, TypeVar, cast

from tracklane.domain import routing
from tracklane.domain.attribution import choose_payout
from tracklane.domain.caps import Cap, CapMetric, counter_key
from tracklane.domain.errors import InvalidParameter, TracklaneError
from tracklane.domain.model import Click, ClickDevice, ConversionStatus, Offer, Origin
from tracklane.domain.money import price_click
from tracklane.domain.partner_postbacks import PartnerPostback
from tracklane.domain.postback import ConversionRequest
from tracklane.domain.segment.messages import read_message
from tracklane.domain.segment.model import Source
from tracklane.domain.segment.settings import SourceSettings, source_settings
from tracklane.domain.webhooks import WebhookEndpoint
from tracklane.services.conversions import _change_status, _record
from tracklane.services.demo import DEMO_ADMIN, MOBILE_ADVERTISER, TRAVEL_ADVERTISER, DemoNetwork
from tracklane.services.ports import Database, NewClick, Page, Repository
from tracklane.services.segment import _ingest

T = TypeVar("T")

#: A write of the timeline stops taking actions after this long, far within the write timeout.
WRITE_BUDGET_SECONDS = 0.5
MAX_CLICKS = 10_000_000
MAX_DAYS = 730
ADMIN_ACTOR = f"{DEMO_ADMIN} (admin user)"
Subs = tuple[str | None, str | None, str | None, str | None, str | None]
NO_SUBS: Subs = (None, None, None, None, None)


@dataclass(frozen=True, slots=True)
class TrafficPlan:
    """How much traffic, over which days before `now`, from which seed."""

    clicks: int
    days: int
    seed: int
    now: datetime

    def __post_init__(self) -> None:
        if not 0 <= self.clicks <= MAX_CLICKS:
            raise InvalidParameter("clicks", f"must be between 0 and {MAX_CLICKS}")
        if not 1 <= self.days <= MAX_DAYS:
            raise InvalidParameter("days", f"must be between 1 and {MAX_DAYS}")


@dataclass(slots=True)
class TrafficReport:
    """What was recorded: clicks (and how many of them were refused or bots), postbacks accepted, Segment
    calls stored, reviews made, and the actions the attribution refused."""

    clicks: int = 0
    rejected_clicks: int = 0
    bot_clicks: int = 0
    postbacks: int = 0
    segment_calls: int = 0
    reviews: int = 0
    refused: int = 0
    conversion_ids: dict[int, int] = field(default_factory=dict)  # planned conversion -> its id

    def add(self, other: TrafficReport) -> None:
        self.clicks += other.clicks
        self.rejected_clicks += other.rejected_clicks
        self.bot_clicks += other.bot_clicks
        self.postbacks += other.postbacks
        self.segment_calls += other.segment_calls
        self.reviews += other.reviews
        self.refused += other.refused
        self.conversion_ids.update(other.conversion_ids)


# What visitors look like.


@dataclass(frozen=True, slots=True)
class _Market:
    countries: tuple[tuple[str, int], ...]
    utc_offset: int  # hours: the local evening peak falls at these hours in UTC
    weekdays: tuple[float, ...]  # Monday first
    mobile: float  # the share of mobile and tablet visits
    locale: str
    timezone: str


_MARKETS = {
    "us": _Market((("US", 72), ("CA", 11), ("GB", 7), ("AU", 4), ("DE", 2), ("MX", 2), ("IN", 2)), -5,
                  (1.0, 1.02, 1.0, 0.98, 0.92, 0.84, 1.06), 0.55, "en-US", "America/New_York"),
    "dach": _Market((("DE", 52), ("AT", 14), ("CH", 12), ("NL", 7), ("DK", 5), ("FR", 4), ("IT", 3), ("PL", 3)), 1,
                    (1.12, 1.04, 0.98, 0.96, 0.9, 0.82, 1.18), 0.5, "de-DE", "Europe/Berlin"),
    "jp": _Market((("JP", 86), ("US", 4), ("TW", 3), ("KR", 3), ("HK", 2), ("SG", 2)), 9,
                  (0.96, 0.97, 0.98, 1.0, 1.08, 1.1, 0.98), 0.74, "ja-JP", "Asia/Tokyo"),
}  # fmt: skip

#: Visits per local hour of the day, midnight first: quiet nights, a lunch bump and an evening peak.
_LOCAL_HOURS = (3.0, 2.0, 1.4, 1.0, 0.9, 1.2, 2.4, 4.2, 6.0, 7.0, 7.4, 7.8,
                8.6, 8.0, 7.4, 7.2, 7.6, 8.2, 9.2, 10.4, 11.2, 10.4, 8.0, 5.0)  # fmt: skip

#: User agents with what the tracking edge's parser (`web/devices.py`) reads from them; a test checks they agree.
DESKTOP = (
    ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 "
     "Safari/537.36", ClickDevice("desktop", "Windows", "Chrome"), 34),
    ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 "
     "Safari/537.36 Edg/124.0.2478.67", ClickDevice("desktop", "Windows", "Edge"), 10),
    ("Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:125.0) Gecko/20100101 Firefox/125.0",
     ClickDevice("desktop", "Windows", "Firefox"), 6),
    ("Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4.1 "
     "Safari/605.1.15", ClickDevice("desktop", "Mac OS X", "Safari"), 14),
    ("Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 "
     "Safari/537.36", ClickDevice("desktop", "Mac OS X", "Chrome"), 12),
    ("Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36",
     ClickDevice("desktop", "Linux", "Chrome"), 2),
)  # fmt: skip
MOBILE = (
    ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_4_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
     "Version/17.4.1 Mobile/15E148 Safari/604.1", ClickDevice("mobile", "iOS", "Mobile Safari"), 36),
    ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
     "CriOS/124.0.6367.88 Mobile/15E148 Safari/604.1", ClickDevice("mobile", "iOS", "Chrome Mobile iOS"), 6),
    ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
     "Mobile/21E236 Instagram 327.0.0.30.120 (iPhone15,3; iOS 17_4; en_US; en; scale=3.00; 1290x2796; 588348346)",
     ClickDevice("mobile", "iOS", "Instagram"), 5),
    ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
     "Mobile/15E148 Line/14.5.0", ClickDevice("mobile", "iOS", "LINE"), 3),
    ("Mozilla/5.0 (Linux; Android 14; SM-S921B) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.6367.82 "
     "Mobile Safari/537.36", ClickDevice("mobile", "Android", "Chrome Mobile"), 22),
    ("Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.6367.82 "
     "Mobile Safari/537.36", ClickDevice("mobile", "Android", "Chrome Mobile"), 9),
    ("Mozilla/5.0 (Linux; Android 13; SM-A546B) AppleWebKit/537.36 (KHTML, like Gecko) SamsungBrowser/24.0 "
     "Chrome/117.0.0.0 Mobile Safari/537.36", ClickDevice("mobile", "Android", "Samsung Internet"), 7),
    ("Mozilla/5.0 (Linux; Android 14; SO-51D) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.6367.82 "
     "Mobile Safari/537.36", ClickDevice("mobile", "Android", "Chrome Mobile"), 3),
    ("Mozilla/5.0 (iPad; CPU OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 "
     "Mobile/15E148 Safari/604.1", ClickDevice("tablet", "iOS", "Mobile Safari"), 6),
    ("Mozilla/5.0 (Linux; Android 13; SM-X710) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.6367.82 "
     "Safari/537.36", ClickDevice("tablet", "Android", "Chrome"), 3),
)  # fmt: skip
BOTS = (
    ("Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
     ClickDevice("bot", None, "Googlebot", is_bot=True), 5),
    ("Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)",
     ClickDevice("bot", None, "bingbot", is_bot=True), 2),
    ("Mozilla/5.0 (compatible; AhrefsBot/7.0; +http://ahrefs.com/robot/)",
     ClickDevice("bot", None, "AhrefsBot", is_bot=True), 3),
)  # fmt: skip

#: The first octets of addresses seen from each country (plausible public ranges, not a geolocation table).
_PREFIXES = {
    "US": (23, 24, 64, 67, 73, 98, 104, 162, 173), "CA": (24, 70, 99, 142), "GB": (31, 51, 81, 86, 90),
    "AU": (1, 49, 101, 121), "DE": (79, 84, 87, 91, 93, 217), "AT": (77, 80, 178), "CH": (83, 85, 178),
    "NL": (77, 82, 145), "DK": (80, 87, 188), "FR": (78, 82, 90, 176), "IT": (79, 87, 93), "PL": (31, 83, 89),
    "MX": (187, 189, 201), "IN": (49, 103, 117), "JP": (60, 110, 126, 133, 153, 180), "TW": (1, 36, 114),
    "KR": (1, 14, 121, 175), "HK": (42, 58, 112), "SG": (116, 118, 175),
}  # fmt: skip
_BOT_PREFIXES = (66, 157, 54)  # crawler address blocks
_FIRST_NAMES = ("Alex", "Sam", "Jordan", "Taylor", "Morgan", "Riley", "Jamie", "Casey", "Lena", "Jonas", "Mia",
                "Felix", "Hana", "Yuki", "Ren", "Sora", "Emma", "Noah", "Lea", "Ben")  # fmt: skip
_LAST_NAMES = ("Smith", "Garcia", "Miller", "Brown", "Schmidt", "Weber", "Fischer", "Tanaka", "Suzuki", "Sato",
               "Nguyen", "Khan", "Rossi", "Jensen", "Kowalski", "Lee")  # fmt: skip


# Who sends traffic where, and how.


@dataclass(frozen=True, slots=True)
class _Style:
    """A kind of partner: how its clicks carry sub ids and referrers, its devices, bots and fraud."""

    kind: str  # content, email, coupon, social, paid, network
    mobile: float = 0.0  # added to the market's mobile share
    bots: float = 0.01
    fraud: float = 0.0  # the share of its conversions the network rejects on review


_STYLES = {
    "editor@trailreviews.example": _Style("content"),
    "team@peakdeals.example": _Style("email", mobile=-0.05),
    "hello@campfire.example": _Style("social", mobile=0.35),
    "partners@couponfox.example": _Style("coupon"),
    "affiliates@cashbackcloud.example": _Style("coupon", mobile=0.1),
    "hello@traveltales.example": _Style("content"),
    "redaktion@fernweh-blog.example": _Style("content", mobile=-0.1),
    "sam@budgetbackpacker.example": _Style("content", mobile=0.1),
    "team@appradar.example": _Style("content", mobile=0.15),
    "contact@tokyogadget.example": _Style("social", mobile=0.2),
    "buying@searchpulse.example": _Style("paid", fraud=0.05),
    "publishers@admesh.example": _Style("network", bots=0.04, fraud=0.12),
    "editor@dealhunters.example": _Style("email"),
    "ops@clickstorm.example": _Style("network", mobile=0.3, bots=0.35),
}

#: Partner, offer, share of the traffic, and how well that traffic converts (1 = the offer's rate).
_PLACEMENTS: tuple[tuple[str, str, float, float], ...] = (
    ("editor@trailreviews.example", "Acme Pro: free trial", 6, 1.2),
    ("editor@trailreviews.example", "Acme Store: first order", 5, 1.1),
    ("editor@trailreviews.example", "Acme Store: summer sale", 3, 1.1),
    ("team@peakdeals.example", "Acme Store: first order", 4, 0.9),
    ("team@peakdeals.example", "Acme Pro: free trial", 2, 0.8),
    ("team@peakdeals.example", "Acme Store: summer sale", 0.3, 0.5),  # not approved: refused clicks
    ("hello@campfire.example", "Acme Pro: free trial", 3, 0.6),
    ("hello@campfire.example", "Acme Store: first order", 2.5, 0.7),
    ("hello@campfire.example", "Acme Store: summer sale", 0.4, 0.6),  # access requested, not yet approved
    ("partners@couponfox.example", "Acme Store: first order", 6, 1.5),
    ("partners@couponfox.example", "Acme Store: summer sale", 3, 1.6),
    ("partners@couponfox.example", "Nordlicht: hotel bookings", 2, 1.2),
    ("partners@couponfox.example", "Sakura Pay: app install", 1, 0.9),
    ("affiliates@cashbackcloud.example", "Acme Store: first order", 3, 1.4),
    ("affiliates@cashbackcloud.example", "Acme Store: summer sale", 2, 1.4),
    ("affiliates@cashbackcloud.example", "Nordlicht: hotel bookings", 3, 1.3),
    ("affiliates@cashbackcloud.example", "Nordlicht Club: free membership", 1, 1.1),
    ("hello@traveltales.example", "Nordlicht: hotel bookings", 6, 1.1),
    ("hello@traveltales.example", "Nordlicht Club: free membership", 3, 1.0),
    ("hello@traveltales.example", "Nordlicht: city breaks", 2, 1.2),
    ("hello@traveltales.example", "Sakura Mobile: eSIM for travellers", 1.5, 1.1),
    ("redaktion@fernweh-blog.example", "Nordlicht: hotel bookings", 4, 1.0),
    ("redaktion@fernweh-blog.example", "Nordlicht Club: free membership", 3, 1.1),
    ("redaktion@fernweh-blog.example", "Nordlicht: city breaks", 1.5, 1.0),
    ("redaktion@fernweh-blog.example", "Sakura Mobile: eSIM for travellers", 0.3, 0.8),  # requested
    ("sam@budgetbackpacker.example", "Nordlicht: hotel bookings", 2, 0.8),
    ("sam@budgetbackpacker.example", "Sakura Mobile: eSIM for travellers", 1, 1.0),
    ("sam@budgetbackpacker.example", "Acme Pro: free trial", 1, 0.7),
    ("sam@budgetbackpacker.example", "Acme Store: summer sale", 0.3, 0.6),  # requested
    ("team@appradar.example", "Sakura Pay: app install", 6, 1.2),
    ("team@appradar.example", "Sakura Mobile: plan finder", 3, 1.0),
    ("team@appradar.example", "Sakura Mobile: eSIM for travellers", 2, 1.0),
    ("contact@tokyogadget.example", "Sakura Pay: app install", 4, 0.9),
    ("contact@tokyogadget.example", "Sakura Mobile: plan finder", 4, 0.8),
    ("contact@tokyogadget.example", "Sakura Mobile: eSIM for travellers", 1.5, 0.9),
    ("buying@searchpulse.example", "Acme Pro: free trial", 4, 0.9),
    ("buying@searchpulse.example", "Sakura Pay: app install", 3, 0.8),
    ("buying@searchpulse.example", "Sakura Mobile: plan finder", 3, 0.7),
    ("buying@searchpulse.example", "Nordlicht: hotel bookings", 2, 0.9),
    ("publishers@admesh.example", "Acme Store: first order", 3, 0.5),
    ("publishers@admesh.example", "Sakura Pay: app install", 2, 0.6),
    ("publishers@admesh.example", "Nordlicht Club: free membership", 2, 0.5),
    ("publishers@admesh.example", "Acme Store: summer sale", 0.5, 0.4),  # access rejected
    ("editor@dealhunters.example", "Acme Store: first order", 2, 1.2),
    ("editor@dealhunters.example", "Acme Store: summer sale", 2, 1.3),
    ("editor@dealhunters.example", "Nordlicht Club: free membership", 1, 0.9),
    ("ops@clickstorm.example", "Acme Pro: free trial", 0.8, 0.3),  # blocked: every click refused
    ("ops@clickstorm.example", "Sakura Pay: app install", 0.8, 0.3),
)


# What each offer's visitors do.


@dataclass(frozen=True, slots=True)
class _EventPlan:
    name: str
    share: float  # of the base conversions
    most: int  # each converting visitor makes 1 to `most` of them
    after_days: tuple[float, float]
    prices: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class _Profile:
    market: str
    rate: float  # base conversions per click, before the placement's quality
    delay_minutes: float  # the median time from the click to the conversion (log-normal)
    prices: tuple[str, ...] = ()  # the sale amount's unit prices (none: no amount)
    nights: bool = False  # the amount is a nightly price times 1 to 7 nights
    events: tuple[_EventPlan, ...] = ()
    cancelled: float = 0.0  # the share of conversions the advertiser rejects later (bookings cancelled)
    reviewed: bool = False  # the offer approves by hand: its pending leads are reviewed after a few days
    sale: tuple[float, float] | None = None  # the part of the period the offer runs in (its share of the days)
    journey: str = "postback"  # postback, store (conversions by Segment calls), subscription
    order_prefix: str = "ORD"


_PROFILES = {
    "Acme Pro: free trial": _Profile("us", 0.04, 25, events=(_EventPlan("upgrade", 0.08, 1, (2, 25)),),
                                     journey="subscription", order_prefix="acct"),
    "Acme Store: first order": _Profile("us", 0.032, 45, ("24.90", "39.00", "54.90", "89.00", "129.00", "189.95"),
                                        journey="store", order_prefix="AO"),
    "Acme Store: summer sale": _Profile("us", 0.04, 30, ("19.90", "31.20", "43.90", "71.20", "103.20", "151.96"),
                                        sale=(0.55, 0.68), order_prefix="AS"),
    "Nordlicht: hotel bookings": _Profile("dach", 0.02, 600, ("79.00", "109.00", "139.00", "189.00", "249.00"),
                                          nights=True, cancelled=0.08, order_prefix="NR",
                                          events=(_EventPlan("purchase", 0.2, 2, (1, 30),
                                                             ("19.00", "35.00", "49.00", "120.00")),)),
    "Nordlicht Club: free membership": _Profile("dach", 0.055, 8, reviewed=True, order_prefix="NC",
                                                events=(_EventPlan("purchase", 0.1, 1, (3, 28)),)),
    "Nordlicht: city breaks": _Profile("dach", 0.025, 240, ("290.00", "390.00", "490.00", "690.00", "890.00"),
                                       cancelled=0.05, order_prefix="NB"),
    "Sakura Pay: app install": _Profile("jp", 0.065, 4, order_prefix="SP", events=(
        _EventPlan("signup", 0.5, 1, (0.001, 0.2)),
        _EventPlan("purchase", 0.15, 3, (0.1, 6), ("480", "980", "1980", "4800", "9800")),
    )),
    "Sakura Mobile: plan finder": _Profile("jp", 0.008, 15, order_prefix="SM"),
    "Sakura Mobile: eSIM for travellers": _Profile("jp", 0.03, 60, ("1980", "2980", "4980", "7980"),
                                                   order_prefix="SE"),
}  # fmt: skip

_REVIEWERS = {
    TRAVEL_ADVERTISER: "partnerships@nordlicht.example (advertiser user)",
    MOBILE_ADVERTISER: "growth@sakura-mobile.example (advertiser user)",
}
_REVIEW_REJECTIONS = ("duplicate lead", "the e-mail address does not exist", "test sign-up")
_CANCELLED = "booking cancelled by the guest"
_FRAUD = "fraud review: traffic from data-centre addresses"
_TRIAL_DAYS = 14
_PLANS = (("pro-monthly", "29.00", 8), ("team-monthly", "79.00", 2))


# The timeline's actions.


@dataclass(frozen=True, slots=True)
class _Visit:
    """A click as the tracking edge reads it from the request."""

    placement: _Placement
    transaction_id: str
    subs: Subs
    source_id: str | None
    ip: str
    user_agent: str
    device: ClickDevice
    country: str | None
    referrer: str | None


@dataclass(frozen=True, slots=True)
class _Postback:
    key: int  # which planned conversion this is (a review names it)
    request: ConversionRequest


@dataclass(frozen=True, slots=True)
class _Review:
    key: int
    status: ConversionStatus
    reason: str | None
    actor: str


@dataclass(frozen=True, slots=True)
class _Call:
    """A Segment call as the client sends it."""

    raw: dict[str, Any]


_Action = _Visit | _Postback | _Review | _Call
Entry = tuple[datetime, int, _Action]  # when, its place in the plan, what


async def record_traffic(
    db: Database,
    network: DemoNetwork,
    plan: TrafficPlan,
    on_progress: Callable[[int], None] = lambda done: None,
) -> TrafficReport:
    """Plan the traffic and record it; `on_progress` hears how many clicks each write recorded."""
    newest = await db.read(lambda repo: repo.list_clicks(Page(limit=1)))
    timeline = draw_traffic(network, plan, newest[0].id if newest else 0)
    settings = source_settings(network.source.preset, network.source.settings)
    report = TrafficReport()
    verdicts: dict[tuple[int, int], _Verdict] = {}  # the catalogue does not change while the demo records
    position = 0
    while position < len(timeline):
        work = partial(_record_some, source=network.source, settings=settings, timeline=timeline, start=position,
                       known=report.conversion_ids, verdicts=verdicts)  # fmt: skip
        position, done = await db.write(work)
        report.add(done)
        on_progress(done.clicks)
    return report


def draw_traffic(network: DemoNetwork, plan: TrafficPlan, newest_click: int = 0) -> list[Entry]:
    """The plan's traffic on the network, in time order. The same seed, network, newest click id (a run that
    extends a database draws other clicks than the run before it) and end time draw the same; another end time
    draws the same clicks and visitors at other times."""
    return _Planner(random.Random(f"tracklane-demo:{plan.seed}:{newest_click}"), network, plan).timeline()


def _record_some(
    repo: Repository,
    source: Source,
    settings: SourceSettings,
    timeline: Sequence[Entry],
    start: int,
    known: dict[int, int],
    verdicts: dict[tuple[int, int], _Verdict],
) -> tuple[int, TrafficReport]:
    """Record the timeline's actions from `start` for at most `WRITE_BUDGET_SECONDS`; where it stopped, and
    what it did (returned, not kept: a write the database runs again must not count twice)."""
    historic = cast(Repository, _Historic(repo))
    done = TrafficReport()
    deadline = monotonic() + WRITE_BUDGET_SECONDS
    position = start
    while position < len(timeline) and (position == start or monotonic() < deadline):
        at, _, action = timeline[position]
        position += 1
        try:
            _perform(historic, verdicts, source, settings, at, action, known, done)
        except TracklaneError:  # refused as a live request would be; it wrote nothing
            done.refused += 1
    return position, done


def _perform(
    repo: Repository,
    verdicts: dict[tuple[int, int], _Verdict],
    source: Source,
    settings: SourceSettings,
    at: datetime,
    action: _Action,
    known: dict[int, int],
    done: TrafficReport,
) -> None:
    if isinstance(action, _Visit):
        click = _record_click(repo, action, at, verdicts)
        done.clicks += 1
        done.rejected_clicks += not click.accepted
        done.bot_clicks += click.device.is_bot
    elif isinstance(action, _Postback):
        recorded = _record(repo, action.request, Origin.POSTBACK, at)
        done.postbacks += 1
        done.conversion_ids[action.key] = recorded.conversion.id
    elif isinstance(action, _Review):
        conversion_id = done.conversion_ids.get(action.key) or known.get(action.key)
        if conversion_id is not None:
            _change_status(repo, conversion_id, action.status, action.reason, action.actor, at)
            done.reviews += 1
    else:
        message = read_message(action.raw, {}, at, trusted=False)
        stored, _, _ = _ingest(repo, source, settings, [message], relayed=False, now=at)
        done.segment_calls += stored


@dataclass(frozen=True, slots=True)
class _Verdict:
    """What a click of one partner on one offer gets unless a cap is full: its reject reason (None: accepted),
    the offer's click caps, and the CPC revenue and payout of a billable click."""

    offer: Offer | None
    reason: str | None
    caps: tuple[Cap, ...]
    revenue: Decimal
    payout: Decimal


def _verdict(repo: Repository, offer_id: int, partner_id: int) -> _Verdict:
    """The decisions of `services/clicks.py` that are the same for every click of a partner on an offer (the
    catalogue does not change while the demo records), made by the same domain rules."""
    offer, partner = repo.get_offer(offer_id), repo.get_partner(partner_id)
    access = repo.get_access(offer_id, partner_id) if offer and partner else None
    reason = routing.reject_reason(offer, partner, access)
    if offer is None:
        return _Verdict(None, reason, (), Decimal(0), Decimal(0))
    payout = choose_payout(offer, None, repo.list_partner_payouts(offer.id), partner_id).rule
    caps = tuple(cap for cap in offer.caps if cap.rule.metric is CapMetric.CLICKS)
    return _Verdict(
        offer, reason, caps, price_click(offer.revenue, offer.currency), price_click(payout, offer.currency)
    )


def _record_click(repo: Repository, visit: _Visit, at: datetime, verdicts: dict[tuple[int, int], _Verdict]) -> Click:
    """Record one click as the click service does: its verdict, the offer's click caps, CPC money."""
    offer_id, partner_id = visit.placement.offer.id, visit.placement.partner_id
    verdict = verdicts.get((offer_id, partner_id))
    if verdict is None:
        verdict = verdicts[offer_id, partner_id] = _verdict(repo, offer_id, partner_id)
    reason = verdict.reason
    billable = reason is None and not visit.device.is_bot
    if billable and verdict.caps:
        counters = [(counter_key(cap, partner_id, at), cap.rule.limit) for cap in verdict.caps]
        if not repo.take_caps(counters):
            reason, billable = "cap_reached", False
    zero = Decimal(0)
    return repo.insert_click(NewClick(
        transaction_id=visit.transaction_id, offer_id=offer_id, partner_id=partner_id,
        advertiser_id=verdict.offer.advertiser_id if verdict.offer else None, subs=visit.subs,
        source_id=visit.source_id, ip=visit.ip, user_agent=visit.user_agent, device=visit.device,
        country=visit.country, referrer=visit.referrer, verdict="accepted" if reason is None else "rejected",
        reject_reason=reason, revenue=verdict.revenue if billable else zero,
        payout=verdict.payout if billable else zero, created_at=at,
    ))  # fmt: skip


class _Historic:
    """The repository as the demo's past traffic is recorded on it: no webhook endpoint and no partner postback
    exists, so nothing of it is queued for delivery (everything else is the repository's own)."""

    def __init__(self, repo: Repository) -> None:
        self._repo = repo

    def __getattr__(self, name: str) -> Any:
        return getattr(self._repo, name)

    def all_webhook_endpoints(self) -> list[WebhookEndpoint]:
        return []

    def postbacks_of_partner(self, partner_id: int) -> list[PartnerPostback]:
        return []


# Planning.


@dataclass(frozen=True, slots=True)
class _Placement:
    offer: Offer
    partner_id: int
    token: str  # the postback token of the offer's advertiser
    style: _Style
    domain: str
    quality: float
    reviewer: str  # who reviews the advertiser's conversions


class _Planner:
    """Draws the traffic: clicks over the period, and for each what its visitor does afterwards.

    The clicks are drawn from one generator, their times from a second and each visitor's follow-ups from a
    third of its own (seeded by the first), so that the same seed draws the same clicks and visitors whatever
    the time of day the period ends at (which only moves the times, and what falls after its end)."""

    def __init__(self, rng: random.Random, network: DemoNetwork, plan: TrafficPlan) -> None:
        self._rng = rng
        self._when = random.Random(rng.getrandbits(64))
        self._plan = plan
        self._end = plan.now
        self._start = plan.now - timedelta(days=plan.days)
        self._days = list(days_of(self._start.date(), self._end.date()))
        self._entries: list[Entry] = []
        advertisers = {a.id: a for a in network.advertisers.values()}
        self._placements = []
        for email, offer_name, _, quality in _PLACEMENTS:
            offer = network.offers[offer_name]
            advertiser = advertisers[offer.advertiser_id]
            reviewer = _REVIEWERS.get(advertiser.name, ADMIN_ACTOR)
            self._placements.append(_Placement(offer, network.partners[email].id, advertiser.postback_token,
                                               _STYLES[email], email.partition("@")[2], quality, reviewer))  # fmt: skip
        self._placement_weights = list(accumulate(weight for _, _, weight, _ in _PLACEMENTS))
        growth = [0.75 + 0.4 * d / max(1, len(self._days) - 1) for d in range(len(self._days))]
        noise = [self._when.uniform(0.88, 1.12) for _ in self._days]
        self._day_of = {
            name: _Weighted([(day, self._day_weight(profile, d, growth[d] * noise[d]))
                             for d, day in enumerate(self._days)])
            for name, profile in _PROFILES.items()
        }  # fmt: skip
        self._hour_of = {
            key: _Weighted([(hour, _LOCAL_HOURS[(hour + market.utc_offset) % 24]) for hour in range(24)])
            for key, market in _MARKETS.items()
        }
        self._sequence = 0

    def _day_weight(self, profile: _Profile, index: int, base: float) -> float:
        weekday = _MARKETS[profile.market].weekdays[self._days[index].weekday()]
        if profile.sale is None:
            return base * weekday
        share = index / max(1, len(self._days) - 1)
        return base * weekday * (3.0 if profile.sale[0] <= share <= profile.sale[1] else 0.02)

    def timeline(self) -> list[Entry]:
        chosen = self._rng.choices(self._placements, cum_weights=self._placement_weights, k=self._plan.clicks)
        for placement in chosen:
            self._click(placement)
        self._entries.sort(key=lambda entry: (entry[0], entry[1]))
        return self._entries

    def _add(self, at: datetime, action: _Action) -> int:
        """Put the action on the timeline (if it happened by the end of the period); its sequence number."""
        self._sequence += 1
        if at < self._end:
            self._entries.append((at, self._sequence, action))
        return self._sequence

    # one click

    def _click(self, placement: _Placement) -> None:
        rng, profile = self._rng, _PROFILES[placement.offer.name]
        market = _MARKETS[profile.market]
        at = self._moment(placement.offer.name, profile.market)
        bot = rng.random() < placement.style.bots
        user_agent, device = (_BOTS if bot else self._device_class(placement, market)).pick(rng)
        country = _COUNTRIES[profile.market].pick(rng)
        subs, source_id, referrer = _subs(rng, placement, at)
        transaction_id = f"{rng.getrandbits(128):032x}"
        click = _Visit(placement, transaction_id, subs, source_id, _address(rng, country, bot), user_agent, device,
                       None if bot else country, referrer)  # fmt: skip
        self._add(at, click)
        converts = not bot and rng.random() < profile.rate * placement.quality
        signs_up = not bot and profile.journey == "store" and rng.random() < 0.015  # a customer, no order
        follow = rng.getrandbits(64)
        if not (converts or signs_up):
            return
        visit = _Visitor(transaction_id, at, placement, profile, click, random.Random(follow))
        if profile.journey == "store":
            self._store_journey(visit, converts)
        else:
            self._conversion(visit)

    def _device_class(self, placement: _Placement, market: _Market) -> _Weighted[tuple[str, ClickDevice]]:
        return _MOBILE if self._rng.random() < market.mobile + placement.style.mobile else _DESKTOP

    def _moment(self, offer_name: str, market_key: str) -> datetime:
        """A click time in the period: a day by its weight (growth, weekday, noise, sale), an hour by the
        market's daily curve, any second of that hour."""
        when = self._when
        while True:
            day = self._day_of[offer_name].pick(when)
            hour = self._hour_of[market_key].pick(when)
            at = datetime.combine(day, time(hour), UTC) + timedelta(seconds=when.randrange(3600))
            if self._start <= at < self._end:
                return at

    @staticmethod
    def _conversion_time(visit: _Visitor) -> datetime | None:
        """When the visitor converts: a log-normal delay after the click, inside the offer's window."""
        minutes = visit.rng.lognormvariate(0, 1.1) * visit.profile.delay_minutes
        at = visit.at + timedelta(minutes=max(0.5, minutes))
        return at if at < visit.deadline else None

    # conversions by postback

    def _conversion(self, visit: _Visitor) -> None:
        at = self._conversion_time(visit)
        if at is None:
            return
        rng, profile = visit.rng, visit.profile
        amount = _amount(rng, profile)
        order = f"{profile.order_prefix}-{rng.getrandbits(40):010X}"
        key = self._postback(at, visit, None, amount, order)
        if profile.journey == "subscription":
            self._subscription_journey(visit, at, order)
        self._follow_up(visit, key, at)
        for event in profile.events:
            if rng.random() < event.share:
                self._events(visit, event, at)

    def _postback(
        self, at: datetime, visit: _Visitor, event: str | None, amount: Decimal | None, order: str | None
    ) -> int:
        request = ConversionRequest(
            transaction_id=visit.transaction_id, token=visit.placement.token, event_id=None, event_name=event,
            amount=amount, order_id=order, currency=None, advs=NO_SUBS,
        )  # fmt: skip
        self._sequence += 1
        key = self._sequence
        if at < min(self._end, visit.deadline):
            self._entries.append((at, key, _Postback(key, request)))
        return key

    def _follow_up(self, visit: _Visitor, key: int, at: datetime) -> None:
        """What happens to the conversion later: a review of a lead (some wait in the review queue), a cancelled
        booking, a fraud check."""
        rng, profile, style = visit.rng, visit.profile, visit.placement.style
        reviewer = visit.placement.reviewer
        if profile.reviewed:
            later = at + timedelta(days=rng.uniform(2, 10))
            draw = rng.random()
            if draw < 0.8:
                self._add(later, _Review(key, ConversionStatus.APPROVED, None, reviewer))
            elif draw < 0.9:
                self._add(later, _Review(key, ConversionStatus.REJECTED, rng.choice(_REVIEW_REJECTIONS), reviewer))
        if profile.cancelled and rng.random() < profile.cancelled:
            cancelled = _Review(key, ConversionStatus.REJECTED, _CANCELLED, reviewer)
            self._add(at + timedelta(days=rng.uniform(1, 10)), cancelled)
        if style.fraud and rng.random() < style.fraud:
            fraud = _Review(key, ConversionStatus.REJECTED, _FRAUD, ADMIN_ACTOR)
            self._add(at + timedelta(days=rng.uniform(2, 6)), fraud)

    def _events(self, visit: _Visitor, event: _EventPlan, converted: datetime) -> None:
        rng = visit.rng
        for _ in range(rng.randint(1, event.most)):
            at = converted + timedelta(days=rng.uniform(*event.after_days))
            amount = _price(rng, event.prices) if event.prices else None
            order = f"{visit.profile.order_prefix}-{rng.getrandbits(40):010X}"
            self._postback(at, visit, event.name, amount, order)

    # the Segment calls of Acme's customers

    def _subscription_journey(self, visit: _Visitor, signed_up: datetime, user_id: str) -> None:
        """A trial sign-up on Acme Pro, told by its backend (analytics-node): the trial (naming the click), the
        person and the monthly charges of those who pay (the first, inside the window, is also the offer's
        `purchase` event), refunds and cancellations."""
        rng = visit.rng
        person = _Person.draw(rng, user_id, None)
        self._call(signed_up + timedelta(seconds=3), _server(rng, "track", person, {
            "event": "Signed Up", "properties": {"transaction_id": visit.transaction_id, "plan": "pro",
                                                 "trial_days": _TRIAL_DAYS},
        }))  # fmt: skip
        if rng.random() >= 0.4:
            if rng.random() < 0.5:
                self._cancel(visit, person, signed_up + timedelta(days=rng.uniform(3, _TRIAL_DAYS)), "trial ended")
            return
        plan, price, _ = rng.choices(_PLANS, weights=[w for _, _, w in _PLANS])[0]
        charged = signed_up + timedelta(days=_TRIAL_DAYS)
        traits = {**person.traits(), "plan": plan, "company": f"{person.last} {rng.choice(('LLC', 'Inc', 'Co'))}"}
        self._call(charged - timedelta(minutes=1), _server(rng, "identify", person, {"traits": traits}))
        first = True
        while charged < self._end:  # each month: charged, then cancelled (or not) before the next charge
            self._charge(visit, person, charged, plan, Decimal(price), first)
            first = False
            if rng.random() < 0.1:
                self._cancel(visit, person, charged + timedelta(days=rng.uniform(1, 29)), "too expensive")
                return
            charged += timedelta(days=30)

    def _charge(self, visit: _Visitor, person: _Person, at: datetime, plan: str, price: Decimal, first: bool) -> None:
        rng = visit.rng
        invoice = f"in_{rng.getrandbits(64):016x}"
        self._call(at, _server(rng, "track", person, {"event": "Subscription Charged", "properties": {
            "order_id": invoice, "revenue": price, "currency": "USD", "plan": plan,
        }}))  # fmt: skip
        if first:
            self._postback(at + timedelta(seconds=5), visit, "purchase", price, invoice)
            if rng.random() < 0.03:
                refund = {"order_id": invoice, "revenue": price, "currency": "USD"}
                self._call(
                    at + timedelta(days=rng.uniform(1, 10)),
                    _server(rng, "track", person, {"event": "Order Refunded", "properties": refund}),
                )

    def _cancel(self, visit: _Visitor, person: _Person, at: datetime, reason: str) -> None:
        self._call(at, _server(visit.rng, "track", person, {"event": "Subscription Cancelled",
                                                            "properties": {"reason": reason}}))  # fmt: skip

    def _store_journey(self, visit: _Visitor, converts: bool) -> None:
        """A visit to the Acme Store, told by analytics.js: a sign-up on the landing page (whose URL carries the
        click's `tl_tid`, which links the customer to the click), the person at the checkout, orders (the first
        is the offer's conversion), a repeat buyer's audience, refunds. Visitors who neither sign up nor order
        leave no trace."""
        rng = visit.rng
        ordered = self._conversion_time(visit) if converts else None
        anonymous_id = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        person = _Person.draw(rng, f"usr_{rng.getrandbits(48):012x}", anonymous_id)
        landing = f"https://shop.acme-outdoor.example/?tl_tid={visit.transaction_id}&utm_source=partner"
        signed_up = visit.at + timedelta(minutes=rng.uniform(1, 6))
        if ordered is not None:
            signed_up = min(signed_up, ordered - timedelta(seconds=30))
        self._call(signed_up, _browser(rng, "track", person, visit, landing, {
            "event": "Signed Up", "properties": {"method": "email"},
        }))  # fmt: skip
        if ordered is not None:  # at the checkout: the address
            traits = {**person.traits(), "address": {"country": visit.click.country}}
            self._call(ordered - timedelta(seconds=20), _browser(rng, "identify", person, visit, landing,
                                                                 {"traits": traits}))  # fmt: skip
            self._orders(visit, person, landing, ordered)

    def _orders(self, visit: _Visitor, person: _Person, landing: str, first: datetime) -> None:
        rng = visit.rng
        moments = [first]
        if rng.random() < 0.3:
            moments += sorted(first + timedelta(days=rng.uniform(7, 80)) for _ in range(rng.randint(1, 3)))
        for number, at in enumerate(moments, start=1):
            order = f"{visit.profile.order_prefix}-{rng.getrandbits(40):010X}"
            unit = Decimal(rng.choice(visit.profile.prices))
            quantity = rng.choices((1, 2, 3), weights=(75, 20, 5))[0]
            total = unit * quantity
            product = {"product_id": f"sku-{rng.randrange(1000, 1400)}", "price": unit, "quantity": quantity,
                       "category": rng.choice(("tents", "backpacks", "footwear", "jackets", "cooking"))}  # fmt: skip
            self._call(at, _browser(rng, "track", person, visit, landing, {"event": "Order Completed", "properties": {
                "order_id": order, "revenue": total, "currency": "USD", "products": [product],
            }}))  # fmt: skip
            if number == 2:
                self._call(at + timedelta(seconds=2), _browser(rng, "identify", person, visit, landing,
                                                               {"traits": {"repeat_buyers": True}}))  # fmt: skip
            if rng.random() < 0.06:
                refund = {"order_id": order, "revenue": total, "currency": "USD"}
                self._call(at + timedelta(days=rng.uniform(2, 20)), _browser(rng, "track", person, visit, landing, {
                    "event": "Order Refunded", "properties": refund,
                }))  # fmt: skip

    def _call(self, at: datetime, raw: dict[str, Any]) -> None:
        sent = at - timedelta(milliseconds=40)
        raw.update(originalTimestamp=_iso(sent - timedelta(milliseconds=120)), sentAt=_iso(sent))
        self._add(at, _Call(raw))


def _amount(rng: random.Random, profile: _Profile) -> Decimal | None:
    """The sale amount of a base conversion (a booking: a night's price times the nights)."""
    if not profile.prices:
        return None
    if profile.nights:
        return _price(rng, profile.prices) * rng.choice((1, 1, 2, 2, 2, 3, 3, 4, 5, 7))
    return _price(rng, profile.prices)


@dataclass(frozen=True, slots=True)
class _Visitor:
    """A click that was not a bot's, and what is known of it when its follow-ups are planned."""

    transaction_id: str
    at: datetime
    placement: _Placement
    profile: _Profile
    click: _Visit
    rng: random.Random  # the visitor's own: what it does next

    @property
    def deadline(self) -> datetime:
        """The end of the click's attribution window."""
        return self.at + timedelta(days=self.placement.offer.attribution_window_days)


@dataclass(frozen=True, slots=True)
class _Person:
    user_id: str | None
    anonymous_id: str | None
    first: str
    last: str
    number: int

    @classmethod
    def draw(cls, rng: random.Random, user_id: str | None, anonymous_id: str | None) -> _Person:
        return cls(user_id, anonymous_id, rng.choice(_FIRST_NAMES), rng.choice(_LAST_NAMES), rng.randrange(10**4))

    def traits(self) -> dict[str, Any]:
        email = f"{self.first}.{self.last}{self.number}@mail.example".lower()
        return {"email": email, "first_name": self.first, "last_name": self.last}

    def ids(self) -> dict[str, str]:
        found = {"userId": self.user_id, "anonymousId": self.anonymous_id}
        return {k: v for k, v in found.items() if v is not None}


def _browser(
    rng: random.Random, kind: str, person: _Person, visit: _Visitor, url: str, body: dict[str, Any]
) -> dict[str, Any]:
    """A call from analytics.js on the visitor's browser."""
    market = _MARKETS[visit.profile.market]
    context = {
        "library": {"name": "analytics.js", "version": "npm:next-1.70.0"},
        "page": {"url": url, "path": "/", "referrer": visit.click.referrer or "", "title": "Acme Outdoor"},
        "userAgent": visit.click.user_agent, "ip": visit.click.ip, "locale": market.locale,
        "timezone": market.timezone,
    }  # fmt: skip
    return {"type": kind, "messageId": f"ajs-next-{rng.getrandbits(128):032x}", **person.ids(), "context": context,
            **body}  # fmt: skip


def _server(rng: random.Random, kind: str, person: _Person, body: dict[str, Any]) -> dict[str, Any]:
    """A call from Acme's backend (analytics-node)."""
    context = {"library": {"name": "@segment/analytics-node", "version": "2.1.2"}}
    return {"type": kind, "messageId": f"node-next-{rng.getrandbits(128):032x}", **person.ids(), "context": context,
            **body}  # fmt: skip


def _iso(at: datetime) -> str:
    return at.isoformat(timespec="milliseconds").replace("+00:00", "Z")


class _Weighted(Generic[T]):
    """Items drawn in proportion to their weights (one draw of the generator each)."""

    def __init__(self, items: Sequence[tuple[T, float]]) -> None:
        self._items = [item for item, _ in items]
        self._bounds = list(accumulate(weight for _, weight in items))

    def pick(self, rng: random.Random) -> T:
        index = bisect_right(self._bounds, rng.random() * self._bounds[-1])
        return self._items[min(index, len(self._items) - 1)]


def _devices(table: Sequence[tuple[str, ClickDevice, int]]) -> _Weighted[tuple[str, ClickDevice]]:
    return _Weighted([((user_agent, device), weight) for user_agent, device, weight in table])


_DESKTOP, _MOBILE, _BOTS = _devices(DESKTOP), _devices(MOBILE), _devices(BOTS)
_COUNTRIES = {key: _Weighted(market.countries) for key, market in _MARKETS.items()}


def _address(rng: random.Random, country: str, bot: bool) -> str:
    first = rng.choice(_BOT_PREFIXES if bot else _PREFIXES.get(country, (80,)))
    rest = rng.getrandbits(24)
    return f"{first}.{rest >> 16}.{(rest >> 8) & 255}.{(rest & 255) % 254 + 1}"


def _price(rng: random.Random, prices: Sequence[str]) -> Decimal:
    return Decimal(rng.choice(prices))


_ARTICLES = {
    "us": ("best-backpacking-tents", "ultralight-gear-guide", "hiking-boots-review", "trail-running-picks",
           "camp-kitchen-essentials", "productivity-apps"),
    "dach": ("wochenende-in-wien", "hotels-an-der-ostsee", "staedtereisen-2025", "wellness-im-allgaeu",
             "bahnreisen-durch-europa"),
    "jp": ("cashless-apps", "esim-hikaku", "sim-free-guide", "travel-wifi", "point-katsu"),
}  # fmt: skip
_SOCIAL = {"instagram": "https://l.instagram.com/", "tiktok": "https://www.tiktok.com/",
           "youtube": "https://www.youtube.com/"}  # fmt: skip
_CAMPAIGNS = {"search-brand": "https://www.google.com/", "search-generic": "https://www.google.com/",
              "display-retargeting": None, "social-prospecting": "https://www.facebook.com/"}  # fmt: skip


def _subs(rng: random.Random, placement: _Placement, at: datetime) -> tuple[Subs, str | None, str | None]:
    """sub1..sub5, source_id and referrer the way this kind of partner fills them."""
    kind, domain = placement.style.kind, placement.domain
    if kind == "content":
        article = rng.choice(_ARTICLES[_PROFILES[placement.offer.name].market])
        spot = rng.choice(("in-text", "comparison-table", "sidebar", "author-box"))
        return _sub(article, spot), None, f"https://{domain}/{article}/"
    if kind == "email":
        issue = at.date() - timedelta(days=(at.weekday() - 1) % 7)  # the newsletter goes out on Tuesdays
        return _sub(f"nl-{issue.isoformat()}", rng.choice(("hero", "deal-of-the-week", "footer"))), None, None
    if kind == "coupon":
        spot = rng.choice(("coupon-page", "homepage-deals", "browser-extension"))
        return _sub(spot, f"m{rng.randrange(10**5, 10**6)}"), None, f"https://{domain}/stores/"
    if kind == "social":
        network = rng.choice(tuple(_SOCIAL))
        return _sub(network, f"{network[:2]}-{rng.randrange(1, 13):03d}"), None, _SOCIAL[network]
    if kind == "paid":
        campaign = rng.choice(tuple(_CAMPAIGNS))
        click_id = f"{rng.getrandbits(96):024x}"
        return _sub(campaign, f"ag-{rng.randrange(1, 25):02d}", click_id), None, _CAMPAIGNS[campaign]
    return _sub(rng.choice(("native", "content-rec", "push"))), f"pub-{rng.randrange(1001, 1060)}", None


def _sub(*values: str) -> Subs:
    padded = [*values, None, None, None, None, None]
    return padded[0], padded[1], padded[2], padded[3], padded[4]


def days_of(start: date, end: date) -> Iterator[date]:
    """The calendar days from `start` to `end`, both included."""
    for offset in range((end - start).days + 1):
        yield start + timedelta(days=offset)
