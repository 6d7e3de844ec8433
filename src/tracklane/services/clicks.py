"""Recording a click: verdict, caps, CPC money and the redirect, in one committed write; for `/clk` (and for
a destination URL that names `{click_token}`), the click token that lets a pixel convert this click (see
`tracklane.domain.postback`).

The verdict reads the offer, its advertiser, the partner, the partner's access and the offer's targeting
(`tracklane.domain.routing`), then the traffic rules' blocklist for the offer and partner
(`tracklane.domain.traffic`); bots are recorded and never billable. A repeat of a billable click (same IP,
user agent, offer and partner within `duplicate_window_seconds`) is recorded as rejected with reason
`duplicate_click`, takes no cap and no money, and still goes to the offer with the first click's transaction
id (so a conversion credits the first click). Repeats are remembered in this process only (bounded).
"""

from __future__ import annotations

import struct
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from hashlib import blake2b

from tracklane.domain import routing
from tracklane.domain.attribution import choose_payout
from tracklane.domain.caps import CapMetric, counter_key
from tracklane.domain.macros import CLICK_TOKEN, expand
from tracklane.domain.model import Advertiser, Click, ClickDevice, Offer, OfferAccess, Partner
from tracklane.domain.money import price_click
from tracklane.domain.postback import click_token
from tracklane.domain.targeting import Visitor
from tracklane.services.ports import Clock, Database, NewClick, Repository


@dataclass(frozen=True, slots=True)
class ClickRequest:
    offer_id: int
    partner_id: int
    subs: tuple[str | None, str | None, str | None, str | None, str | None]
    source_id: str | None
    ip: str | None
    user_agent: str | None
    device: ClickDevice
    country: str | None
    referrer: str | None

    def visitor(self) -> Visitor:
        params = {f"sub{i}": sub for i, sub in enumerate(self.subs, start=1)}
        params.update(source_id=self.source_id, referrer=self.referrer)
        return Visitor(self.country, self.device.device_type, self.device.os, self.device.browser, params)


DUPLICATE_CLICK = "duplicate_click"
_DuplicateKey = tuple[str | None, str | None, int, int]


@dataclass(frozen=True, slots=True)
class ClickOutcome:
    click: Click
    redirect_url: str | None
    cookie_days: int
    click_token: str | None = None  # asked for (`/clk`) or named by the destination, and the offer exists
    duplicate_of: str | None = None  # the transaction id of the billable click this one repeats


class _RecentClicks:
    """Billable clicks of the last window by (IP, user agent, offer, partner): a bounded, thread-safe memo.

    A key is held as its 16-byte BLAKE2b digest (not the visitor's strings), an entry as one bytes value (the
    click's time, then its transaction id), and an entry leaves once it is older than the window: a busy
    server holds a window's clicks at about 250 bytes each.
    """

    def __init__(self, window: timedelta, limit: int = 100_000) -> None:
        self._window = window.total_seconds()
        self._limit = limit
        self._entries: OrderedDict[bytes, bytes] = OrderedDict()
        self._lock = threading.Lock()

    def first_of(self, key: bytes, now: datetime, transaction_id: str) -> str | None:
        """The transaction id of an earlier billable click with this key (`digest`) in the window, else None."""
        with self._lock:
            seen = self._entries.get(key)
        if seen is None or now.timestamp() - _MOMENT.unpack_from(seen)[0] >= self._window:
            return None
        first = seen[_MOMENT.size :].decode()
        return None if first == transaction_id else first

    def remember(self, key: bytes, now: datetime, transaction_id: str) -> None:
        if not self._window:
            return
        moment = now.timestamp()
        entry = _MOMENT.pack(moment) + transaction_id.encode()
        with self._lock:
            entries = self._entries
            entries[key] = entry
            entries.move_to_end(key)
            while entries and (
                len(entries) > self._limit
                or moment - _MOMENT.unpack_from(next(iter(entries.values())))[0] >= self._window
            ):
                entries.popitem(last=False)


_MOMENT = struct.Struct("<d")  # a memo entry's time (POSIX seconds), before its transaction id


def digest(key: _DuplicateKey) -> bytes:
    """The memo's key for a click's (IP, user agent, offer, partner)."""
    return blake2b(repr(key).encode(), digest_size=16).digest()


