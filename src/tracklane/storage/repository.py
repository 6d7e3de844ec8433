"""The SQL repository: one object per transaction, over one connection, for both dialects."""

from __future__ import annotations

from sqlalchemy import Connection

from tracklane.storage.catalog import SqlCatalog
from tracklane.storage.catalog_cache import CatalogCache
from tracklane.storage.delivery import SqlDelivery
from tracklane.storage.prior_conversions import SqlPriorConversions
from tracklane.storage.reports import SqlReports
from tracklane.storage.rollups import RollupDeltas
from tracklane.storage.segment import SqlSegment
from tracklane.storage.tracking import SqlTracking
from tracklane.storage.traffic import SqlTraffic
from tracklane.storage.users import SqlUsers


class SqlRepository(
    SqlCatalog, SqlTracking, SqlPriorConversions, SqlReports, SqlSegment, SqlDelivery, SqlUsers, SqlTraffic
):
    """Implements `tracklane.services.ports.Repository` on a connection inside a transaction.

    The rollup deltas its writes gather are applied by `flush_rollups`, which the writer calls before each
    commit (and each savepoint release), or dropped by `discard_rollups` with a rollback."""

    def __init__(self, conn: Connection, cache: CatalogCache | None = None) -> None:
        self.conn = conn
        self.cache = cache
        self.rollups = RollupDeltas()

    def flush_rollups(self) -> None:
        self.rollups.flush(self.conn)

    def discard_rollups(self) -> None:
        self.rollups.clear()
