"""Recording conversions and events (attribution, duplicates, caps, money, trace), and changing their status."""

from __future__ import annotations

import hmac
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import partial

from tracklane.domain.attribution import check_window, choose_payout, choose_status, dedup_key, match_event
from tracklane.domain.caps import CapMetric, counter_key
from tracklane.domain.errors import InvalidParameter, NotFound, PostbackRefused
from tracklane.domain.model import Click, Conversion, ConversionStatus, Offer, OfferEvent, Origin
from tracklane.domain.money import price_action
from tracklane.domain.postback import ConversionRequest
from tracklane.domain.trace import Trace
from tracklane.domain.webhooks import EventType, conversion_updated_data
from tracklane.services import outbox
from tracklane.services.ports import Clock, Database, DuplicateKey, NewConversion, Page, Repository

MAX_RACE_RETRIES = 3


@dataclass(frozen=True, slots=True)
class ConversionOutcome:
    result: str  # "accepted" or "duplicate"
    conversion: Conversion


class ConversionService:
    def __init__(self, db: Database, clock: Clock) -> None:
        self._db = db
        self._clock = clock

    async def record(self, request: ConversionRequest, origin: Origin) -> ConversionOutcome:
        """Attribute and record; a concurrent duplicate loses the unique key and is answered as duplicate."""
        for _ in range(MAX_RACE_RETRIES):
            try:
                return await self._db.write(partial(_record, request=request, origin=origin, now=self._clock()))
            except DuplicateKey:
                continue
        raise PostbackRefused("busy", "the conversion is being recorded concurrently; retry")

    async def get(self, conversion_id: int) -> Conversion:
        conversion = await self._db.read(lambda repo: repo.get_conversion(conversion_id))
        if conversion is None:
            raise NotFound(f"conversion {conversion_id} does not exist")
        return conversion

    async def list(self, page: Page) -> list[Conversion]:
        return await self._db.read(lambda repo: repo.list_conversions(page))

    async def change_status(self, conversion_id: int, status: str, reason: str | None, actor: str) -> Conversion:
        try:
            new_status = ConversionStatus(status)
        except ValueError:
            raise InvalidParameter("status", "must be approved, pending or rejected") from None
        now = self._clock()
        return await self._db.write(lambda repo: _change_status(repo, conversion_id, new_status, reason, actor, now))


def _record(repo: Repository, request: ConversionRequest, origin: Origin, now: datetime) -> ConversionOutcome:
    trace = Trace()
    click = _authenticated_click(repo, request, trace)
    offer = repo.get_offer(click.offer_id)
    if offer is None:
        raise PostbackRefused("unknown_transaction", "the click's offer no longer exists")
    event = match_event(request, repo.list_offer_events(offer.id) if request.is_event else [])
    trace.add("event", "matched", f"event #{event.id} {event.name!r}" if event else "base conversion")
    if request.currency is not None and request.currency != offer.currency:
        raise InvalidParameter("currency", f"{request.currency} differs from the offer currency {offer.currency}")
    trace.add("window", "inside", check_window(click, offer, now))
    if event is not None:
        if not repo.has_base_conversion(click.id):
            raise PostbackRefused("no_prior_conversion", "an event needs a base conversion on the same click first")
        trace.add("prior_conversion", "found", "the click has a base conversion")
    key = dedup_key(click, event, offer, request.order_id)
    if key is not None:
        existing = repo.find_conversion_by_dedup_key(key)
        if existing is not None:
            return ConversionOutcome("duplicate", existing)
    trace.add("duplicate_check", "none", _dedup_detail(key))
    return ConversionOutcome("accepted", _insert(repo, request, origin, click, offer, event, key, trace, now))


