"""Recording conversions and events (owner of the channel, attribution, duplicates, caps, money, trace),
reading them as the caller's role sees them, and changing their status.

Every channel converts only the clicks it owns: `/postback` those of the advertiser whose token it carries,
the pixel those its `ClickClaim` proves (its offer's click, by that offer's cookie or a click token; a Segment
source checks its advertiser before it calls `_record`), and only on offers that accept the channel's
`ConversionMethod`. A refusal is decided before anything is written and comes out of the write as a
`Refused` value, which the service raises once the write has returned: a refused postback never aborts the
writer's batch (and so never slows the clicks committed with it).

A CSV file of offline conversions is imported row by row through the same `record_or_refuse`
(`tracklane.services.conversion_import`).
"""

from __future__ import annotations

import hmac
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import datetime
from decimal import Decimal
from functools import partial

from tracklane.domain.attribution import check_window, choose_payout, choose_status, dedup_key, match_event
from tracklane.domain.caps import CapMetric, counter_key
from tracklane.domain.errors import Forbidden, InvalidParameter, NotFound, PostbackRefused, TracklaneError
from tracklane.domain.model import (
    Click,
    Conversion,
    ConversionMethod,
    ConversionStatus,
    Offer,
    OfferEvent,
    Origin,
    Role,
)
from tracklane.domain.money import SALE_PRICED, format_money, minor_units, price_action, round_money
from tracklane.domain.postback import ClickClaim, ConversionRequest, Proof, click_mac_matches
from tracklane.domain.tenancy import Scope, narrow, owns
from tracklane.domain.trace import Side, Trace, TraceStep
from tracklane.domain.webhooks import EventType, conversion_updated_data
from tracklane.resources.conversion_imports import ConversionImportView
from tracklane.resources.conversions import ConversionChange, ConversionRoleView, conversion_view_for
from tracklane.resources.fields import UNSET
from tracklane.services import outbox
from tracklane.services.conversion_import import import_file
from tracklane.services.ports import (
    Clock,
    Database,
    DuplicateKey,
    NewConversion,
    Page,
    Refused,
    Repository,
    raise_refused,
)

MAX_RACE_RETRIES = 3

#: The method a channel of each origin converts by, unless it names another (the pixel's origin is `sdk`).
METHOD_OF_ORIGIN = {
    Origin.POSTBACK: ConversionMethod.POSTBACK,
    Origin.SEGMENT: ConversionMethod.SEGMENT,
    Origin.SDK: ConversionMethod.SDK,
    Origin.API: ConversionMethod.API,
}


@dataclass(frozen=True, slots=True)
class ConversionOutcome:
    result: str  # "accepted" or "duplicate"
    conversion: Conversion


