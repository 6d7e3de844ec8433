"""The database port over SQLAlchemy: a group-commit writer thread and a pool of readers.

Every write is a function run on a `SqlRepository` inside a transaction. One writer thread per process
takes all writes waiting in its queue, runs them in one transaction (again, each in its own SAVEPOINT,
if one of them failed: one failing write cannot spoil the others), commits them together, and only then
resolves their futures: each caller is answered after its work is durable, while one commit (and one
fsync) covers many requests.

This is also the one place where the driver's errors become the domain's (`translate`): whatever a read
or a write raises reaches its caller as `DuplicateKey` (a unique violation, naming the column),
`StorageUnavailable` (the database cannot be reached or cannot work now), or, for any other fault, as the
driver raised it.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import re
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import cache
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine, PrimaryKeyConstraint, UniqueConstraint
from sqlalchemy.exc import (
    DBAPIError,
    DisconnectionError,
    IntegrityError,
    InterfaceError,
    OperationalError,
    SQLAlchemyError,
)
from sqlalchemy.exc import TimeoutError as PoolTimeout

from tracklane.domain.errors import DuplicateKey, StorageUnavailable
from tracklane.services.ports import Repository
from tracklane.storage.catalog_cache import CatalogCache
from tracklane.storage.repository import SqlRepository
from tracklane.storage.schema import metadata

T = TypeVar("T")
log = logging.getLogger("tracklane.storage")

MAX_BATCH = 512
MAX_ATTEMPTS = 5


@dataclass(slots=True)
class _Task:
    work: Callable[[Repository], Any]
    future: Future[Any] = field(default_factory=Future)
    outcome: tuple[bool, Any] | None = None


class GroupCommitWriter:
    """The single writer of this process; see the module docstring."""

    def __init__(self, engine: Engine, cache: CatalogCache | None = None, max_batch: int = MAX_BATCH) -> None:
        self._engine = engine
        self._cache = cache
        if cache is not None:
            cache.watch(engine)
        self._max_batch = max_batch
        self._queue: queue.SimpleQueue[_Task | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name="tracklane-writer", daemon=True)
        self._thread.start()
        self.batches = 0
        self.writes = 0

    def submit(self, work: Callable[[Repository], T]) -> Future[T]:
        task = _Task(work)
        self._queue.put(task)
        return task.future

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join(timeout=30)
        self._engine.dispose()

    def _run(self) -> None:
        connection: Connection | None = None
        while True:
            first = self._queue.get()
            if first is None:
                break
            batch = [first, *self._drain()]
            stop = batch[-1] is None
            tasks = [t for t in batch if t is not None]
            connection = self._commit(tasks, connection)
            if stop:
                break
        if connection is not None:
            connection.close()

    def _drain(self) -> list[_Task | None]:
        drained: list[_Task | None] = []
        while len(drained) < self._max_batch:
            try:
                task = self._queue.get_nowait()
            except queue.Empty:
                break
            drained.append(task)
            if task is None:
                break
        return drained

    def _commit(self, tasks: list[_Task], connection: Connection | None) -> Connection | None:
        for attempt in range(1, MAX_ATTEMPTS + 1):
            try:
                if connection is None or connection.closed or connection.invalidated:
                    connection = self._engine.connect()
                self._run_batch(connection, tasks)
            except (OperationalError, DBAPIError) as error:
                log.warning("write batch of %d failed (attempt %d): %s", len(tasks), attempt, error)
                if connection is not None:
                    connection.close()
                connection = None
                if attempt == MAX_ATTEMPTS:
                    for task in tasks:
                        task.future.set_exception(error)
                    return None
                time.sleep(0.02 * attempt)
                continue
            self.batches += 1
            self.writes += len(tasks)
            for task in tasks:
                assert task.outcome is not None
                ok, value = task.outcome
                if ok:
                    task.future.set_result(value)
                else:
                    task.future.set_exception(value)
            return connection
        return connection

    def _run_batch(self, connection: Connection, tasks: list[_Task]) -> None:
        repository = SqlRepository(connection, self._cache)
        if not _run_together(connection, repository, tasks):
            _run_isolated(connection, repository, tasks)


def _run_together(connection: Connection, repository: SqlRepository, tasks: list[_Task]) -> bool:
    """The common case, every task succeeding, needs no savepoints: run them all in one transaction.

    When a task of several fails, nothing is kept and False is returned, so that the batch is run again
    with each task isolated. A single task's failure is its outcome.
    """
    transaction = connection.begin()
    try:
        for task in tasks:
            task.outcome = (True, task.work(repository))
    except Exception as error:
        transaction.rollback()
        if isinstance(error, DBAPIError) and _is_retryable(error):
            raise
        if len(tasks) == 1:
            tasks[0].outcome = (False, error)
            return True
        return False
    transaction.commit()
    return True


def _run_isolated(connection: Connection, repository: SqlRepository, tasks: list[_Task]) -> None:
    """Each task in its own SAVEPOINT, so that one failing write cannot spoil the others."""
    with connection.begin():
        for task in tasks:
            savepoint = connection.begin_nested()
            try:
                value = task.work(repository)
            except (OperationalError, DBAPIError) as error:
                if _is_retryable(error):
                    raise
                savepoint.rollback()
                task.outcome = (False, error)
            except Exception as error:  # the task's own failure: only its savepoint is undone
                savepoint.rollback()
                task.outcome = (False, error)
            else:
                savepoint.commit()
                task.outcome = (True, value)


def _is_retryable(error: DBAPIError) -> bool:
    """Deadlocks, serialization failures and lost connections abort the batch; it is run again."""
    code = getattr(error.orig, "sqlstate", None)
    return error.connection_invalidated or code in ("40001", "40P01") or isinstance(error, OperationalError)


_UNAVAILABLE = (OperationalError, InterfaceError, DisconnectionError, PoolTimeout)
_SQLITE_UNIQUE_NAMES = frozenset({"SQLITE_CONSTRAINT_UNIQUE", "SQLITE_CONSTRAINT_PRIMARYKEY"})
_SQLITE_UNIQUE = re.compile(r"UNIQUE constraint failed: (?P<columns>.+)")
_POSTGRES_KEY = re.compile(r"Key \((?P<columns>[^)]*)\)=")
_POSTGRES_UNIQUE_VIOLATION = "23505"


def translate(error: SQLAlchemyError) -> Exception:
    """The domain's error for a driver error; see the module docstring.

    A unique violation (SQLite or PostgreSQL) is `DuplicateKey` naming the key's last column (the columns
    before it scope it, as `offer_id` scopes an event's `name`). Operational and interface errors, lost
    connections and pool timeouts are `StorageUnavailable`. Anything else is returned unchanged: a fault.
    """
    if isinstance(error, IntegrityError) and _is_unique_violation(error):
        columns = _unique_columns(error)
        if not columns:
            return DuplicateKey("a unique value is already taken")
        *scope, column = columns
        within = f" for this {', '.join(scope)}" if scope else ""
        return DuplicateKey(f"{column}: this value is already taken{within}", field=column)
    if isinstance(error, _UNAVAILABLE) or (isinstance(error, DBAPIError) and error.connection_invalidated):
        return StorageUnavailable()
    return error


@contextmanager
def translated() -> Iterator[None]:
    """Raise the domain's error in place of a driver error (see `translate`), chained to it."""
    try:
        yield
    except SQLAlchemyError as error:
        domain_error = translate(error)
        if domain_error is error:
            raise
        raise domain_error from error


