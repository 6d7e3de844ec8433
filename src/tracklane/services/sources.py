"""Segment sources: create (with a write key and a webhook signing secret, for one advertiser), read, list,
change name, settings or advertiser."""

from __future__ import annotations

from collections.abc import Callable

from tracklane.domain.errors import InvalidParameter, NotFound
from tracklane.domain.segment.model import Source
from tracklane.domain.segment.settings import source_settings
from tracklane.resources.fields import given
from tracklane.resources.sources import SourceCreate, SourceUpdate
from tracklane.services.ports import Clock, Database, NewSource, Page, Repository, raise_refused, refusing


class SourceService:
    def __init__(self, db: Database, clock: Clock, new_write_key: Callable[[], str],
                 new_secret: Callable[[], str]) -> None:  # fmt: skip
        self._db = db
        self._clock = clock
        self._new_write_key = new_write_key
        self._new_secret = new_secret

    async def create(self, body: SourceCreate) -> Source:
        source = NewSource(name=body.name, advertiser_id=body.advertiser_id, preset=body.preset,
                           write_key=body.write_key or self._new_write_key(), webhook_secret=self._new_secret(),
                           settings=dict(body.settings or {}))  # fmt: skip
        now = self._clock()

        def work(repo: Repository) -> Source:
            _known_advertiser(repo, body.advertiser_id)
            return repo.insert_source(source, now)

        return raise_refused(await self._db.write(refusing(work)))

    async def get(self, source_id: int) -> Source:
        return _found(await self._db.read(lambda repo: repo.get_source(source_id)), source_id)

    async def list(self, page: Page) -> list[Source]:
        return await self._db.read(lambda repo: repo.list_sources(page))

    async def update(self, source_id: int, body: SourceUpdate) -> Source:
        now = self._clock()

        def work(repo: Repository) -> Source:
            current = _found(repo.get_source(source_id), source_id)
            if isinstance(body.settings, dict):
                source_settings(current.preset, body.settings)
            if isinstance(body.advertiser_id, int):
                _known_advertiser(repo, body.advertiser_id)
            if any(given(value) for value in (body.name, body.settings, body.advertiser_id)):
                repo.update_source(source_id, body, now)
            return _found(repo.get_source(source_id), source_id)

        return raise_refused(await self._db.write(refusing(work)))


def _known_advertiser(repo: Repository, advertiser_id: int) -> None:
    if repo.get_advertiser(advertiser_id) is None:
        raise InvalidParameter("advertiser_id", f"advertiser {advertiser_id} does not exist")


def _found(source: Source | None, source_id: int) -> Source:
    if source is None:
        raise NotFound(f"source {source_id} does not exist")
    return source
