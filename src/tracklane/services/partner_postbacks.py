"""Use cases of partner postbacks: register a URL template (macros checked on save), change, re-activate."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tracklane.domain.destinations import AllowList, refuse_literal
from tracklane.domain.errors import InvalidParameter, NotFound
from tracklane.domain.partner_postbacks import PartnerPostback, PostbackStatus, parse_postback
from tracklane.services.ports import Clock, Database, Page, Repository


class PartnerPostbackService:
    def __init__(self, db: Database, clock: Clock, allow: AllowList) -> None:
        self._allow = allow
        self._db = db
        self._clock = clock

    async def create(self, body: Mapping[str, Any]) -> PartnerPostback:
        partner_id = _id(body.get("partner_id"), "partner_id")
        offer_id = None if body.get("offer_id") is None else _id(body.get("offer_id"), "offer_id")
        values = parse_postback(body, partial=False)
        refuse_literal(values["url"], self._allow, "url")
        values.update(partner_id=partner_id, offer_id=offer_id, status=PostbackStatus.ACTIVE, failure_count=0)
        now = self._clock()

        def work(repo: Repository) -> PartnerPostback:
            if repo.get_partner(partner_id) is None:
                raise InvalidParameter("partner_id", f"partner {partner_id} does not exist")
            if offer_id is not None and repo.get_offer(offer_id) is None:
                raise InvalidParameter("offer_id", f"offer {offer_id} does not exist")
            return repo.insert_partner_postback(values, now)

        return await self._db.write(work)

    async def get(self, postback_id: int) -> PartnerPostback:
        return _found(await self._db.read(lambda repo: repo.get_partner_postback(postback_id)), postback_id)

    async def list(self, page: Page) -> list[PartnerPostback]:
        return await self._db.read(lambda repo: repo.list_partner_postbacks(page))

    async def update(self, postback_id: int, body: Mapping[str, Any]) -> PartnerPostback:
        """Change the template or options; `"status": "active"` re-activates a deactivated postback."""
        if "partner_id" in body:
            raise InvalidParameter("partner_id", "cannot be changed")
        changes = parse_postback(body, partial=True)
        if "url" in changes:
            refuse_literal(changes["url"], self._allow, "url")
        if "offer_id" in body:
            changes["offer_id"] = None if body["offer_id"] is None else _id(body["offer_id"], "offer_id")
        if "status" in body:
            try:
                changes["status"] = PostbackStatus(body["status"])
            except ValueError:
                raise InvalidParameter("status", "must be active or inactive") from None
            if changes["status"] is PostbackStatus.ACTIVE:
                changes.update(deactivated_reason=None, failure_count=0, failure_started_at=None)
        now = self._clock()

        def work(repo: Repository) -> PartnerPostback:
            _found(repo.get_partner_postback(postback_id), postback_id)
            if changes.get("offer_id") is not None and repo.get_offer(changes["offer_id"]) is None:
                raise InvalidParameter("offer_id", f"offer {changes['offer_id']} does not exist")
            repo.update_partner_postback(postback_id, changes, now)
            return _found(repo.get_partner_postback(postback_id), postback_id)

        return await self._db.write(work)


def _found(postback: PartnerPostback | None, postback_id: int) -> PartnerPostback:
    if postback is None:
        raise NotFound(f"partner postback {postback_id} does not exist")
    return postback


def _id(raw: object, field: str) -> int:
    if isinstance(raw, bool) or not isinstance(raw, int) or raw <= 0:
        raise InvalidParameter(field, "must be a positive integer")
    return raw
