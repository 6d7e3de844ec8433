"""API keys: creation (the key is shown once, only its SHA-256 is kept), lookup by key, revocation."""

from __future__ import annotations

import hashlib
from collections.abc import Callable

from tracklane.domain.errors import InvalidParameter, NotFound
from tracklane.domain.model import ApiKey, Role
from tracklane.services.ports import Clock, Database, Page, Repository


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


class ApiKeyService:
    def __init__(self, db: Database, clock: Clock, new_key: Callable[[], str]) -> None:
        self._db = db
        self._clock = clock
        self._new_key = new_key

    async def create(self, role: object, advertiser_id: object = None, partner_id: object = None) -> tuple[ApiKey, str]:
        """A new key and its clear text (shown once)."""
        key = self._new_key()
        return await self._db.write(self.creator(role, advertiser_id, partner_id, key)), key

    def creator(
        self, role: object, advertiser_id: object, partner_id: object, key: str
    ) -> Callable[[Repository], ApiKey]:
        """The write that stores `key` (validated now); storing an existing key returns it unchanged."""
        try:
            parsed_role = Role(str(role))
        except ValueError:
            raise InvalidParameter("role", "must be admin, advertiser or partner") from None
        owner_field = {Role.ADVERTISER: "advertiser_id", Role.PARTNER: "partner_id"}.get(parsed_role)
        owner = {"advertiser_id": advertiser_id, "partner_id": partner_id}
        for field, value in owner.items():
            if field == owner_field and (isinstance(value, bool) or not isinstance(value, int)):
                raise InvalidParameter(field, f"is required for role {parsed_role.value}")
            if field != owner_field and value is not None:
                raise InvalidParameter(field, f"is not used by role {parsed_role.value}")
        now = self._clock()

        def work(repo: Repository) -> ApiKey:
            if parsed_role is Role.ADVERTISER and repo.get_advertiser(int(str(advertiser_id))) is None:
                raise InvalidParameter("advertiser_id", f"advertiser {advertiser_id} does not exist")
            if parsed_role is Role.PARTNER and repo.get_partner(int(str(partner_id))) is None:
                raise InvalidParameter("partner_id", f"partner {partner_id} does not exist")
            existing = repo.find_api_key(hash_key(key))
            if existing is not None:
                return existing
            return repo.insert_api_key(
                parsed_role.value,
                advertiser_id if isinstance(advertiser_id, int) else None,
                partner_id if isinstance(partner_id, int) else None,
                hash_key(key), key[:10], now,
            )

        return work

    async def authenticate(self, key: str) -> ApiKey | None:
        digest = hash_key(key)
        return await self._db.read(lambda repo: repo.find_api_key(digest))

    async def list(self, page: Page) -> list[ApiKey]:
        return await self._db.read(lambda repo: repo.list_api_keys(page))

    async def revoke(self, key_id: int) -> None:
        now = self._clock()
        if not await self._db.write(lambda repo: repo.revoke_api_key(key_id, now)):
            raise NotFound(f"api key {key_id} does not exist")
