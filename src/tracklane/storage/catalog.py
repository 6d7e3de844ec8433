"""SQL for the catalogue: advertisers, partners, offers with caps and events, access, payouts, API keys."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import datetime
from enum import StrEnum
from typing import Any

import msgspec
from sqlalchemy import Connection, Table, bindparam, delete, insert, or_, select, update

from tracklane.domain.caps import Cap, CapRule
from tracklane.domain.model import (
    AccessStatus,
    Advertiser,
    ApiKey,
    ConversionMethod,
    Offer,
    OfferAccess,
    OfferEvent,
    Partner,
    PartnerPayout,
    Visibility,
)
from tracklane.domain.targeting import to_document
from tracklane.resources.advertisers import AdvertiserUpdate
from tracklane.resources.offers import (
    OfferAccessCreate,
    OfferAccessUpdate,
    OfferCreate,
    OfferEventCreate,
    OfferEventUpdate,
    OfferUpdate,
    PartnerPayoutCreate,
    PriceRuleBody,
    TargetingBody,
)
from tracklane.resources.partners import PartnerUpdate
from tracklane.services.ports import Page
from tracklane.storage import rows
from tracklane.storage.catalog_cache import CatalogCache
from tracklane.storage.driver import DriverStatement
from tracklane.storage.paging import paged
from tracklane.storage.rollups import raise_every_version
from tracklane.storage.schema import (
    advertisers,
    api_keys,
    cap_counters,
    offer_access,
    offer_caps,
    offer_events,
    offers,
    partner_payouts,
    partners,
)
from tracklane.storage.secret_box import box_of

_HAS_PARTNER_PAYOUTS = DriverStatement("SELECT EXISTS (SELECT 1 FROM partner_payouts WHERE offer_id = ?)")


def _columns(values: Mapping[str, Any]) -> dict[str, Any]:
    """Resource values to columns: price rules spread over their three columns, enums to their values,
    conversion methods as a list in their declared order."""
    columns: dict[str, Any] = {}
    for name, value in values.items():
        if isinstance(value, PriceRuleBody):
            columns.update(rows.price_columns(name, value.rule()))
        elif isinstance(value, TargetingBody):
            columns[name] = to_document(value.targeting())
        elif name == "conversion_methods":
            columns[name] = [m.value for m in ConversionMethod if m in value]
        elif isinstance(value, StrEnum):
            columns[name] = value.value
        else:
            columns[name] = value
    return columns


# Statements run on every click or conversion are built once: SQLAlchemy then reuses their compiled form
# without recomputing a cache key per call.
_BY_ID = {
    table.name: select(table).where(table.c.id == bindparam("id"))
    for table in (advertisers, partners, offers, offer_access)
}
_BY_TOKEN_HASH = select(advertisers).where(advertisers.c.postback_token_hash == bindparam("digest"))
_CAPS_OF_OFFER = select(offer_caps).where(offer_caps.c.offer_id == bindparam("offer_id")).order_by(offer_caps.c.id)
_ACCESS = select(offer_access).where(
    offer_access.c.offer_id == bindparam("offer_id"), offer_access.c.partner_id == bindparam("partner_id")
)


class SqlCatalog:
    conn: Connection
    cache: CatalogCache | None

    def _insert(self, table: Table, values: Mapping[str, Any]) -> Any:
        result = self.conn.execute(insert(table).values(**_columns(values)).returning(*table.c))
        return result.one()

    def _get(self, table: Table, row_id: int) -> Any:
        return self.conn.execute(_BY_ID[table.name], {"id": row_id}).one_or_none()

    def _update(self, table: Table, row_id: int, changes: Mapping[str, Any]) -> None:
        if changes:
            self.conn.execute(update(table).where(table.c.id == row_id).values(**_columns(changes)))

    # advertisers: the postback token is stored sealed, with its keyed hash as the lookup column
    def insert_advertiser(self, name: str, postback_token: str, now: datetime, status: str = "active") -> Advertiser:
        values = {
            "name": name,
            "status": status,
            **self._sealed_token(postback_token),
            "created_at": now,
            "updated_at": now,
        }
        return self._advertiser(self._insert(advertisers, values))

    def get_advertiser(self, advertiser_id: int) -> Advertiser | None:
        if self.cache is not None:  # read on every click (its status gates traffic)
            return self.cache.get(("advertiser", advertiser_id), lambda: self._load_advertiser(advertiser_id))
        return self._load_advertiser(advertiser_id)

    def _load_advertiser(self, advertiser_id: int) -> Advertiser | None:
        row = self._get(advertisers, advertiser_id)
        return None if row is None else self._advertiser(row)

    def find_advertiser_by_token(self, token: str) -> Advertiser | None:
        digest = box_of(self.conn).digest(token)
        row = self.conn.execute(_BY_TOKEN_HASH, {"digest": digest}).one_or_none()
        return None if row is None else self._advertiser(row)

    def list_advertisers(self, page: Page) -> list[Advertiser]:
        return [self._advertiser(r) for r in self.conn.execute(paged(select(advertisers), advertisers, page))]

    def update_advertiser(
        self, advertiser_id: int, changes: AdvertiserUpdate, postback_token: str | None, now: datetime
    ) -> None:
        values = rows.set_fields(changes, exclude=frozenset({"rotate_postback_token"}))
        if postback_token is not None:
            values.update(self._sealed_token(postback_token))
        self._update(advertisers, advertiser_id, {**values, "updated_at": now})

    def _sealed_token(self, token: str) -> dict[str, str]:
        box = box_of(self.conn)
        return {"postback_token": box.seal(token), "postback_token_hash": box.digest(token)}

    def _advertiser(self, row: Any) -> Advertiser:
        advertiser = rows.advertiser(row)
        return replace(advertiser, postback_token=box_of(self.conn).open(advertiser.postback_token))

    # partners
    def insert_partner(self, name: str, email: str, status: str, now: datetime) -> Partner:
        values = {"name": name, "email": email, "status": status, "created_at": now, "updated_at": now}
        return rows.partner(self._insert(partners, values))

    def get_partner(self, partner_id: int) -> Partner | None:
        if self.cache is not None:
            return self.cache.get(("partner", partner_id), lambda: self._load_partner(partner_id))
        return self._load_partner(partner_id)

    def _load_partner(self, partner_id: int) -> Partner | None:
        row = self._get(partners, partner_id)
        return None if row is None else rows.partner(row)

    def find_partner_by_email(self, email: str) -> Partner | None:
        row = self.conn.execute(select(partners).where(partners.c.email == email)).one_or_none()
        return None if row is None else rows.partner(row)

    def list_partners(self, page: Page) -> list[Partner]:
        return [rows.partner(r) for r in self.conn.execute(paged(select(partners), partners, page))]

    def update_partner(self, partner_id: int, changes: PartnerUpdate, now: datetime) -> None:
        self._update(partners, partner_id, {**rows.set_fields(changes), "updated_at": now})

    # offers
    def insert_offer(self, offer: OfferCreate, now: datetime) -> Offer:
        values = msgspec.structs.asdict(offer)
        caps = [c.rule() for c in values.pop("caps")]
        row = self._insert(offers, {**values, "created_at": now, "updated_at": now})
        self._replace_caps(row.id, caps)
        return rows.offer(row, self._caps(row.id))

    def get_offer(self, offer_id: int) -> Offer | None:
        if self.cache is not None:
            return self.cache.get(("offer", offer_id), lambda: self._load_offer(offer_id))
        return self._load_offer(offer_id)

    def _load_offer(self, offer_id: int) -> Offer | None:
        row = self._get(offers, offer_id)
        return None if row is None else rows.offer(row, self._caps(offer_id))

    def list_offers(self, page: Page) -> list[Offer]:
        return [rows.offer(r, self._caps(r.id)) for r in self.conn.execute(paged(select(offers), offers, page))]

    def list_offers_visible_to(self, partner_id: int, page: Page) -> list[Offer]:
        approved = select(offer_access.c.offer_id).where(
            offer_access.c.partner_id == partner_id, offer_access.c.status == AccessStatus.APPROVED.value
        )
        visible = select(offers).where(or_(offers.c.visibility != Visibility.PRIVATE.value, offers.c.id.in_(approved)))
        return [rows.offer(r, self._caps(r.id)) for r in self.conn.execute(paged(visible, offers, page))]

    def update_offer(self, offer_id: int, changes: OfferUpdate, now: datetime) -> None:
        values = rows.set_fields(changes, exclude=frozenset({"advertiser_id"}))
        caps = values.pop("caps", None)
        self._update(offers, offer_id, {**values, "updated_at": now})
        if "currency" in values:  # a click is reported in its offer's currency: every day's lines may change
            raise_every_version(self.conn)
        if caps is not None:
            self._replace_caps(offer_id, [c.rule() for c in caps])

    def _caps(self, offer_id: int) -> list[Cap]:
        return [rows.cap(r) for r in self.conn.execute(_CAPS_OF_OFFER, {"offer_id": offer_id})]

    def _replace_caps(self, offer_id: int, caps: Sequence[CapRule]) -> None:
        """Keep the ids (and so the counters) of caps that did not change; replace the others."""
        existing = {c.rule: c.id for c in self._caps(offer_id)}
        keep = {existing[rule] for rule in caps if rule in existing}
        drop = [cap_id for cap_id in existing.values() if cap_id not in keep]
        if drop:
            # SQLite may give a dropped cap's id to the next new cap: its counters must not count for it.
            self.conn.execute(delete(cap_counters).where(cap_counters.c.cap_id.in_(drop)))
            self.conn.execute(delete(offer_caps).where(offer_caps.c.id.in_(drop)))
        for rule in caps:
            if rule not in existing:
                self.conn.execute(
                    insert(offer_caps).values(
                        offer_id=offer_id,
                        metric=rule.metric.value,
                        period=rule.period.value,
                        cap_limit=rule.limit,
                        per_partner=rule.per_partner,
                    )
                )

    # offer events
    def insert_offer_event(self, offer_id: int, event: OfferEventCreate, now: datetime) -> OfferEvent:
        values = {**msgspec.structs.asdict(event), "offer_id": offer_id, "created_at": now}
        return rows.offer_event(self._insert(offer_events, values))

    def list_offer_events(self, offer_id: int) -> list[OfferEvent]:
        query = select(offer_events).where(offer_events.c.offer_id == offer_id).order_by(offer_events.c.id)
        return [rows.offer_event(r) for r in self.conn.execute(query)]

    def update_offer_event(self, event_id: int, changes: OfferEventUpdate) -> None:
        self._update(offer_events, event_id, rows.set_fields(changes))

    # offer access
    def get_access(self, offer_id: int, partner_id: int) -> OfferAccess | None:
        if self.cache is not None:
            key = ("access", offer_id, partner_id)
            return self.cache.get(key, lambda: self._load_access(offer_id, partner_id))
        return self._load_access(offer_id, partner_id)

    def _load_access(self, offer_id: int, partner_id: int) -> OfferAccess | None:
        row = self.conn.execute(_ACCESS, {"offer_id": offer_id, "partner_id": partner_id}).one_or_none()
        return None if row is None else rows.access(row)

    def get_access_by_id(self, access_id: int) -> OfferAccess | None:
        row = self._get(offer_access, access_id)
        return None if row is None else rows.access(row)

    def save_access(self, access: OfferAccessCreate, now: datetime) -> OfferAccess:
        current = self.get_access(access.offer_id, access.partner_id)
        if current is None:
            values = {**msgspec.structs.asdict(access), "created_at": now, "updated_at": now}
            return rows.access(self._insert(offer_access, values))
        self._update(offer_access, current.id, {"status": access.status, "reason": access.reason, "updated_at": now})
        return rows.access(self._get(offer_access, current.id))

    def update_access(self, access_id: int, changes: OfferAccessUpdate, now: datetime) -> None:
        self._update(offer_access, access_id, {**rows.set_fields(changes), "updated_at": now})

    def list_access(self, page: Page) -> list[OfferAccess]:
        return [rows.access(r) for r in self.conn.execute(paged(select(offer_access), offer_access, page))]

    # partner payouts
    def insert_partner_payout(self, offer_id: int, payout: PartnerPayoutCreate, now: datetime) -> PartnerPayout:
        replaced = delete(partner_payouts).where(
            partner_payouts.c.offer_id == offer_id,
            partner_payouts.c.partner_id == payout.partner_id,
            partner_payouts.c.event_id.is_(None) if payout.event_id is None
            else partner_payouts.c.event_id == payout.event_id,
        )  # fmt: skip
        self.conn.execute(replaced)
        row = self._insert(partner_payouts, {**msgspec.structs.asdict(payout), "offer_id": offer_id,
                                             "created_at": now})  # fmt: skip
        return rows.partner_payout(row)

    def list_partner_payouts(self, offer_id: int) -> list[PartnerPayout]:
        """The offer's partner-specific payouts (most offers have none: asked first, on the driver's cursor, for
        each conversion and CPC click)."""
        if not _HAS_PARTNER_PAYOUTS.execute(self.conn, (offer_id,)).fetchone()[0]:
            return []
        query = select(partner_payouts).where(partner_payouts.c.offer_id == offer_id).order_by(partner_payouts.c.id)
        return [rows.partner_payout(r) for r in self.conn.execute(query)]

    def delete_partner_payout(self, offer_id: int, payout_id: int) -> bool:
        query = delete(partner_payouts).where(partner_payouts.c.id == payout_id, partner_payouts.c.offer_id == offer_id)
        return bool(self.conn.execute(query).rowcount)

    # API keys
    def insert_api_key(
        self,
        role: str,
        advertiser_id: int | None,
        partner_id: int | None,
        key_hash: str,
        prefix: str,
        now: datetime,
    ) -> ApiKey:
        values = {
            "role": role,
            "advertiser_id": advertiser_id,
            "partner_id": partner_id,
            "key_hash": key_hash,
            "prefix": prefix,
            "created_at": now,
        }
        return rows.api_key(self._insert(api_keys, values))

    def find_api_key(self, key_hash: str) -> ApiKey | None:
        query = select(api_keys).where(api_keys.c.key_hash == key_hash, api_keys.c.revoked_at.is_(None))
        row = self.conn.execute(query).one_or_none()
        return None if row is None else rows.api_key(row)

    def list_api_keys(self, page: Page) -> list[ApiKey]:
        query = paged(select(api_keys).where(api_keys.c.revoked_at.is_(None)), api_keys, page)
        return [rows.api_key(r) for r in self.conn.execute(query)]

    def revoke_api_key(self, key_id: int, now: datetime) -> bool:
        query = update(api_keys).where(api_keys.c.id == key_id, api_keys.c.revoked_at.is_(None))
        return bool(self.conn.execute(query.values(revoked_at=now)).rowcount)
