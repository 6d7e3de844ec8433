"""API keys: creation (the key is shown once, only its SHA-256 is kept), lookup by key, revocation."""

from __future__ import annotations

import hashlib
from collections.abc import Callable

from tracklane.domain.errors import InvalidParameter, NotFound
from tracklane.domain.model import ApiKey
from tracklane.resources.api_keys import ApiKeyCreate
from tracklane.services.ports import Clock, Database, Page, Repository, raise_refused, refusing


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


class ApiKeyService:
    def __init__(self, db: Database, clock: Clock, new_key: Callable[[], str]) -> None:
        self._db = db
        self._clock = clock
        self._new_key = new_key

    async def create(self, request: ApiKeyCreate) -> tuple[ApiKey, str]:
        """A new key and its clear text (shown once)."""
        key = self._new_key()
        return raise_refused(await self._db.write(refusing(self.creator(request, key)))), key

    def creator(self, request: ApiKeyCreate, key: str) -> Callable[[Repository], ApiKey]:
        """The write that stores `key`; storing an existing key returns it unchanged."""
        now = self._clock()

        def work(repo: Repository) -> ApiKey:
            if request.advertiser_id is not None and repo.get_advertiser(request.advertiser_id) is None:
                raise InvalidParameter("advertiser_id", f"advertiser {request.advertiser_id} does not exist")
            if request.partner_id is not None and repo.get_partner(request.partner_id) is None:
                raise InvalidParameter("partner_id", f"partner {request.partner_id} does not exist")
            existing = repo.find_api_key(hash_key(key))
            if existing is not None:
                return existing
            return repo.insert_api_key(request.role.value, request.advertiser_id, request.partner_id, hash_key(key),
                                       key[:10], now)  # fmt: skip

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
