"""Use cases of partner postbacks: register a URL template (macros checked on save), change, re-activate, test,
delete.

Partner postbacks belong to partners: an admin manages every one, a partner key its own (another partner's
postback is not found, exactly like one that does not exist), an advertiser key none. An `offer_id` the
caller may not see gets the very answer of an `offer_id` that does not exist, on create and on change.
A template names only macros the partner may see; `{amount}` only on a postback bound to an offer that
shares the sale amount.

A test queues one delivery of the postback through the outbox, at once, with sample values
(`resources.partner_postbacks.sample_conversion`), marked `test` in its delivery log; one test at a time.

Deleting a postback removes it for good, as partners of Everflow and impact.com expect of "delete": it is no
longer listed or found, never fires again, cannot be turned back on, and its queued deliveries are skipped.
Its delivery log is kept (the admin still reads it, by the postback's id): a partner's dispute about a
conversion fired months ago still has its evidence. Turning a postback off (`status` inactive) is the way to
pause one.
"""

from __future__ import annotations

from dataclasses import replace

import msgspec

from tracklane.domain.delivery import TEST_EVENT_TYPE, Delivery, DeliveryKind, DeliveryStatus
from tracklane.domain.destinations import AllowList, refuse_destination
from tracklane.domain.errors import Conflict, Forbidden, InvalidParameter, NotFound
from tracklane.domain.macros import expand, refuse_unshared_amount
from tracklane.domain.model import Offer, Role, Visibility
from tracklane.domain.partner_postbacks import PartnerPostback, PostbackStatus
from tracklane.domain.tenancy import Scope, narrow, owns
from tracklane.resources.fields import UNSET
from tracklane.resources.partner_postbacks import (
    GLOBAL_AMOUNT,
    PartnerPostbackCreate,
    PartnerPostbackUpdate,
    macro_values,
    sample_conversion,
)
from tracklane.services.ports import (
    Clock,
    Database,
    NewDelivery,
    Page,
    PostbackState,
    Repository,
    raise_refused,
    refusing,
)


class PartnerPostbackService:
    def __init__(self, db: Database, clock: Clock, allow: AllowList) -> None:
        self._allow = allow
        self._db = db
        self._clock = clock

    async def create(self, caller: Scope, body: PartnerPostbackCreate) -> PartnerPostback:
        partner_id = _owner(caller, body.partner_id)
        refuse_destination(body.url, self._allow, "url")
        now = self._clock()

        def work(repo: Repository) -> PartnerPostback:
            if repo.get_partner(partner_id) is None:
                raise InvalidParameter("partner_id", f"partner {partner_id} does not exist")
            offer = None if body.offer_id is None else _visible_offer(repo, caller, body.offer_id)
            _refuse_unshared_amount(body.url, offer)
            return repo.insert_partner_postback(partner_id, body, now)

        return raise_refused(await self._db.write(refusing(work)))

    async def get(self, caller: Scope, postback_id: int) -> PartnerPostback:
        return await self._db.read(lambda repo: _own(repo, caller, postback_id))

    async def list(self, caller: Scope, page: Page, partner_id: int | None = None) -> list[PartnerPostback]:
        """Every postback (admin, optionally of one partner), or the partner key's own."""
        _managing(caller)
        narrowed = replace(page, filters={**page.filters, **narrow(caller, {"partner_id": partner_id})})
        return await self._db.read(lambda repo: repo.list_partner_postbacks(narrowed))

    async def update(self, caller: Scope, postback_id: int, body: PartnerPostbackUpdate) -> PartnerPostback:
        """Change the template or options; `"status": "active"` re-activates a deactivated postback."""
        if isinstance(body.url, str):
            refuse_destination(body.url, self._allow, "url")
        now = self._clock()

        def work(repo: Repository) -> PartnerPostback:
            current = _own(repo, caller, postback_id)
            offer_id = current.offer_id if body.offer_id is UNSET else body.offer_id
            if body.offer_id is not UNSET or body.url is not UNSET:
                if offer_id is None:
                    offer = None
                elif body.offer_id is not UNSET:
                    offer = _visible_offer(repo, caller, offer_id)
                else:
                    offer = repo.get_offer(offer_id)
                _refuse_unshared_amount(current.url if body.url is UNSET else body.url, offer)
            repo.update_partner_postback(postback_id, body, now)
            if body.status is PostbackStatus.ACTIVE:
                repo.set_partner_postback_state(postback_id, PostbackState(PostbackStatus.ACTIVE), now)
            elif body.status is not UNSET:
                state = replace(PostbackState.of(current), status=PostbackStatus.INACTIVE)
                repo.set_partner_postback_state(postback_id, state, now)
            return _found(repo.get_partner_postback(postback_id), postback_id)

        return raise_refused(await self._db.write(refusing(work)))

    async def test(self, caller: Scope, postback_id: int) -> Delivery:
        """Queue a test: the postback's URL (and for POST its body) with sample values, sent at once, once, to
        the postback's URL even while it is turned off; a `Conflict` while an earlier test waits to be sent."""
        now = self._clock()

        def work(repo: Repository) -> Delivery:
            postback = _own(repo, caller, postback_id)
            for waiting in (DeliveryStatus.PENDING, DeliveryStatus.SENDING):
                filters = {"postback_id": postback.id, "event_type": TEST_EVENT_TYPE, "status": waiting.value}
                if repo.list_deliveries(Page(limit=1, filters=filters)):
                    raise Conflict(f"a test of partner postback {postback_id} is still waiting to be sent; see its "
                                   "delivery log")  # fmt: skip
            offer = None if postback.offer_id is None else repo.get_offer(postback.offer_id)
            shown = sample_conversion(postback, offer, now)
            body = msgspec.json.encode(shown).decode() if postback.method == "POST" else None
            queued = repo.insert_delivery(NewDelivery(
                kind=DeliveryKind.POSTBACK, event_type=TEST_EVENT_TYPE, method=postback.method, body=body,
                status=DeliveryStatus.PENDING, next_attempt_at=now, created_at=now, postback_id=postback.id,
                url=expand(postback.url, macro_values(shown)),
            ))  # fmt: skip
            assert queued is not None, "a test has no dedup key"
            return queued

        return raise_refused(await self._db.write(refusing(work)))

    async def delete(self, caller: Scope, postback_id: int) -> None:
        """Delete the postback (see the module's docstring): gone from every list and read, its log kept."""
        now = self._clock()

        def work(repo: Repository) -> None:
            _own(repo, caller, postback_id)
            repo.delete_partner_postback(postback_id, now)

        raise_refused(await self._db.write(refusing(work)))