class ConversionService:
    def __init__(self, db: Database, clock: Clock) -> None:
        self._db = db
        self._clock = clock

    async def record(
        self,
        request: ConversionRequest,
        origin: Origin,
        *,
        method: ConversionMethod | None = None,
        claim: ClickClaim | None = None,
    ) -> ConversionOutcome:
        """Attribute and record; a concurrent duplicate loses the unique key and is answered as duplicate."""
        work = partial(record_or_refuse, request=request, origin=origin, now=self._clock(), method=method, claim=claim)
        for _ in range(MAX_RACE_RETRIES):
            try:
                return raise_refused(await self._db.write(work))
            except DuplicateKey:
                continue
        raise PostbackRefused("busy", "the conversion is being recorded concurrently; retry")

    async def import_file(self, scope: Scope, data: bytes, *, dry_run: bool) -> ConversionImportView:
        """Record the conversions of a CSV file, each row attributed like an API conversion (an admin's key:
        any click; an advertiser's: its own clicks); with `dry_run`, report what that would do, writing
        nothing. A problem with the file itself is `InvalidParameter`, before anything is written."""
        return await import_file(self._db, record_or_refuse, scope, data, self._clock(), dry_run=dry_run)

    async def get(self, scope: Scope, conversion_id: int) -> ConversionRoleView:
        def work(repo: Repository) -> ConversionRoleView:
            return _view(repo, scope, _visible(repo, scope, conversion_id))

        return await self._db.read(work)

    async def list(self, scope: Scope, page: Page) -> list[ConversionRoleView]:
        """Conversions of the caller's tenant, newest first; a filter naming another tenant is `Forbidden`."""
        narrowed = replace(page, filters=narrow(scope, page.filters))

        def work(repo: Repository) -> list[ConversionRoleView]:
            found = repo.list_conversions(narrowed)
            shares = _shares_amount(repo, {c.offer_id for c in found}) if scope.role is Role.PARTNER else {}
            return [conversion_view_for(scope, c, shares.get(c.offer_id, False)) for c in found]

        return await self._db.read(work)

    async def change(
        self, scope: Scope, conversion_id: int, change: ConversionChange, actor: str
    ) -> ConversionRoleView:
        """Approve, hold or reject, adjust the money, or both, in one write (the admin, or the conversion's
        advertiser, which may not set a payout; never a partner). A refund of the whole sale amount given
        without a status also reverses the conversion (it becomes rejected, with the same reason)."""
        if scope.role is Role.PARTNER:
            raise Forbidden("a partner key cannot change a conversion")
        now = self._clock()

        def work(repo: Repository) -> ConversionRoleView | Refused:
            try:
                conversion = _visible(repo, scope, conversion_id, hold=True)
                adjustment = _adjustment(repo, scope, conversion, change) if change.moves_money else None
            except (NotFound, InvalidParameter, Forbidden) as error:
                return Refused(error)
            if change.status is ConversionStatus.REJECTED and change.reason is None:
                return Refused(InvalidParameter("reason", "is required to reject a conversion"))
            status = change.status
            if status is UNSET and adjustment is not None and _refunded_in_full(conversion, adjustment):
                status = ConversionStatus.REJECTED
            if adjustment is not None:
                _adjust(repo, conversion, adjustment, f"{actor}: {change.reason}", now)
            if status is not UNSET:
                _change_status(repo, conversion_id, status, change.reason, actor, now)
            updated = repo.get_conversion(conversion_id)
            assert updated is not None
            return _view(repo, scope, updated)

        changed = await self._db.write(work)
        if isinstance(changed, Refused):
            raise changed.error
        return changed


def _visible(repo: Repository, scope: Scope, conversion_id: int, hold: bool = False) -> Conversion:
    """The conversion (held until the write commits, to be changed from), or `NotFound` when it does not exist
    or belongs to another tenant (the same answer)."""
    conversion = repo.hold_conversion(conversion_id) if hold else repo.get_conversion(conversion_id)
    if conversion is None or not owns(scope, conversion.advertiser_id, conversion.partner_id):
        raise NotFound(f"conversion {conversion_id} does not exist")
    return conversion


def _view(repo: Repository, scope: Scope, conversion: Conversion) -> ConversionRoleView:
    shares = _shares_amount(repo, [conversion.offer_id]) if scope.role is Role.PARTNER else {}
    return conversion_view_for(scope, conversion, shares.get(conversion.offer_id, False))


def _shares_amount(repo: Repository, offer_ids: Iterable[int]) -> dict[int, bool]:
    """Whether each offer shows partners the sale amount (an offer that no longer exists does not)."""
    shares = {}
    for offer_id in set(offer_ids):
        offer = repo.get_offer(offer_id)
        shares[offer_id] = offer is not None and offer.share_amount_with_partners
    return shares


def _record(
    repo: Repository,
    request: ConversionRequest,
    origin: Origin,
    now: datetime,
    method: ConversionMethod | None = None,
    claim: ClickClaim | None = None,
) -> ConversionOutcome:
    """Record one conversion or event on `repo` (inside the caller's transaction); a refusal is raised.

    `method`: the channel's conversion method (default: the one of `origin`). `claim`: what a channel
    without the postback token proves about the click; the click must match it.
    """
    return raise_refused(record_or_refuse(repo, request, origin, now, method, claim))


@dataclass(frozen=True, slots=True)
class _Accepted:
    """What the checks decided for a conversion to insert."""

    click: Click
    offer: Offer
    event: OfferEvent | None
    key: str | None
    trace: Trace


def record_or_refuse(
    repo: Repository,
    request: ConversionRequest,
    origin: Origin,
    now: datetime,
    method: ConversionMethod | None = None,
    claim: ClickClaim | None = None,
) -> ConversionOutcome | Refused:
    """`_record`, with a refusal returned: every check reads only, so a refused request has written nothing
    (an import attributes each row of its file with it, many in one write)."""
    try:
        decided = _decide(repo, request, origin, now, method, claim)
    except TracklaneError as error:
        return Refused(error)
    if isinstance(decided, ConversionOutcome):
        return decided
    inserted = _insert(repo, request, origin, decided.click, decided.offer, decided.event, decided.key,
                       decided.trace, now)  # fmt: skip
    return ConversionOutcome("accepted", inserted)


