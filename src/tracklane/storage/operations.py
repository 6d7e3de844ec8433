"""What operators ask of the database: is it ready (reachable, at this release's schema, writable through
the writer), and how much the outbox holds. Each answer costs one cheap query; every wait is bounded.

The readiness checks are named `database` (a read answers), `migrations` (the schema is at the head of
this release's migrations) and `writer` (the writer thread runs, and a write that changes nothing goes
through it and commits: the database takes writes now). A failed check is reported by a short reason; the driver's own
message is logged, never answered (it names hosts and databases).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable
from dataclasses import dataclass
from datetime import datetime
from typing import TypeVar

from sqlalchemy import func, select, text

from tracklane.domain.delivery import DeliveryStatus
from tracklane.domain.errors import StorageUnavailable
from tracklane.services.ports import Repository
from tracklane.storage.database import SqlDatabase
from tracklane.storage.migrate import HEAD_REVISION
from tracklane.storage.repository import SqlRepository
from tracklane.storage.schema import deliveries

T = TypeVar("T")
log = logging.getLogger("tracklane.storage")

CHECKS = ("database", "migrations", "writer")
PASSED = "ok"


@dataclass(frozen=True, slots=True)
class OutboxBacklog:
    """The deliveries waiting: due now, scheduled later (a retry's delay, a postback's own delay), being
    sent; and how long the delivery due the longest has been due (0 when none is)."""

    due: int
    scheduled: int
    sending: int
    oldest_due_seconds: float


def _schema_revision(repo: Repository) -> str | None:
    assert isinstance(repo, SqlRepository)
    revision = repo.conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
    return None if revision is None else str(revision)


def _nothing(repo: Repository) -> None:
    """The writer check's write: a transaction that only asks the database to answer (on PostgreSQL an
    empty one would not reach the server), committed."""
    assert isinstance(repo, SqlRepository)
    repo.conn.execute(text("SELECT 1"))


async def readiness(db: SqlDatabase, timeout: float) -> dict[str, str]:
    """Each check (`CHECKS`) with `ok` or why it failed; the checks run at once, each within `timeout`."""

    async def writer() -> None:
        if not db.writer.alive:
            raise _Stopped
        await db.write(_nothing)

    revision, written = await asyncio.gather(
        _within(db.read(_schema_revision), timeout, "database"),
        _within(writer(), timeout, "writer"),
    )
    checks = {"database": PASSED, "migrations": PASSED, "writer": PASSED}
    if isinstance(revision, _Failed):
        checks["database"] = revision.reason
        checks["migrations"] = "unknown: the database did not answer"
    elif revision != HEAD_REVISION:
        checks["migrations"] = f"the schema is at {revision}, this release needs {HEAD_REVISION}: run tracklane migrate"
    if isinstance(written, _Failed):
        checks["writer"] = written.reason
    return checks


class _Stopped(Exception):
    """The writer thread has stopped (or the database was closed)."""


@dataclass(frozen=True, slots=True)
class _Failed:
    reason: str


async def _within(work: Awaitable[T], timeout: float, check: str) -> T | _Failed:
    try:
        return await asyncio.wait_for(work, timeout)
    except TimeoutError:
        log.warning("readiness: %s check got no answer within %s s", check, timeout)
        return _Failed(f"no answer within {timeout:g} s")
    except _Stopped:
        log.error("readiness: the writer thread has stopped")
        return _Failed("the writer thread has stopped")
    except StorageUnavailable as error:
        log.warning("readiness: %s check failed: %s", check, error.__cause__ or error)
        return _Failed("unavailable")
    except Exception:
        log.exception("readiness: %s check failed", check)
        return _Failed("failed")


def outbox_backlog(repo: Repository, now: datetime) -> OutboxBacklog:
    """One indexed query (`ix_deliveries_status_next_attempt_at`) over the pending and sending deliveries."""
    assert isinstance(repo, SqlRepository)
    waiting = (DeliveryStatus.PENDING.value, DeliveryStatus.SENDING.value)
    due = (deliveries.c.next_attempt_at <= now).label("due")
    query = (
        select(deliveries.c.status, due, func.count(), func.min(deliveries.c.next_attempt_at))
        .where(deliveries.c.status.in_(waiting))
        .group_by(deliveries.c.status, due)
    )
    counts = {"due": 0, "scheduled": 0, "sending": 0}
    oldest: datetime | None = None
    for status, is_due, count, earliest in repo.conn.execute(query):
        if status == DeliveryStatus.SENDING.value:
            counts["sending"] += count
            continue
        counts["due" if is_due else "scheduled"] += count
        if is_due and earliest is not None:
            oldest = earliest if oldest is None else min(oldest, earliest)
    age = max(0.0, (now - oldest).total_seconds()) if oldest is not None else 0.0
    return OutboxBacklog(counts["due"], counts["scheduled"], counts["sending"], age)