def _owner(caller: Scope, partner_id: int | None) -> int:
    """The partner a new postback belongs to: the one an admin names, or the partner key's own."""
    _managing(caller)
    if caller.partner_id is not None:
        if partner_id is not None and partner_id != caller.partner_id:
            raise Forbidden(f"this key sees only partner_id {caller.partner_id}")
        return caller.partner_id
    if partner_id is None:
        raise InvalidParameter("partner_id", "is required with an admin key")
    return partner_id


def _managing(caller: Scope) -> None:
    if caller.role is Role.ADVERTISER:
        raise Forbidden("partner postbacks are managed by an admin or by the partner itself")


def _own(repo: Repository, caller: Scope, postback_id: int) -> PartnerPostback:
    _managing(caller)
    postback = _found(repo.get_partner_postback(postback_id), postback_id)
    if not owns(caller, None, postback.partner_id):
        raise NotFound(f"partner postback {postback_id} does not exist")
    return postback


def _visible_offer(repo: Repository, caller: Scope, offer_id: int) -> Offer:
    """The offer if the caller may see it; one it may not is refused exactly like one that does not exist."""
    offer = repo.get_offer(offer_id)
    if offer is not None and caller.partner_id is not None:
        access = repo.get_access(offer_id, caller.partner_id) if offer.visibility is Visibility.PRIVATE else None
        offer = offer if offer.visible_to_partner(access) else None
    if offer is None:
        raise InvalidParameter("offer_id", f"offer {offer_id} does not exist")
    return offer


def _refuse_unshared_amount(url: str, offer: Offer | None) -> None:
    """`{amount}` only on a postback bound to an offer that shares the sale amount (`offer` None: every offer)."""
    if offer is None:
        refuse_unshared_amount(url, "url", GLOBAL_AMOUNT)
    elif not offer.share_amount_with_partners:
        refuse_unshared_amount(url, "url", f"offer {offer.id} does not share the sale amount with partners "
                                           "(share_amount_with_partners)")  # fmt: skip


def _found(postback: PartnerPostback | None, postback_id: int) -> PartnerPostback:
    if postback is None:
        raise NotFound(f"partner postback {postback_id} does not exist")
    return postback
