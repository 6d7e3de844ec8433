"""Engines for the two dialects: SQLite done properly (WAL, busy timeout, one writer) and PostgreSQL.

On SQLite the writer takes the write lock at BEGIN (`BEGIN IMMEDIATE`) so it never meets "database is
locked" half-way; readers use deferred transactions and, thanks to WAL, never block the writer.
`synchronous=FULL` makes each commit durable before the request it covers is answered.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool, QueuePool


def normalise_url(url: str) -> str:
    """Accept `postgresql://` and `postgres://` and use the psycopg 3 driver."""
    if url.startswith("postgres://"):
        url = "postgresql://" + url[len("postgres://") :]
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://") :]
    return url


def is_sqlite(url: str) -> bool:
    return make_url(normalise_url(url)).get_backend_name() == "sqlite"


def create_writer_engine(url: str) -> Engine:
    """The engine of the single writer thread of this process."""
    url = normalise_url(url)
    if is_sqlite(url):
        engine = create_engine(url, poolclass=QueuePool, pool_size=1, max_overflow=0)
        _sqlite_pragmas(engine, begin="BEGIN IMMEDIATE")
        return engine
    return create_engine(url, pool_size=1, max_overflow=1, pool_pre_ping=True)


def create_reader_engine(url: str, pool_size: int = 8) -> Engine:
    """The engine of request handlers that only read."""
    url = normalise_url(url)
    if is_sqlite(url):
        engine = create_engine(url, poolclass=QueuePool, pool_size=pool_size, max_overflow=pool_size)
        _sqlite_pragmas(engine, begin="BEGIN")
        return engine
    return create_engine(url, pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=True)


def create_admin_engine(url: str) -> Engine:
    """A short-lived engine for migrations and one-off commands."""
    url = normalise_url(url)
    engine = create_engine(url, poolclass=NullPool)
    if is_sqlite(url):
        _sqlite_pragmas(engine, begin="BEGIN IMMEDIATE")
    return engine


def _sqlite_pragmas(engine: Engine, begin: str) -> None:
    @event.listens_for(engine, "connect")
    def on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy, not pysqlite, decide where transactions start, so SAVEPOINT works.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        for pragma in ("journal_mode=WAL", "synchronous=FULL", "busy_timeout=10000", "foreign_keys=ON"):
            cursor.execute(f"PRAGMA {pragma}")
        cursor.close()

    @event.listens_for(engine, "begin")
    def on_begin(connection: Any) -> None:
        connection.exec_driver_sql(begin)
