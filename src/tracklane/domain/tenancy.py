"""Which rows an API key may see: those of its own tenant.

An admin key sees every row. An advertiser key sees its own offers and their clicks, conversions and
reports; a partner key the offers it may run and its own clicks, conversions and reports. A row of another
tenant is answered exactly like one that does not exist.

What each role sees *of* a row (only the money of its side of the deal) is not decided here: each resource
has one view type per role (`tracklane.resources`), which lacks what the role may not see.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from tracklane.domain.errors import Forbidden
from tracklane.domain.model import ApiKey, Role


@dataclass(frozen=True, slots=True)
class Scope:
    role: Role
    advertiser_id: int | None = None
    partner_id: int | None = None

    @property
    def is_admin(self) -> bool:
        return self.role is Role.ADMIN

    @property
    def filters(self) -> dict[str, int]:
        """The row filter every list read through this key gets."""
        if self.role is Role.ADVERTISER and self.advertiser_id is not None:
            return {"advertiser_id": self.advertiser_id}
        if self.role is Role.PARTNER and self.partner_id is not None:
            return {"partner_id": self.partner_id}
        return {}


def scope_of(key: ApiKey) -> Scope:
    owner = {Role.ADVERTISER: key.advertiser_id, Role.PARTNER: key.partner_id}.get(key.role, 0)
    if owner is None:
        raise Forbidden(f"this {key.role.value} key belongs to no {key.role.value}")
    return Scope(key.role, key.advertiser_id, key.partner_id)


def narrow(scope: Scope, filters: Mapping[str, Any]) -> dict[str, Any]:
    """The caller's filters within its tenant; asking for another tenant's rows is refused."""
    narrowed = {name: value for name, value in filters.items() if value is not None}
    for name, own in scope.filters.items():
        asked = narrowed.get(name)
        if asked is not None and asked != own:
            raise Forbidden(f"this key sees only {name} {own}")
        narrowed[name] = own
    return narrowed


def owns(scope: Scope, advertiser_id: int | None, partner_id: int | None) -> bool:
    """Whether a row of this advertiser and partner belongs to the caller's tenant."""
    own = scope.filters
    if "advertiser_id" in own:
        return advertiser_id == own["advertiser_id"]
    if "partner_id" in own:
        return partner_id == own["partner_id"]
    return scope.is_admin