def _decide(
    repo: Repository,
    request: ConversionRequest,
    origin: Origin,
    now: datetime,
    method: ConversionMethod | None,
    claim: ClickClaim | None,
) -> _Accepted | ConversionOutcome:
    """Every check of a conversion, reading only: what to insert, or the duplicate it is; raises a refusal."""
    trace = Trace()
    click = _authenticated_click(repo, request, claim, trace)
    offer = repo.get_offer(click.offer_id)
    if offer is None:
        raise PostbackRefused("unknown_transaction", "the click's offer no longer exists")
    owner = repo.get_advertiser(offer.advertiser_id)
    if owner is None or owner.status != "active":
        raise PostbackRefused("advertiser_inactive", f"advertiser #{offer.advertiser_id} of offer #{offer.id} is "
                                                     "inactive: its offers take no conversions")  # fmt: skip
    channel = method or METHOD_OF_ORIGIN[origin]
    if not offer.accepts(channel):
        raise PostbackRefused("method_not_enabled", f"offer #{offer.id} does not accept conversions by {channel.value}")
    trace.add("method", channel.value, f"offer #{offer.id} accepts conversions by {channel.value}")
    event = match_event(request, repo.list_offer_events(offer.id) if request.is_event else [])
    trace.add("event", "matched", f"event #{event.id} {event.name!r}" if event else "base conversion")
    if request.currency is not None and request.currency != offer.currency:
        raise InvalidParameter("currency", f"{request.currency} differs from the offer currency {offer.currency}")
    trace.add("window", "inside", check_window(click, offer, now))
    if event is not None:
        trace.add("prior_conversion", "found", _prior_conversion(repo, click))
    key = dedup_key(click, event, offer, request.order_id)
    if key is not None:
        existing = repo.find_conversion_by_dedup_key(key)
        if existing is not None:
            return ConversionOutcome("duplicate", existing)
    trace.add("duplicate_check", "none", _dedup_detail(key))
    return _Accepted(click, offer, event, key, trace)


def _prior_conversion(repo: Repository, click: Click) -> str:
    """An event needs a base conversion of its click that still counts: one that is approved or pending. When
    every base conversion of the click was rejected (fraud, say), its events are refused, never paid."""
    statuses = repo.base_conversion_statuses(click.id)
    if not statuses:
        raise PostbackRefused("no_prior_conversion", "an event needs a base conversion on the same click first")
    if statuses == {ConversionStatus.REJECTED}:
        raise PostbackRefused(
            "base_conversion_rejected", "the click's base conversion was rejected: its events are refused"
        )
    kept = ", ".join(s.value for s in ConversionStatus if s in statuses and s is not ConversionStatus.REJECTED)
    return f"the click has a base conversion ({kept})"


def _authenticated_click(repo: Repository, request: ConversionRequest, claim: ClickClaim | None, trace: Trace) -> Click:
    """Find the click; a postback's token must be its advertiser's (checked before revealing the click)."""
    click = repo.get_click(request.transaction_id)
    if request.token is not None:
        advertiser = repo.get_advertiser(click.advertiser_id) if click and click.advertiser_id else None
        if click is None and repo.find_advertiser_by_token(request.token) is not None:
            raise PostbackRefused("unknown_transaction", f"no click has transaction_id {request.transaction_id}")
        if advertiser is None or not hmac.compare_digest(advertiser.postback_token.encode(), request.token.encode()):
            raise PostbackRefused("invalid_token", "secure does not match the advertiser's postback token")
        trace.add("token", "valid", f"postback token of advertiser #{advertiser.id}")
    if click is None:
        raise PostbackRefused("unknown_transaction", f"no click has transaction_id {request.transaction_id}")
    if claim is not None:
        _check_claim(repo, click, claim, trace)
    trace.add(
        "click",
        "found",
        f"click #{click.id} on offer #{click.offer_id} by partner #{click.partner_id} "
        f"({click.verdict}{', bot' if click.device.is_bot else ''})",
    )
    return click


