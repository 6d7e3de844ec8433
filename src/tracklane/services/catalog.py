"""Use cases of the catalogue: advertisers and partners (with their public sign-ups and the verdicts on
them), offers, offer events, offer access and partner-specific payouts, and the webhook payloads of the
catalogue's changes.

A payload is built inside the write that makes the change, from what that write reads: an advertiser or a
partner with its billing details and its users (contacts), an offer with its events and targeting. Every
change of what an offer's payload shows emits `offer.updated`: the offer itself (its caps included), and
each event added or changed.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import TypeVar

from tracklane.domain.errors import Conflict, Forbidden, InvalidParameter, NotFound
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
    UserStatus,
)
from tracklane.domain.tenancy import Scope
from tracklane.domain.webhooks import EventType
from tracklane.resources.advertisers import (
    AdvertiserCreate,
    AdvertiserData,
    AdvertiserSignUp,
    AdvertiserUpdate,
    advertiser_data,
    verdict_status,
)
from tracklane.resources.fields import UNSET
from tracklane.resources.offers import (
    OfferAccessCreate,
    OfferAccessUpdate,
    OfferCreate,
    OfferData,
    OfferEventCreate,
    OfferEventUpdate,
    OfferUpdate,
    PartnerPayoutCreate,
    approved_for_offer_data,
    offer_data,
)
from tracklane.resources.partners import (
    DecidedBy,
    PartnerCreate,
    PartnerData,
    PartnerUpdate,
    Verdict,
    partner_data,
    signup_verdict_data,
)
from tracklane.services.outbox import emit
from tracklane.services.ports import Clock, Database, NewUser, Page, Repository, raise_refused, refusing

T = TypeVar("T")

#: The most users (contacts) an advertiser's or a partner's payload lists: the oldest ones.
MAX_CONTACTS = 100


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
            if body.billing is not UNSET:
                repo.update_advertiser(advertiser.id, AdvertiserUpdate(billing=body.billing), None, now)
                advertiser = _found(repo.get_advertiser(advertiser.id), "advertiser", advertiser.id)
            emit(repo, EventType.ADVERTISER_CREATED, advertiser_payload(repo, advertiser), now)
            return advertiser

        return raise_refused(await self._db.write(refusing(work)))

    async def sign_up_advertiser(self, body: AdvertiserSignUp) -> Advertiser:
        """A public sign-up: a `pending` advertiser (no billable traffic until an admin approves it) and its
        contact as an invited user of its portal, in one write; `advertiser.signed_up` carries both. An e-mail
        address a user has already is refused."""
        token, now = self._new_secret(), self._clock()

        def work(repo: Repository) -> Advertiser:
            if repo.find_user_by_email(body.email) is not None:
                raise Conflict(f"email: a user with {body.email} already exists", field="email")
            advertiser = repo.insert_advertiser(body.name, token, now, status="pending")
            if body.billing is not UNSET:
                repo.update_advertiser(advertiser.id, AdvertiserUpdate(billing=body.billing), None, now)
                advertiser = _found(repo.get_advertiser(advertiser.id), "advertiser", advertiser.id)
            contact = NewUser(body.email, body.contact_name or "", Role.ADVERTISER, advertiser.id, None,
                              UserStatus.INVITED, now)  # fmt: skip
            repo.insert_user(contact)
            emit(repo, EventType.ADVERTISER_SIGNED_UP, advertiser_payload(repo, advertiser), now)
            return advertiser

        return raise_refused(await self._db.write(refusing(work)))

    async def advertiser_verdict(self, advertiser_id: int, verdict: Verdict) -> Advertiser:
        """Approve (`active`) or reject an advertiser's sign-up; `advertiser.updated` carries the new status."""
        update = AdvertiserUpdate(status=verdict_status(verdict), status_reason=verdict.reason)
        return await self.update_advertiser(advertiser_id, update)

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
            emit(repo, EventType.ADVERTISER_UPDATED, advertiser_payload(repo, advertiser), now)
            return advertiser

        return raise_refused(await self._db.write(refusing(work)))

    # partners
    async def create_partner(self, body: PartnerCreate, status: PartnerStatus) -> Partner:
        """An admin creates active partners (`partner.created`); a public sign-up is pending (`partner.signed_up`)."""
        name, email, now = body.name, body.email, self._clock()
        event = EventType.PARTNER_SIGNED_UP if status is PartnerStatus.PENDING else EventType.PARTNER_CREATED

        def work(repo: Repository) -> Partner:
            if repo.find_partner_by_email(email) is not None:
                raise Conflict(f"email: a partner with {email} already exists")
            partner = repo.insert_partner(name, email, status.value, now)
            if body.billing is not UNSET:
                repo.update_partner(partner.id, PartnerUpdate(billing=body.billing), now)
                partner = _found(repo.get_partner(partner.id), "partner", partner.id)
            emit(repo, event, partner_payload(repo, partner), now)
            return partner

        return raise_refused(await self._db.write(refusing(work)))

    async def get_partner(self, partner_id: int) -> Partner:
        return _found(await self._db.read(lambda repo: repo.get_partner(partner_id)), "partner", partner_id)

    async def list_partners(self, page: Page) -> list[Partner]:
        return await self._db.read(lambda repo: repo.list_partners(page))

    async def update_partner(self, partner_id: int, body: PartnerUpdate) -> Partner:
        return await self._update_partner(partner_id, body)

    async def partner_verdict(self, partner_id: int, verdict: Verdict, decided_by: DecidedBy) -> Partner:
        """Approve or reject a partner's sign-up; `partner.signup_verdict` says who decided, and when."""
        update = PartnerUpdate(status=verdict.status, status_reason=verdict.reason)
        return await self._update_partner(partner_id, update, (verdict, decided_by))

    async def _update_partner(
        self, partner_id: int, changes: PartnerUpdate, verdict: tuple[Verdict, DecidedBy] | None = None
    ) -> Partner:
        now = self._clock()

        def work(repo: Repository) -> Partner:
            _found(repo.get_partner(partner_id), "partner", partner_id)
            email = changes.email
            other = repo.find_partner_by_email(email) if isinstance(email, str) else None
            if other is not None and other.id != partner_id:
                raise Conflict(f"email: a partner with {email} already exists")
            repo.update_partner(partner_id, changes, now)
            partner = _found(repo.get_partner(partner_id), "partner", partner_id)
            payload = partner_payload(repo, partner)
            emit(repo, EventType.PARTNER_UPDATED, payload, now)
            if verdict is not None:
                given, decided_by = verdict
                emit(repo, EventType.PARTNER_SIGNUP_VERDICT, signup_verdict_data(payload, given, decided_by, now), now)
            return partner

        return raise_refused(await self._db.write(refusing(work)))

    # offers
    async def create_offer(self, body: OfferCreate) -> Offer:
        now = self._clock()

        def work(repo: Repository) -> Offer:
            if repo.get_advertiser(body.advertiser_id) is None:
                raise InvalidParameter("advertiser_id", f"advertiser {body.advertiser_id} does not exist")
            offer = repo.insert_offer(body, now)
            emit(repo, EventType.OFFER_CREATED, offer_payload(repo, offer), now)
            return offer

        return raise_refused(await self._db.write(refusing(work)))

    async def get_offer(self, offer_id: int) -> Offer:
        return _found(await self._db.read(lambda repo: repo.get_offer(offer_id)), "offer", offer_id)

    async def list_offers(self, page: Page) -> list[Offer]:
        return await self._db.read(lambda repo: repo.list_offers(page))

    async def offers_seen_by(self, scope: Scope, page: Page) -> list[Offer]:
        """All offers (admin), the advertiser's own, or those a partner may run (not private, or approved)."""
        if scope.role is Role.PARTNER:
            partner_id = _partner_of(scope)
            return await self._db.read(lambda repo: repo.list_offers_visible_to(partner_id, page))
        filters = {**page.filters, **scope.filters}
        narrowed = Page(page.limit, page.cursor, page.created_from, page.created_to, filters)
        return await self._db.read(lambda repo: repo.list_offers(narrowed))

    async def visible_offer(self, scope: Scope, offer_id: int) -> Offer:
        """The offer if this caller may see it: its advertiser's, or one its partner may run; else not found."""
        return _found(await self._db.read(lambda repo: _visible_offer(repo, scope, offer_id)), "offer", offer_id)

    async def payouts_of_partner(self, partner_id: int, offer_ids: Sequence[int]) -> list[PartnerPayout]:
        """The partner-specific payouts of one partner on these offers (for the partner's own views)."""

        def work(repo: Repository) -> list[PartnerPayout]:
            return [p for offer_id in dict.fromkeys(offer_ids) for p in repo.list_partner_payouts(offer_id)
                    if p.partner_id == partner_id]  # fmt: skip

        return await self._db.read(work)

    async def update_offer(self, offer_id: int, changes: OfferUpdate) -> Offer:
        now = self._clock()

        def work(repo: Repository) -> Offer:
            _found(repo.get_offer(offer_id), "offer", offer_id)
            repo.update_offer(offer_id, changes, now)
            offer = _found(repo.get_offer(offer_id), "offer", offer_id)
            emit(repo, EventType.OFFER_UPDATED, offer_payload(repo, offer), now)
            return offer

        return raise_refused(await self._db.write(refusing(work)))

    # offer events
    async def create_offer_event(self, offer_id: int, body: OfferEventCreate) -> tuple[OfferEvent, Offer]:
        """The new event, with its offer (whose currency the event's money is shown in); `offer.updated`."""
        now = self._clock()

        def work(repo: Repository) -> tuple[OfferEvent, Offer]:
            _found(repo.get_offer(offer_id), "offer", offer_id)
            if any(e.name == body.name for e in repo.list_offer_events(offer_id)):
                raise Conflict(f"name: offer {offer_id} already has an event named {body.name!r}")
            event = repo.insert_offer_event(offer_id, body, now)
            return event, _offer_changed(repo, offer_id, now)

        return raise_refused(await self._db.write(refusing(work)))

    async def list_offer_events(self, offer_id: int) -> list[OfferEvent]:
        def work(repo: Repository) -> list[OfferEvent]:
            _found(repo.get_offer(offer_id), "offer", offer_id)
            return repo.list_offer_events(offer_id)

        return await self._db.read(work)

    async def update_offer_event(
        self, offer_id: int, event_id: int, changes: OfferEventUpdate
    ) -> tuple[OfferEvent, Offer]:
        """The changed event, with its offer; `offer.updated`."""
        now = self._clock()

        def work(repo: Repository) -> tuple[OfferEvent, Offer]:
            _found(repo.get_offer(offer_id), "offer", offer_id)
            events = {e.id: e for e in repo.list_offer_events(offer_id)}
            _found(events.get(event_id), "event", event_id)
            if any(e.name == changes.name and e.id != event_id for e in events.values()):
                raise Conflict(f"name: offer {offer_id} already has an event named {changes.name!r}")
            repo.update_offer_event(event_id, changes)
            offer = _offer_changed(repo, offer_id, now)
            return {e.id: e for e in repo.list_offer_events(offer_id)}[event_id], offer

        return raise_refused(await self._db.write(refusing(work)))

    # offer access
    async def set_access(self, body: OfferAccessCreate) -> OfferAccess:
        now = self._clock()

        def work(repo: Repository) -> OfferAccess:
            offer, partner = repo.get_offer(body.offer_id), repo.get_partner(body.partner_id)
            if offer is None:
                raise InvalidParameter("offer_id", f"offer {body.offer_id} does not exist")
            if partner is None:
                raise InvalidParameter("partner_id", f"partner {body.partner_id} does not exist")
            before = repo.get_access(offer.id, partner.id)
            access = repo.save_access(body, now)
            _approved(repo, before, access, offer, partner, now)
            return access

        return raise_refused(await self._db.write(refusing(work)))

    async def update_access(self, access_id: int, changes: OfferAccessUpdate) -> OfferAccess:
        now = self._clock()

        def work(repo: Repository) -> OfferAccess:
            before = _found(repo.get_access_by_id(access_id), "offer access", access_id)
            repo.update_access(access_id, changes, now)
            access = _found(repo.get_access_by_id(access_id), "offer access", access_id)
            offer, partner = repo.get_offer(access.offer_id), repo.get_partner(access.partner_id)
            if offer is not None and partner is not None:
                _approved(repo, before, access, offer, partner, now)
            return access

        return raise_refused(await self._db.write(refusing(work)))

    async def list_access(self, page: Page) -> list[OfferAccess]:
        return await self._db.read(lambda repo: repo.list_access(page))

    # partner payouts
    async def set_partner_payout(self, offer_id: int, body: PartnerPayoutCreate) -> tuple[PartnerPayout, Offer]:
        """The new partner-specific payout (replacing an earlier one), with its offer."""
        now = self._clock()

        def work(repo: Repository) -> tuple[PartnerPayout, Offer]:
            offer = _found(repo.get_offer(offer_id), "offer", offer_id)
            if repo.get_partner(body.partner_id) is None:
                raise InvalidParameter("partner_id", f"partner {body.partner_id} does not exist")
            if body.event_id is not None and all(e.id != body.event_id for e in repo.list_offer_events(offer_id)):
                raise InvalidParameter("event_id", f"event {body.event_id} is not an event of offer {offer_id}")
            return repo.insert_partner_payout(offer_id, body, now), offer

        return raise_refused(await self._db.write(refusing(work)))

    async def list_partner_payouts(self, offer_id: int) -> tuple[list[PartnerPayout], Offer]:
        def work(repo: Repository) -> tuple[list[PartnerPayout], Offer]:
            offer = _found(repo.get_offer(offer_id), "offer", offer_id)
            return repo.list_partner_payouts(offer_id), offer

        return await self._db.read(work)

    async def delete_partner_payout(self, offer_id: int, payout_id: int) -> None:
        if not await self._db.write(lambda repo: repo.delete_partner_payout(offer_id, payout_id)):
            raise NotFound(f"partner payout {payout_id} of offer {offer_id} does not exist")


