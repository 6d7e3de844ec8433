"""The writer's short-lived memory of offers, partners, offer access and traffic blocklists, so that a click
reads no catalogue rows.

Only a process's single writer thread uses it. Any INSERT, UPDATE or DELETE on a catalogue table through
the writer's engine, and any rollback, empties it: within one process it is never stale. A change made by
another process (another worker or machine) is seen after at most `ttl_seconds`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable
from typing import Any, TypeVar

from sqlalchemy import Engine, event
from sqlalchemy.sql.dml import UpdateBase

T = TypeVar("T")

CATALOGUE_TABLES = frozenset(
    {"advertisers", "partners", "offers", "offer_caps", "offer_access", "traffic_rules", "traffic_blocks"}
)


class CatalogCache:
    def __init__(self, ttl_seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._ttl = ttl_seconds
        self._clock = clock
        self._entries: dict[Hashable, tuple[float, Any]] = {}

    def get(self, key: Hashable, load: Callable[[], T]) -> T:
        """The cached value of `key`, or `load()` remembered for `ttl_seconds` (None results included)."""
        if self._ttl <= 0:
            return load()
        now = self._clock()
        entry = self._entries.get(key)
        if entry is not None and entry[0] > now:
            value: T = entry[1]
            return value
        value = load()
        self._entries[key] = (now + self._ttl, value)
        return value

    def clear(self) -> None:
        self._entries.clear()

    def watch(self, engine: Engine) -> None:
        """Empty the cache on every catalogue write and every rollback made through `engine`."""

        def on_execute(conn: Any, clause: Any, *args: Any) -> None:
            if isinstance(clause, UpdateBase) and getattr(clause.table, "name", None) in CATALOGUE_TABLES:
                self.clear()

        def on_rollback(conn: Any, *args: Any) -> None:
            self.clear()

        event.listen(engine, "before_execute", on_execute)
        event.listen(engine, "rollback", on_rollback)
        event.listen(engine, "rollback_savepoint", on_rollback)