def _check_claim(repo: Repository, click: Click, claim: ClickClaim, trace: Trace) -> None:
    """A click the claim does not cover is refused as unknown to this channel."""
    if claim.mac is not None:
        advertiser = repo.get_advertiser(click.advertiser_id) if click.advertiser_id else None
        if advertiser is None or not click_mac_matches(click.transaction_id, claim.mac, advertiser.postback_token):
            raise PostbackRefused("invalid_token", "the click token was not issued for this click, or the "
                                                   "advertiser's postback token was rotated since")  # fmt: skip
    if claim.offer_id is not None and click.offer_id != claim.offer_id:
        raise PostbackRefused(
            "unknown_transaction", f"no click of offer #{claim.offer_id} has transaction_id {click.transaction_id}"
        )
    if claim.advertiser_id is not None and click.advertiser_id != claim.advertiser_id:
        # the answer to a click that does not exist: another advertiser's click is not revealed
        raise PostbackRefused("unknown_transaction", f"no click has transaction_id {click.transaction_id}")
    key_owner = f"advertiser #{claim.advertiser_id}" if claim.advertiser_id is not None else "the admin"
    details = {
        Proof.COOKIE: f"the tl_{claim.offer_id} cookie of the offer names this click",
        Proof.CLICK_TOKEN: "a click token issued by /clk for this click",
        Proof.API_KEY: f"an API key of {key_owner}",
    }
    trace.add(claim.proof.value, "valid", details[claim.proof])


def _insert(
    repo: Repository,
    request: ConversionRequest,
    origin: Origin,
    click: Click,
    offer: Offer,
    event: OfferEvent | None,
    key: str | None,
    trace: Trace,
    now: datetime,
) -> Conversion:
    within_caps = click.accepted and (event is not None or _take_conversion_caps(repo, offer, click, now))
    if event is None and offer.caps:
        trace.add("caps", "within" if within_caps else "full", f"{len(offer.caps)} cap(s) checked")
    revenue_rule = event.revenue if event else offer.revenue
    revenue = price_action(revenue_rule, request.amount, offer.currency)
    trace.add(
        "revenue", str(revenue.amount), f"{'event' if event else 'offer'} revenue, {revenue.explanation}", Side.REVENUE
    )
    choice = choose_payout(offer, event, repo.list_partner_payouts(offer.id), click.partner_id)
    payout = price_action(choice.rule, request.amount, offer.currency)
    trace.add("payout", str(payout.amount), f"{choice.source}, {payout.explanation}", Side.PAYOUT)
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
            trace=tuple(trace.steps), created_at=now,
        )
    )  # fmt: skip
    outbox.conversion_registered(repo, conversion, click, now)
    return conversion


def _take_conversion_caps(repo: Repository, offer: Offer, click: Click, now: datetime) -> bool:
    counters = [
        (counter_key(cap, click.partner_id, now), cap.rule.limit)
        for cap in offer.caps
        if cap.rule.metric is CapMetric.CONVERSIONS
    ]
    return repo.take_caps(counters)


def _dedup_detail(key: str | None) -> str:
    if key is None:
        return "multiple allowed per click and no order_id: not deduplicated"
    return f"no earlier conversion with key {key}"


@dataclass(frozen=True, slots=True)
class _Adjustment:
    """A conversion's money after an adjustment (each side's the same as before where nothing moved it)."""

    amount: Decimal | None
    revenue: Decimal
    payout: Decimal
    refund: Decimal | None


def _adjustment(repo: Repository, scope: Scope, conversion: Conversion, change: ConversionChange) -> _Adjustment:
    """The money a change gives a conversion: the new sale amount recomputes each side priced on it (by
    the offer's or event's rule), unless that side is given; refused before anything is written."""
    if change.reason is None:
        raise InvalidParameter("reason", "is required to change a conversion's money")
    if change.payout is not UNSET and scope.role is not Role.ADMIN:
        raise Forbidden("payout: only an admin key sets a partner's payout")
    amount = conversion.amount
    if change.amount is not UNSET:
        amount = change.amount
    if change.refund is not UNSET:
        if conversion.amount is None or change.refund > conversion.amount:
            raise InvalidParameter("refund", f"is more than the sale amount ({conversion.amount or 0})")
        amount = conversion.amount - change.refund
    revenue, payout = conversion.revenue, conversion.payout
    if amount != conversion.amount:
        offer = repo.get_offer(conversion.offer_id)
        assert offer is not None
        event = next((e for e in repo.list_offer_events(offer.id) if e.id == conversion.event_id), None)
        if conversion.revenue_type in SALE_PRICED:
            revenue = price_action(event.revenue if event else offer.revenue, amount, offer.currency).amount
        if conversion.payout_type in SALE_PRICED:
            choice = choose_payout(offer, event, repo.list_partner_payouts(offer.id), conversion.partner_id)
            payout = price_action(choice.rule, amount, offer.currency).amount
    currency = conversion.currency
    return _Adjustment(
        amount=amount,
        revenue=_in_currency(change.revenue, "revenue", currency) if change.revenue is not UNSET else revenue,
        payout=_in_currency(change.payout, "payout", currency) if change.payout is not UNSET else payout,
        refund=change.refund if change.refund is not UNSET else None,
    )