def advertiser_payload(repo: Repository, advertiser: Advertiser) -> AdvertiserData:
    """The advertiser as its webhooks carry it: billing details and users."""
    users = repo.list_users(Page(limit=MAX_CONTACTS, filters={"advertiser_id": advertiser.id}))
    return advertiser_data(advertiser, users)


def partner_payload(repo: Repository, partner: Partner) -> PartnerData:
    """The partner as its webhooks carry it: billing details and users."""
    return partner_data(partner, repo.list_users(Page(limit=MAX_CONTACTS, filters={"partner_id": partner.id})))


def offer_payload(repo: Repository, offer: Offer) -> OfferData:
    """The offer as its webhooks carry it: its events and targeting."""
    return offer_data(offer, repo.list_offer_events(offer.id))


def _offer_changed(repo: Repository, offer_id: int, now: datetime) -> Offer:
    """Something its payload shows changed (an event): the offer is updated now, and `offer.updated` says so."""
    repo.update_offer(offer_id, OfferUpdate(), now)
    offer = _found(repo.get_offer(offer_id), "offer", offer_id)
    emit(repo, EventType.OFFER_UPDATED, offer_payload(repo, offer), now)
    return offer


def _visible_offer(repo: Repository, scope: Scope, offer_id: int) -> Offer | None:
    offer = repo.get_offer(offer_id)
    if offer is None or scope.is_admin:
        return offer
    if scope.role is Role.ADVERTISER:
        return offer if offer.advertiser_id == scope.advertiser_id else None
    return offer if offer.visible_to_partner(repo.get_access(offer_id, _partner_of(scope))) else None


def _partner_of(scope: Scope) -> int:
    if scope.partner_id is None:
        raise Forbidden("this partner key belongs to no partner")
    return scope.partner_id


def _approved(
    repo: Repository, before: OfferAccess | None, access: OfferAccess, offer: Offer, partner: Partner, now: datetime
) -> None:
    """`partner.approved_for_offer` when the access has just become approved (not again while it stays so)."""
    newly = before is None or before.status is not AccessStatus.APPROVED
    if access.status is AccessStatus.APPROVED and newly:
        data = approved_for_offer_data(access, offer_payload(repo, offer), partner_payload(repo, partner))
        emit(repo, EventType.PARTNER_APPROVED_FOR_OFFER, data, now)


def _found(value: T | None, kind: str, ident: int) -> T:
    if value is None:
        raise NotFound(f"{kind} {ident} does not exist")
    return value
