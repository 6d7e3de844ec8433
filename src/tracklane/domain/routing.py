"""Where a click goes: the verdict on a visit through a tracking link (the offer's and its advertiser's status,
the partner's standing, offer access, the offer's targeting), and the macro values it carries."""

from __future__ import annotations

from datetime import datetime

from tracklane.domain.model import (
    AccessStatus,
    Advertiser,
    Offer,
    OfferAccess,
    OfferStatus,
    Partner,
    PartnerStatus,
    Visibility,
)
from tracklane.domain.targeting import Visitor, mismatch

ADVERTISER_INACTIVE = "advertiser_inactive"


def reject_reason(
    offer: Offer | None,
    partner: Partner | None,
    access: OfferAccess | None,
    *,
    advertiser: Advertiser | None = None,
    visitor: Visitor | None = None,
) -> str | None:
    """Why the click must not go to the offer, or None when it may (caps are checked after this). The
    advertiser's status is checked when `advertiser` is given, the offer's targeting when `visitor` is."""
    if offer is None:
        return "unknown_offer"
    if offer.status is not OfferStatus.ACTIVE:
        return "offer_paused"
    if advertiser is not None and advertiser.status != "active":
        return ADVERTISER_INACTIVE
    if partner is None:
        return "unknown_partner"
    if partner.status is not PartnerStatus.ACTIVE:
        return f"partner_{partner.status.value}"
    approved = access is not None and access.status is AccessStatus.APPROVED
    if offer.visibility is not Visibility.PUBLIC and not approved:
        return "offer_access_not_approved"
    if access is not None and access.status is AccessStatus.REJECTED:
        return "offer_access_rejected"
    return None if visitor is None else mismatch(offer.targeting, visitor)


def click_macro_values(
    transaction_id: str,
    offer_id: int,
    partner_id: int,
    advertiser_id: int | None,
    subs: tuple[str | None, ...],
    source_id: str | None,
    now: datetime,
) -> dict[str, str | None]:
    """The macro values a destination URL can use at click time."""
    values: dict[str, str | None] = {
        "transaction_id": transaction_id,
        "offer_id": str(offer_id),
        "partner_id": str(partner_id),
        "advertiser_id": None if advertiser_id is None else str(advertiser_id),
        "source_id": source_id,
        "timestamp": str(int(now.timestamp())),
    }
    for index, sub in enumerate(subs, start=1):
        values[f"sub{index}"] = sub
    return values
