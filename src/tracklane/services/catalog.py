"""Use cases of the catalogue: advertisers, partners (and their sign-up verdict), offers, offer events,
offer access and partner-specific payouts."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from tracklane.domain.catalog import parse_email, parse_name, parse_offer, parse_offer_event
from tracklane.domain.errors import Conflict, InvalidParameter, NotFound
from tracklane.domain.model import (
    AccessStatus,
    Advertiser,
    Offer,
    OfferAccess,
    OfferEvent,
    Partner,
    PartnerPayout,
    PartnerStatus,
    Role,
    Visibility,
)
from tracklane.domain.money import PriceRule
from tracklane.domain.tenancy import Scope
from tracklane.domain.webhooks import (
    EventType,
    approved_for_offer_data,
    offer_data,
)
from tracklane.resources.advertisers import AdvertiserCreate, AdvertiserUpdate, advertiser_data
from tracklane.resources.partners import PartnerCreate, PartnerUpdate, Verdict, partner_view, signup_verdict_data
from tracklane.services.outbox import emit
from tracklane.services.ports import Clock, Database, Page, Repository

Body = Mapping[str, Any]
T = TypeVar("T")


class CatalogService:
    def __init__(self, db: Database, clock: Clock, new_secret: Callable[[], str]) -> None:
        self._db = db
        self._clock = clock
        self._new_secret = new_secret

    # advertisers
    async def create_advertiser(self, body: AdvertiserCreate) -> Advertiser:
        token, now = self._new_secret(), self._clock()

        def work(repo: Repository) -> Advertiser:
            advertiser = repo.insert_advertiser(body.name, token, now)
            emit(repo, EventType.ADVERTISER_CREATED, advertiser_data(advertiser), now)
            return advertiser

        return await self._db.write(work)

    async def get_advertiser(self, advertiser_id: int) -> Advertiser:
        return _found(await self._db.read(lambda repo: repo.get_advertiser(advertiser_id)), "advertiser", advertiser_id)

    async def list_advertisers(self, page: Page) -> list[Advertiser]:
        return await self._db.read(lambda repo: repo.list_advertisers(page))

    async def update_advertiser(self, advertiser_id: int, body: AdvertiserUpdate) -> Advertiser:
        token = self._new_secret() if body.rotate_postback_token is True else None
        now = self._clock()

        def work(repo: Repository) -> Advertiser:
            _found(repo.get_advertiser(advertiser_id), "advertiser", advertiser_id)
            repo.update_advertiser(advertiser_id, body, token, now)
            advertiser = _found(repo.get_advertiser(advertiser_id), "advertiser", advertiser_id)
            emit(repo, EventType.ADVERTISER_UPDATED, advertiser_data(advertiser), now)
            return advertiser

        return await self._db.write(work)

    # partners
    async def create_partner(self, body: PartnerCreate, status: PartnerStatus) -> Partner:
        """An admin creates active partners (`partner.created`); a public sign-up is pending (`partner.signed_up`)."""
        name, email, now = body.name, body.email, self._clock()
        event = EventType.PARTNER_SIGNED_UP if status is PartnerStatus.PENDING else EventType.PARTNER_CREATED

        def work(repo: Repository) -> Partner:
            if repo.find_partner_by_email(email) is not None:
                raise Conflict(f"email: a partner with {email} already exists")
            partner = repo.insert_partner(name, email, status.value, now)
            emit(repo, event, partner_view(partner), now)
            return partner

        return await self._db.write(work)

    async def get_partner(self, partner_id: int) -> Partner:
        return _found(await self._db.read(lambda repo: repo.get_partner(partner_id)), "partner", partner_id)

    async def list_partners(self, page: Page) -> list[Partner]:
        return await self._db.read(lambda repo: repo.list_partners(page))

    async def update_partner(self, partner_id: int, body: PartnerUpdate) -> Partner:
        return await self._update_partner(partner_id, body)

    async def partner_verdict(self, partner_id: int, verdict: Verdict) -> Partner:
        """Approve or reject a partner's sign-up."""
        return await self._update_partner(partner_id, PartnerUpdate(status=verdict.status), verdict)

    async def _update_partner(self, partner_id: int, changes: PartnerUpdate, verdict: Verdict | None = None) -> Partner:
        now = self._clock()

        def work(repo: Repository) -> Partner:
            _found(repo.get_partner(partner_id), "partner", partner_id)
            email = changes.email
            other = repo.find_partner_by_email(email) if isinstance(email, str) else None
            if other is not None and other.id != partner_id:
                raise Conflict(f"email: a partner with {email} already exists")
            repo.update_partner(partner_id, changes, now)
            partner = _found(repo.get_partner(partner_id), "partner", partner_id)
            emit(repo, EventType.PARTNER_UPDATED, partner_view(partner), now)
            if verdict is not None:
                emit(repo, EventType.PARTNER_SIGNUP_VERDICT, signup_verdict_data(partner, verdict, now), now)
            return partner

        return await self._db.write(work)

    # offers
    async def create_offer(self, body: Body) -> Offer:
        advertiser_id = _id(body.get("advertiser_id"), "advertiser_id")
        values = parse_offer(body, partial=False)
        caps = values.pop("caps")
        now = self._clock()

        def work(repo: Repository) -> Offer:
            if repo.get_advertiser(advertiser_id) is None:
                raise InvalidParameter("advertiser_id", f"advertiser {advertiser_id} does not exist")
            offer = repo.insert_offer({**values, "advertiser_id": advertiser_id}, caps, now)
            emit(repo, EventType.OFFER_CREATED, offer_data(offer), now)
            return offer

        return await self._db.write(work)

    async def get_offer(self, offer_id: int) -> Offer:
        return _found(await self._db.read(lambda repo: repo.get_offer(offer_id)), "offer", offer_id)

    async def list_offers(self, page: Page) -> list[Offer]:
        return await self._db.read(lambda repo: repo.list_offers(page))

    async def list_offers_visible_to(self, partner_id: int, page: Page) -> list[Offer]:
        return await self._db.read(lambda repo: repo.list_offers_visible_to(partner_id, page))

    async def visible_offer(self, scope: Scope, offer_id: int) -> Offer:
        """The offer if this caller may see it: its advertiser's, or one its partner may run; else not found."""

        def work(repo: Repository) -> Offer | None:
            offer = repo.get_offer(offer_id)
            if offer is None or scope.is_admin:
                return offer
            if scope.role is Role.ADVERTISER:
                return offer if offer.advertiser_id == scope.advertiser_id else None
            access = repo.get_access(offer_id, scope.partner_id) if scope.partner_id is not None else None
            approved = access is not None and access.status is AccessStatus.APPROVED
            return offer if offer.visibility is not Visibility.PRIVATE or approved else None

        return _found(await self._db.read(work), "offer", offer_id)

    async def update_offer(self, offer_id: int, body: Body) -> Offer:
        if "advertiser_id" in body:
            raise InvalidParameter("advertiser_id", "cannot be changed")
        values = parse_offer(body, partial=True)
        caps = values.pop("caps", None)
        now = self._clock()

        def work(repo: Repository) -> Offer:
            _found(repo.get_offer(offer_id), "offer", offer_id)
            repo.update_offer(offer_id, values, caps, now)
            offer = _found(repo.get_offer(offer_id), "offer", offer_id)
            emit(repo, EventType.OFFER_UPDATED, offer_data(offer), now)
            return offer

        return await self._db.write(work)

    # offer events
    async def create_offer_event(self, offer_id: int, body: Body) -> OfferEvent:
        values, now = parse_offer_event(body, partial=False), self._clock()

        def work(repo: Repository) -> OfferEvent:
            _found(repo.get_offer(offer_id), "offer", offer_id)
            if any(e.name == values["name"] for e in repo.list_offer_events(offer_id)):
                raise Conflict(f"name: offer {offer_id} already has an event named {values['name']!r}")
            return repo.insert_offer_event(offer_id, values, now)

        return await self._db.write(work)

    async def list_offer_events(self, offer_id: int) -> list[OfferEvent]:
        def work(repo: Repository) -> list[OfferEvent]:
            _found(repo.get_offer(offer_id), "offer", offer_id)
            return repo.list_offer_events(offer_id)

        return await self._db.read(work)

    async def update_offer_event(self, offer_id: int, event_id: int, body: Body) -> OfferEvent:
        values = parse_offer_event(body, partial=True)

        def work(repo: Repository) -> OfferEvent:
            events = {e.id: e for e in repo.list_offer_events(offer_id)}
            _found(events.get(event_id), "event", event_id)
            if any(e.name == values.get("name") and e.id != event_id for e in events.values()):
                raise Conflict(f"name: offer {offer_id} already has an event named {values['name']!r}")
            repo.update_offer_event(event_id, values)
            return {e.id: e for e in repo.list_offer_events(offer_id)}[event_id]

        return await self._db.write(work)

    # offer access
    async def set_access(self, offer_id: object, partner_id: object, status: object, reason: object) -> OfferAccess:
        oid, pid = _id(offer_id, "offer_id"), _id(partner_id, "partner_id")
        try:
            access_status = AccessStatus(str(status))
        except ValueError:
            raise InvalidParameter("status", "must be requested, approved or rejected") from None
        if reason is not None and not isinstance(reason, str):
            raise InvalidParameter("reason", "must be a string")
        now = self._clock()

        def work(repo: Repository) -> OfferAccess:
            offer, partner = repo.get_offer(oid), repo.get_partner(pid)
            if offer is None:
                raise InvalidParameter("offer_id", f"offer {oid} does not exist")
            if partner is None:
                raise InvalidParameter("partner_id", f"partner {pid} does not exist")
            before = repo.get_access(oid, pid)
            access = repo.save_access(oid, pid, access_status.value, reason, now)
            newly_approved = before is None or before.status is not AccessStatus.APPROVED
            if access.status is AccessStatus.APPROVED and newly_approved:
                emit(repo, EventType.PARTNER_APPROVED_FOR_OFFER, approved_for_offer_data(access, offer, partner), now)
            return access

        return await self._db.write(work)

    async def get_access(self, access_id: int) -> OfferAccess:
        return _found(await self._db.read(lambda repo: repo.get_access_by_id(access_id)), "offer access", access_id)

    async def list_access(self, page: Page) -> list[OfferAccess]:
        return await self._db.read(lambda repo: repo.list_access(page))

    # partner payouts
    async def set_partner_payout(self, offer_id: int, body: Body) -> PartnerPayout:
        partner_id = _id(body.get("partner_id"), "partner_id")
        event_id = None if body.get("event_id") is None else _id(body.get("event_id"), "event_id")
        payout, now = PriceRule.parse(body.get("payout"), "payout"), self._clock()

        def work(repo: Repository) -> PartnerPayout:
            _found(repo.get_offer(offer_id), "offer", offer_id)
            if repo.get_partner(partner_id) is None:
                raise InvalidParameter("partner_id", f"partner {partner_id} does not exist")
            if event_id is not None and all(e.id != event_id for e in repo.list_offer_events(offer_id)):
                raise InvalidParameter("event_id", f"event {event_id} is not an event of offer {offer_id}")
            return repo.insert_partner_payout(offer_id, partner_id, event_id, {"payout": payout}, now)

        return await self._db.write(work)

    async def list_partner_payouts(self, offer_id: int) -> list[PartnerPayout]:
        return await self._db.read(lambda repo: repo.list_partner_payouts(offer_id))

    async def delete_partner_payout(self, payout_id: int) -> None:
        if not await self._db.write(lambda repo: repo.delete_partner_payout(payout_id)):
            raise NotFound(f"partner payout {payout_id} does not exist")


def _found(value: T | None, kind: str, ident: int) -> T:
    if value is None:
        raise NotFound(f"{kind} {ident} does not exist")
    return value


def _id(raw: object, field: str) -> int:
    if isinstance(raw, bool) or not isinstance(raw, int) or raw <= 0:
        raise InvalidParameter(field, "is required and must be a positive integer")
    return raw