def _authenticated_click(repo: Repository, request: ConversionRequest, trace: Trace) -> Click:
    """Find the click; a postback's token must be its advertiser's (checked before revealing the click)."""
    click = repo.get_click(request.transaction_id)
    if request.token is not None:
        advertiser = repo.get_advertiser(click.advertiser_id) if click and click.advertiser_id else None
        if click is None and repo.find_advertiser_by_token(request.token) is not None:
            raise PostbackRefused("unknown_transaction", f"no click has transaction_id {request.transaction_id}")
        if advertiser is None or not hmac.compare_digest(advertiser.postback_token, request.token):
            raise PostbackRefused("invalid_token", "secure does not match the advertiser's postback token")
        trace.add("token", "valid", f"postback token of advertiser #{advertiser.id}")
    if click is None:
        raise PostbackRefused("unknown_transaction", f"no click has transaction_id {request.transaction_id}")
    trace.add("click", "found", f"click #{click.id} on offer #{click.offer_id} by partner #{click.partner_id} "
                                f"({click.verdict}{', bot' if click.device.is_bot else ''})")
    return click


def _insert(
    repo: Repository, request: ConversionRequest, origin: Origin, click: Click, offer: Offer,
    event: OfferEvent | None, key: str | None, trace: Trace, now: datetime,
) -> Conversion:
    within_caps = click.accepted and (event is not None or _take_conversion_caps(repo, offer, click, now))
    if event is None and offer.caps:
        trace.add("caps", "within" if within_caps else "full", f"{len(offer.caps)} cap(s) checked")
    revenue_rule = event.revenue if event else offer.revenue
    revenue = price_action(revenue_rule, request.amount, offer.currency)
    trace.add("revenue", str(revenue.amount), f"{'event' if event else 'offer'} revenue, {revenue.explanation}")
    choice = choose_payout(offer, event, repo.list_partner_payouts(offer.id), click.partner_id)
    payout = price_action(choice.rule, request.amount, offer.currency)
    trace.add("payout", str(payout.amount), f"{choice.source}, {payout.explanation}")
    status = choose_status(offer, click, within_caps)
    trace.add("status", status.status.value, status.detail)
    conversion = repo.insert_conversion(
        NewConversion(
            transaction_id=click.transaction_id, click_id=click.id, offer_id=offer.id, partner_id=click.partner_id,
            advertiser_id=offer.advertiser_id, event_id=event.id if event else None,
            event_name=event.name if event else None, status=status.status, status_reason=status.reason,
            revenue=revenue.amount, payout=payout.amount, revenue_type=revenue_rule.type.value,
            payout_type=choice.rule.type.value, amount=request.amount, currency=offer.currency,
            order_id=request.order_id, advs=request.advs, origin=origin.value, dedup_key=key,
            trace=trace.steps, created_at=now,
        )
    )  # fmt: skip
    outbox.conversion_registered(repo, conversion, click, now)
    return conversion


def _take_conversion_caps(repo: Repository, offer: Offer, click: Click, now: datetime) -> bool:
    counters = [(counter_key(cap, click.partner_id, now), cap.rule.limit)
                for cap in offer.caps if cap.rule.metric is CapMetric.CONVERSIONS]
    return repo.take_caps(counters)


def _dedup_detail(key: str | None) -> str:
    if key is None:
        return "multiple allowed per click and no order_id: not deduplicated"
    return f"no earlier conversion with key {key}"


def _change_status(
    repo: Repository, conversion_id: int, status: ConversionStatus, reason: str | None, actor: str, now: datetime
) -> Conversion:
    conversion = repo.get_conversion(conversion_id)
    if conversion is None:
        raise NotFound(f"conversion {conversion_id} does not exist")
    if status is ConversionStatus.REJECTED and not reason:
        raise InvalidParameter("reason", "is required to reject a conversion")
    steps: Sequence[dict[str, object]] = conversion.trace
    detail = f"{conversion.status.value} -> {status.value} by {actor}" + (f": {reason}" if reason else "")
    change: dict[str, object] = {"step": "status_change", "outcome": status.value, "detail": detail,
                                 "at": now.isoformat()}
    new_trace = [*steps, change]
    repo.update_conversion_status(conversion_id, status.value, reason, new_trace, now)
    updated = repo.get_conversion(conversion_id)
    assert updated is not None
    if updated.status is not conversion.status:
        click = repo.get_click(updated.transaction_id)
        outbox.emit(repo, EventType.CONVERSION_UPDATED,
                    conversion_updated_data(updated, click, conversion.status.value), now)
        outbox.fire_postbacks(repo, updated, click, now)
    return updated
