"""Segment sources: create (with a write key and a webhook signing secret), read, list, change settings."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from tracklane.domain.errors import InvalidParameter, NotFound
from tracklane.domain.segment.model import Source
from tracklane.domain.segment.settings import source_settings
from tracklane.services.ports import Clock, Database, Page

MAX_NAME = 200
_WRITE_KEY = re.compile(r"^[A-Za-z0-9_-]{6,64}$")


class SourceService:
    def __init__(self, db: Database, clock: Clock, new_write_key: Callable[[], str],
                 new_secret: Callable[[], str]) -> None:
        self._db = db
        self._clock = clock
        self._new_write_key = new_write_key
        self._new_secret = new_secret

    async def create(self, body: Mapping[str, Any]) -> Source:
        name = _name(body.get("name"))
        preset = body.get("preset") or "default"
        if not isinstance(preset, str):
            raise InvalidParameter("preset", "must be a string")
        settings = _settings(preset, body.get("settings"))
        write_key = _write_key(body.get("write_key")) or self._new_write_key()
        values = {"name": name, "preset": preset, "settings": settings, "write_key": write_key,
                  "webhook_secret": self._new_secret()}
        now = self._clock()
        return await self._db.write(lambda repo: repo.insert_source(values, now))

    async def get(self, source_id: int) -> Source:
        source = await self._db.read(lambda repo: repo.get_source(source_id))
        if source is None:
            raise NotFound(f"source {source_id} does not exist")
        return source

    async def list(self, page: Page) -> list[Source]:
        return await self._db.read(lambda repo: repo.list_sources(page))

    async def update(self, source_id: int, body: Mapping[str, Any]) -> Source:
        current = await self.get(source_id)
        changes: dict[str, Any] = {}
        if "name" in body:
            changes["name"] = _name(body["name"])
        if "settings" in body:
            changes["settings"] = _settings(current.preset, body["settings"])
        unknown = set(body) - {"name", "settings"}
        if unknown:
            raise InvalidParameter(sorted(unknown)[0], "cannot be changed (name and settings can)")
        now = self._clock()
        await self._db.write(lambda repo: repo.update_source(source_id, changes, now))
        return await self.get(source_id)


def _name(raw: object) -> str:
    if not isinstance(raw, str) or not raw.strip():
        raise InvalidParameter("name", "is required")
    if len(raw.strip()) > MAX_NAME:
        raise InvalidParameter("name", f"must be at most {MAX_NAME} characters")
    return raw.strip()


def _write_key(raw: object) -> str | None:
    """An existing write key may be kept when moving a source from Segment (so clients need only a new host)."""
    if raw is None:
        return None
    if not isinstance(raw, str) or not _WRITE_KEY.match(raw):
        raise InvalidParameter("write_key", "must be 6 to 64 letters, digits, '_' or '-'")
    return raw


def _settings(preset: str, raw: object) -> dict[str, Any]:
    """The user's overrides, validated against the preset (stored as given, applied on every message)."""
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise InvalidParameter("settings", "must be an object")
    source_settings(preset, raw)
    return dict(raw)