def _refunded_in_full(conversion: Conversion, to: _Adjustment) -> bool:
    """A sale amount taken to 0 by a refund or an update: the order is gone (impact.com's amount 0 reversal)."""
    had_sale = conversion.amount is not None and conversion.amount > 0
    return had_sale and to.amount == 0 and conversion.status is not ConversionStatus.REJECTED


def _in_currency(amount: Decimal, field: str, currency: str) -> Decimal:
    """Money set by hand is exact in its currency: a fraction of its smallest unit is refused, never rounded."""
    if round_money(amount, currency) != amount:
        raise InvalidParameter(field, f"has more decimal places than {currency} has ({minor_units(currency)})")
    return amount


def _adjust(repo: Repository, conversion: Conversion, to: _Adjustment, why: str, now: datetime) -> None:
    """Write the adjusted money and its audit steps: a common one (who and why, no money) and one on each
    side whose money moved, with the value before and after (the sale amount is on the revenue side)."""
    shown = partial(_money_text, currency=conversion.currency)
    steps = [TraceStep("adjustment", "money", f"by {why}", at=now)]
    if to.amount != conversion.amount:
        refund = f" (refund of {shown(to.refund)})" if to.refund is not None else ""
        steps.append(TraceStep("amount", shown(to.amount), f"sale amount {shown(conversion.amount)} -> "
                               f"{shown(to.amount)}{refund}", Side.REVENUE, at=now))  # fmt: skip
    for side, before, after in ((Side.REVENUE, conversion.revenue, to.revenue),
                                (Side.PAYOUT, conversion.payout, to.payout)):  # fmt: skip
        if after != before:
            steps.append(TraceStep(side.value, shown(after), f"adjusted {shown(before)} -> {shown(after)}", side,
                                   at=now))  # fmt: skip
    repo.update_conversion_money(conversion.id, to.amount, to.revenue, to.payout, (*conversion.trace, *steps), now)
    updated = repo.get_conversion(conversion.id)
    assert updated is not None
    click = repo.get_click(updated.transaction_id)
    outbox.emit(repo, EventType.CONVERSION_UPDATED, conversion_updated_data(updated, click, updated.status.value), now)


def _money_text(amount: Decimal | None, currency: str) -> str:
    return "none" if amount is None else format_money(amount, currency)


def _change_status(
    repo: Repository, conversion_id: int, status: ConversionStatus, reason: str | None, actor: str, now: datetime
) -> Conversion:
    """Set the status (a rejection carries its reason) and append the change to the trace (a common step:
    it names the actor and the reason, never money)."""
    conversion = repo.hold_conversion(conversion_id)
    if conversion is None:
        raise NotFound(f"conversion {conversion_id} does not exist")
    reversal = conversion.status is ConversionStatus.APPROVED and status is ConversionStatus.REJECTED
    what = f"{conversion.status.value} -> {status.value}" + (" (reversed)" if reversal else "")
    detail = f"{what} by {actor}" + (f": {reason}" if reason else "")
    change = TraceStep("status_change", status.value, detail, at=now)
    repo.update_conversion_status(conversion_id, status, reason, (*conversion.trace, change), now)
    updated = repo.get_conversion(conversion_id)
    assert updated is not None
    if updated.status is not conversion.status:
        click = repo.get_click(updated.transaction_id)
        outbox.emit(
            repo, EventType.CONVERSION_UPDATED, conversion_updated_data(updated, click, conversion.status.value), now
        )
        outbox.fire_postbacks(repo, updated, click, now)
    return updated