async def _awaited(pending: Awaitable[T]) -> T:
    with translated():
        return await pending


def _is_unique_violation(error: IntegrityError) -> bool:
    if getattr(error.orig, "sqlstate", None) == _POSTGRES_UNIQUE_VIOLATION:
        return True
    if getattr(error.orig, "sqlite_errorname", None) in _SQLITE_UNIQUE_NAMES:
        return True
    return _SQLITE_UNIQUE.search(str(error.orig)) is not None


def _unique_columns(error: IntegrityError) -> list[str]:
    """The columns of the violated key, from the constraint's name (PostgreSQL) or the message."""
    diag = getattr(error.orig, "diag", None)
    constraint = getattr(diag, "constraint_name", None)
    if constraint and constraint in _unique_keys():
        return list(_unique_keys()[constraint])
    message = str(error.orig)
    if found := _SQLITE_UNIQUE.search(message):  # "UNIQUE constraint failed: offer_events.offer_id, ..."
        if (named := found["columns"].strip()).startswith("index "):  # an index on expressions: by its name
            return list(_unique_keys().get(named.removeprefix("index ").strip("'\""), ()))
        return [column.strip().rpartition(".")[2] for column in found["columns"].split(",")]
    if found := _POSTGRES_KEY.search(message):  # DETAIL: Key (offer_id, name)=(...) already exists.
        return [column.strip().strip('"') for column in found["columns"].split(",")]
    table = getattr(diag, "table_name", None)
    if constraint and table and constraint.startswith(prefix := f"uq_{table}_"):
        return [constraint.removeprefix(prefix)]
    return []


@cache
def _unique_keys() -> dict[str, tuple[str, ...]]:
    """Every unique key of the schema by its name: primary keys, unique constraints and unique indexes."""
    keys: dict[str, tuple[str, ...]] = {}
    for table in metadata.tables.values():
        for constraint in table.constraints:
            if isinstance(constraint, PrimaryKeyConstraint | UniqueConstraint) and constraint.name:
                keys[str(constraint.name)] = tuple(column.name for column in constraint.columns)
        for index in table.indexes:
            if index.unique and index.name:
                keys[str(index.name)] = tuple(column.name for column in index.columns)
    return keys


class SqlDatabase:
    """Implements `tracklane.services.ports.Database`; every error it raises is translated (`translate`)."""

    def __init__(self, writer_engine: Engine, reader_engine: Engine, catalog_cache_seconds: float = 0) -> None:
        self.writer = GroupCommitWriter(writer_engine, CatalogCache(catalog_cache_seconds))
        self._readers = reader_engine

    def write(self, work: Callable[[Repository], T]) -> Awaitable[T]:
        return _awaited(asyncio.wrap_future(self.writer.submit(work)))

    async def read(self, work: Callable[[Repository], T]) -> T:
        return await asyncio.to_thread(self.read_now, work)

    def read_now(self, work: Callable[[Repository], T]) -> T:
        with translated(), self._readers.connect() as connection, connection.begin():
            return work(SqlRepository(connection))

    def write_now(self, work: Callable[[Repository], T]) -> T:
        """Run a write from synchronous code (CLI, demo set-up) and wait for its commit."""
        with translated():
            return self.writer.submit(work).result()

    def close(self) -> None:
        self.writer.close()
        self._readers.dispose()
