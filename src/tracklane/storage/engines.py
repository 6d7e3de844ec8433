"""Engines for the two dialects: SQLite done properly (WAL, busy timeout, one writer) and PostgreSQL.

On SQLite the writer takes the write lock at BEGIN (`BEGIN IMMEDIATE`) so it never meets "database is
locked" half-way; readers use deferred transactions and, thanks to WAL, never block the writer.
`synchronous=FULL` makes each commit durable before the request it covers is answered.

No wait is unbounded: a lock another connection holds is waited for at most the lock timeout (SQLite's
busy timeout, PostgreSQL's `lock_timeout`), a writer's PostgreSQL statement runs at most the statement
timeout, a connection is made within libpq's `connect_timeout` and a free reader taken from the pool
within the lock timeout; each then fails as an operational error (`StorageUnavailable` to the caller).
SQL parameters never appear in an error or a log line (`hide_parameters`): they carry secrets.
"""

from __future__ import annotations

import math
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool, QueuePool

#: Defaults of TRACKLANE_DATABASE_LOCK_TIMEOUT_SECONDS and of the writer's statement limit (its write timeout).
LOCK_TIMEOUT_SECONDS = 2.0
STATEMENT_TIMEOUT_SECONDS = 4.0
ADMIN_LOCK_TIMEOUT_SECONDS = 10.0


def normalise_url(url: str) -> str:
    """Accept `postgresql://` and `postgres://` and use the psycopg 3 driver."""
    if url.startswith("postgres://"):
        url = "postgresql://" + url[len("postgres://") :]
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://") :]
    return url


def is_sqlite(url: str) -> bool:
    return make_url(normalise_url(url)).get_backend_name() == "sqlite"


def create_writer_engine(
    url: str, lock_timeout: float = LOCK_TIMEOUT_SECONDS, statement_timeout: float = STATEMENT_TIMEOUT_SECONDS
) -> Engine:
    """The engine of the single writer thread of this process.

    `lock_timeout`: how long a statement waits for a lock another connection holds (SQLite's busy timeout,
    PostgreSQL's `lock_timeout`); `statement_timeout`: how long a PostgreSQL statement may run at all.
    """
    url = normalise_url(url)
    if is_sqlite(url):
        engine = create_engine(
            url, poolclass=QueuePool, pool_size=1, max_overflow=0, pool_timeout=lock_timeout, hide_parameters=True
        )
        _sqlite_pragmas(engine, begin="BEGIN IMMEDIATE", busy_timeout=lock_timeout)
        return engine
    engine = create_engine(
        url,
        pool_size=1,
        max_overflow=1,
        pool_pre_ping=True,
        pool_timeout=lock_timeout,
        hide_parameters=True,
        connect_args=_connect_timeout(url, lock_timeout),
    )
    _postgres_timeouts(engine, lock_timeout, statement_timeout)
    return engine


def create_reader_engine(url: str, pool_size: int = 8, lock_timeout: float = LOCK_TIMEOUT_SECONDS) -> Engine:
    """The engine of request handlers that only read: locks and free connections are waited for at most
    `lock_timeout`; a statement itself is not limited (reports may take long)."""
    url = normalise_url(url)
    if is_sqlite(url):
        engine = create_engine(
            url,
            poolclass=QueuePool,
            pool_size=pool_size,
            max_overflow=pool_size,
            pool_timeout=lock_timeout,
            hide_parameters=True,
        )
        _sqlite_pragmas(engine, begin="BEGIN", busy_timeout=lock_timeout)
        return engine
    engine = create_engine(
        url,
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_pre_ping=True,
        pool_timeout=lock_timeout,
        hide_parameters=True,
        connect_args=_connect_timeout(url, lock_timeout),
    )
    _postgres_timeouts(engine, lock_timeout, None)
    return engine


def create_admin_engine(url: str) -> Engine:
    """A short-lived engine for migrations and one-off commands (which may wait longer for a lock)."""
    url = normalise_url(url)
    engine = create_engine(url, poolclass=NullPool, hide_parameters=True)
    if is_sqlite(url):
        _sqlite_pragmas(engine, begin="BEGIN IMMEDIATE", busy_timeout=ADMIN_LOCK_TIMEOUT_SECONDS)
    return engine


def _sqlite_pragmas(engine: Engine, begin: str, busy_timeout: float) -> None:
    pragmas = ("journal_mode=WAL", "synchronous=FULL", f"busy_timeout={round(busy_timeout * 1000)}", "foreign_keys=ON")

    @event.listens_for(engine, "connect")
    def on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy, not pysqlite, decide where transactions start, so SAVEPOINT works.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        for pragma in pragmas:
            cursor.execute(f"PRAGMA {pragma}")
        cursor.close()

    @event.listens_for(engine, "begin")
    def on_begin(connection: Any) -> None:
        connection.exec_driver_sql(begin)


def _connect_timeout(url: str, seconds: float) -> dict[str, Any]:
    """libpq's connect timeout (whole seconds, at least 2), unless the URL sets its own."""
    if "connect_timeout" in make_url(url).query:
        return {}
    return {"connect_timeout": max(2, math.ceil(seconds))}


def _postgres_timeouts(engine: Engine, lock_timeout: float, statement_timeout: float | None) -> None:
    """Set the session's timeouts on each new connection (a SET, not startup options: poolers refuse those)."""
    settings = [("lock_timeout", lock_timeout)]
    if statement_timeout is not None:
        settings.append(("statement_timeout", statement_timeout))

    @event.listens_for(engine, "connect")
    def on_connect(dbapi_connection: Any, _record: Any) -> None:
        with dbapi_connection.cursor() as cursor:
            for name, seconds in settings:
                cursor.execute(f"SET {name} = {max(1, round(seconds * 1000))}")
        dbapi_connection.commit()