class ClickService:
    def __init__(
        self,
        db: Database,
        clock: Clock,
        new_transaction_id: Callable[[], str],
        network_fallback_url: str | None,
        duplicate_window_seconds: float = 60,
    ) -> None:
        self._db = db
        self._clock = clock
        self._new_transaction_id = new_transaction_id
        self._network_fallback_url = network_fallback_url
        self._recent = _RecentClicks(timedelta(seconds=duplicate_window_seconds))

    async def record(self, request: ClickRequest, *, with_token: bool = False) -> ClickOutcome:
        """Record the click; `with_token` also issues its click token (one more read: the advertiser)."""
        transaction_id = self._new_transaction_id()
        now = self._clock()
        return await self._db.write(lambda repo: self._record(repo, request, transaction_id, now, with_token))

    async def preview(self, request: ClickRequest) -> str | None:
        """Where a click would go, without recording it (for HEAD); no transaction id is issued."""
        now = self._clock()

        def work(repo: Repository) -> str | None:
            offer = repo.get_offer(request.offer_id)
            partner = repo.get_partner(request.partner_id)
            access = repo.get_access(request.offer_id, request.partner_id) if offer and partner else None
            advertiser = repo.get_advertiser(offer.advertiser_id) if offer else None
            reason = _reject_reason(repo, request, offer, partner, access, advertiser)
            target = self._target(offer, accepted=reason is None)
            values = routing.click_macro_values(
                "",
                request.offer_id,
                request.partner_id,
                offer.advertiser_id if offer else None,
                request.subs,
                request.source_id,
                now,
            )
            return None if target is None else expand(target, values)

        return await self._db.read(work)

    def _record(
        self, repo: Repository, request: ClickRequest, transaction_id: str, now: datetime, with_token: bool
    ) -> ClickOutcome:
        offer = repo.get_offer(request.offer_id)
        partner = repo.get_partner(request.partner_id)
        access = repo.get_access(request.offer_id, request.partner_id) if offer and partner else None
        owner = repo.get_advertiser(offer.advertiser_id) if offer else None
        reason = _reject_reason(repo, request, offer, partner, access, owner)
        billable = reason is None and not request.device.is_bot
        key = digest((request.ip, request.user_agent, request.offer_id, request.partner_id)) if billable else b""
        first = self._recent.first_of(key, now, transaction_id) if billable else None
        if first is not None:
            reason, billable = DUPLICATE_CLICK, False
        if billable and offer is not None and not _take_click_caps(repo, offer, request.partner_id, now):
            reason, billable = "cap_reached", False
        revenue, payout = _click_money(repo, offer, request.partner_id) if billable else (Decimal(0), Decimal(0))
        click = repo.insert_click(
            NewClick(
                transaction_id=transaction_id, offer_id=request.offer_id, partner_id=request.partner_id,
                advertiser_id=offer.advertiser_id if offer else None, subs=request.subs,
                source_id=request.source_id, ip=request.ip, user_agent=request.user_agent, device=request.device,
                country=request.country, referrer=request.referrer,
                verdict="accepted" if reason is None else "rejected", reject_reason=reason,
                revenue=revenue, payout=payout, created_at=now,
            )
        )  # fmt: skip
        if billable:
            self._recent.remember(key, now, transaction_id)
        values = routing.click_macro_values(
            first or transaction_id,
            request.offer_id,
            request.partner_id,
            click.advertiser_id,
            request.subs,
            request.source_id,
            now,
        )
        target = self._target(offer, accepted=reason is None or first is not None)
        days = offer.attribution_window_days if offer else 30
        in_target = target is not None and "{" + CLICK_TOKEN + "}" in target
        advertiser = owner if (with_token or in_target) else None
        token = click_token(first or transaction_id, advertiser.postback_token) if advertiser else None
        values[CLICK_TOKEN] = token
        url = None if target is None else expand(target, values)
        return ClickOutcome(click, url, days, token, duplicate_of=first)

    def _target(self, offer: Offer | None, accepted: bool) -> str | None:
        if offer is not None and accepted:
            return offer.destination_url
        if offer is not None and offer.fallback_url:
            return offer.fallback_url
        return self._network_fallback_url


def _reject_reason(
    repo: Repository,
    request: ClickRequest,
    offer: Offer | None,
    partner: Partner | None,
    access: OfferAccess | None,
    advertiser: Advertiser | None,
) -> str | None:
    """Why the click must not go to the offer (routing, then the traffic rules), or None."""
    visitor = request.visitor()
    reason = routing.reject_reason(offer, partner, access, advertiser=advertiser, visitor=visitor)
    if reason is not None:
        return reason
    return repo.blocklist_for(request.offer_id, request.partner_id).blocked(visitor)


def _take_click_caps(repo: Repository, offer: Offer, partner_id: int, now: datetime) -> bool:
    counters = [
        (counter_key(cap, partner_id, now), cap.rule.limit) for cap in offer.caps if cap.rule.metric is CapMetric.CLICKS
    ]
    return repo.take_caps(counters)


def _click_money(repo: Repository, offer: Offer | None, partner_id: int) -> tuple[Decimal, Decimal]:
    """CPC revenue and payout of one billable click (zero unless a rule is CPC)."""
    if offer is None:
        return Decimal(0), Decimal(0)
    payout_rule = offer.payout
    if offer.revenue.type.value == "cpc" or payout_rule.type.value == "cpc":
        payout_rule = choose_payout(offer, None, repo.list_partner_payouts(offer.id), partner_id).rule
    return price_click(offer.revenue, offer.currency), price_click(payout_rule, offer.currency)
