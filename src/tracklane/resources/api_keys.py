"""API keys: the body that creates one, the key as listed, and the answer that issues it (the clear key is
shown once, in `ApiKeyIssued`; only its SHA-256 is stored). Keys are the admin's alone."""

from __future__ import annotations

from datetime import datetime

from tracklane.domain.errors import InvalidParameter
from tracklane.domain.model import ApiKey, Role
from tracklane.resources.fields import Id, Struct, View


class ApiKeyCreate(Struct):
    """`advertiser_id` is required for (and only for) an advertiser key, `partner_id` for a partner key."""

    role: Role
    advertiser_id: Id | None = None
    partner_id: Id | None = None

    def __post_init__(self) -> None:
        owners = {"advertiser_id": (Role.ADVERTISER, self.advertiser_id), "partner_id": (Role.PARTNER, self.partner_id)}
        for field, (role, value) in owners.items():
            if role is self.role and value is None:
                raise InvalidParameter(field, f"is required for role {self.role.value}")
            if role is not self.role and value is not None:
                raise InvalidParameter(field, f"is not used by role {self.role.value}")


class ApiKeyView(View, frozen=True):
    id: int
    role: Role
    advertiser_id: int | None
    partner_id: int | None
    prefix: str
    created_at: datetime


class ApiKeyIssued(ApiKeyView, frozen=True):
    """The key just created, with its clear text: shown this once."""

    key: str


def api_key_view(k: ApiKey) -> ApiKeyView:
    return ApiKeyView(id=k.id, role=k.role, advertiser_id=k.advertiser_id, partner_id=k.partner_id, prefix=k.prefix,
                      created_at=k.created_at)  # fmt: skip


def api_key_issued(k: ApiKey, key: str) -> ApiKeyIssued:
    return ApiKeyIssued(id=k.id, role=k.role, advertiser_id=k.advertiser_id, partner_id=k.partner_id, prefix=k.prefix,
                        created_at=k.created_at, key=key)  # fmt: skip
