"""The database port over SQLAlchemy: a group-commit writer thread and a pool of readers.

Every write is a function run on a `SqlRepository` inside a transaction. One writer thread per process
takes all writes waiting in its queue, runs them in one transaction (again, each in its own SAVEPOINT,
if one of them failed: one failing write cannot spoil the others), commits them together, and only then
resolves their futures: each caller is answered after its work is durable, while one commit (and one
fsync) covers many requests. A write function refuses bad input by returning a `Refused` value, which
commits with the batch; only a fault (an exception) costs the batch its savepoint re-run.

A rehearsal (`rehearse`) is a write that is never committed: the writer runs it alone, as a batch of its
own, and rolls it back, so that it sees the database exactly as a write would (and its own changes as it
goes) and leaves nothing behind: no row, no counter, no rollup, no outbox message. An import's dry run is
one.

Every wait is bounded. The queue holds at most `queue_size` writes (one more is refused at once with
`StorageUnavailable`). Each write has a deadline (`timeout` after it was handed over): once it has passed,
the writer does not start the write, run it again after a database error, or commit it (a batch holding
it is rolled back and run again without it), and answers it `StorageUnavailable`; its caller stops
waiting `ANSWER_GRACE` after the deadline, the time left for a commit under way. The engines' lock and
statement timeouts (`storage/engines.py`) keep one attempt shorter than that. The loop is guarded:
whatever escapes a batch fails that batch's writes, and the thread goes on with the next. `close()` fails
every write still queued, and every write handed over after it, with `StorageUnavailable`; `drain()`,
before it, waits (bounded) for the queue to empty.

The writer exposes what an operator watches (`on_commit`: each committed batch's size and commit time;
`on_depth`: the number of writes waiting, whenever a batch is taken and at most every `DEPTH_INTERVAL` as
writes arrive; `alive`) for the metrics and the readiness
check to read; it never depends on them.

This is also the one place where the driver's errors become the domain's (`translate`): whatever a read
or a write raises reaches its caller as `DuplicateKey` (a unique violation, naming the column),
`StorageUnavailable` (the database cannot be reached or cannot work now), or, for any other fault, as the
driver raised it.
"""

from __future__ import annotations

import asyncio
import logging
import random
import re
import threading
import time
import weakref
from collections import deque
from collections.abc import Awaitable, Callable, Iterator
from concurrent.futures import Future, InvalidStateError
from concurrent.futures import TimeoutError as FutureTimeout
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from functools import cache
from typing import Any, TypeVar

from sqlalchemy import Connection, Engine, PrimaryKeyConstraint, Transaction, UniqueConstraint, text
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
QUEUE_SIZE = 10_000
WRITE_TIMEOUT_SECONDS = 4.0
#: How long past a write's deadline its caller still waits: the writer answers expired writes itself, so
#: this only covers a batch whose commit was under way when the deadline passed.
ANSWER_GRACE = 0.5
#: How often, at most, a write handed over reports the queue's depth (a report per write cost a click 4 %).
DEPTH_INTERVAL = 0.05


@dataclass(slots=True, eq=False)
class _Task:
    work: Callable[[Repository], Any]
    deadline: float
    future: Future[Any] = field(default_factory=Future)
    outcome: tuple[bool, Any] | None = None
    rehearsal: bool = False  # run alone and rolled back, never committed


def _settle(future: Future[Any], ok: bool, value: Any) -> None:
    """Answer a write once; a second answer (close() gave up on it first) is dropped."""
    try:
        if ok:
            future.set_result(value)
        else:
            future.set_exception(value)
    except InvalidStateError:
        pass


class GroupCommitWriter:
    """The single writer of this process; see the module docstring."""

    def __init__(
        self,
        engine: Engine,
        cache: CatalogCache | None = None,
        max_batch: int = MAX_BATCH,
        queue_size: int = QUEUE_SIZE,
        timeout: float = WRITE_TIMEOUT_SECONDS,
    ) -> None:
        self._engine = engine
        self._cache = cache
        if cache is not None:
            cache.watch(engine)
        self._max_batch = max_batch
        self._queue_size = queue_size
        self.timeout = timeout
        self._pending: deque[_Task] = deque()
        self._in_flight: list[_Task] = []
        self._connection: Connection | None = None  # the writer thread's own, kept between batches
        self._wake = threading.Condition()
        self._closed = False
        self.batches = 0
        self.writes = 0
        self.isolated_batches = 0  # batches run again with one savepoint per write, after a write raised
        self.refused_full = 0  # writes refused because the queue was full
        #: Called from the writer thread after each committed batch: its writes, and its commit's seconds.
        self.on_commit: Callable[[int, float], None] | None = None
        #: Called with the number of writes waiting when a batch is taken, and as writes are queued (at most
        #: every `DEPTH_INTERVAL`).
        self.on_depth: Callable[[int], None] | None = None
        self._depth_reported = 0.0
        self._commit_seconds = 0.0
        self._thread = threading.Thread(target=self._run, name="tracklane-writer", daemon=True)
        self._thread.start()

    def submit(self, work: Callable[[Repository], T], *, rehearsal: bool = False) -> Future[T]:
        """Queue `work` (a `rehearsal` is rolled back once run); its future fails at once with
        `StorageUnavailable` if the queue is full or closed."""
        now = time.monotonic()
        task = _Task(work, now + self.timeout, rehearsal=rehearsal)
        refusal: StorageUnavailable | None = None
        with self._wake:
            if self._closed:
                refusal = StorageUnavailable("the database is closed")
            elif len(self._pending) >= self._queue_size:
                self.refused_full += 1
                refusal = StorageUnavailable("too many writes are waiting; retry")
            else:
                self._pending.append(task)
                self._wake.notify()
                if self.on_depth is not None and now - self._depth_reported >= DEPTH_INTERVAL:
                    self._depth_reported = now
                    self.on_depth(len(self._pending))
        if refusal is not None:
            _settle(task.future, False, refusal)
        return task.future

    @property
    def alive(self) -> bool:
        """Whether the writer thread runs and takes writes."""
        return self._thread.is_alive() and not self._closed

    @property
    def queue_depth(self) -> int:
        """The writes waiting for a batch."""
        return len(self._pending)

    def drain(self, timeout: float) -> bool:
        """Wait, at most `timeout` seconds, until no write is queued or under way; whether that happened.
        Writes may still be handed over meanwhile (a shutdown drains before it closes)."""
        deadline = time.monotonic() + timeout
        while self._pending or self._in_flight:
            if time.monotonic() >= deadline or not self._thread.is_alive():
                return False
            time.sleep(0.01)
        return True

    def close(self) -> None:
        """Stop: the batch under way finishes (within its deadline); every write still queued fails."""
        with self._wake:
            self._closed = True
            queued = list(self._pending)
            self._pending.clear()
            self._wake.notify_all()
        if self.on_depth is not None:
            self.on_depth(0)
        for task in queued:
            _settle(task.future, False, StorageUnavailable("the database is closing"))
        self._thread.join(timeout=self.timeout + 5)
        if self._thread.is_alive():
            log.warning("the writer did not finish its batch in time; its writes are answered as failed")
            for task in list(self._in_flight):
                _settle(task.future, False, StorageUnavailable("the database is closing"))
        self._engine.dispose()

    def _run(self) -> None:
        while (batch := self._next_batch()) is not None:
            try:
                self._commit(batch)
            except BaseException as error:  # the guard: this batch fails, the writer goes on
                log.exception("the writer failed a batch of %d writes", len(batch))
                failure = error if isinstance(error, Exception) else RuntimeError(f"write aborted: {error!r}")
                for task in batch:
                    _settle(task.future, False, failure)
                self._disconnect()
                if self._cache is not None:
                    self._cache.clear()
            finally:
                self._in_flight = []
        self._disconnect()

    def _disconnect(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            try:
                connection.close()
            except SQLAlchemyError:  # a connection in an unknown state: the pool invalidates it
                log.warning("could not close the writer's connection", exc_info=True)

    def _next_batch(self) -> list[_Task] | None:
        """Up to `max_batch` queued writes, waiting for the first; None once closed."""
        with self._wake:
            while not self._pending and not self._closed:
                self._wake.wait()
            if not self._pending:
                return None
            batch = self._take()
            self._in_flight = batch
            if self.on_depth is not None:
                self.on_depth(len(self._pending))
            return batch

    def _take(self) -> list[_Task]:
        """The next batch from the queue (the caller holds the lock): a rehearsal alone, else the writes
        before the next rehearsal, at most `max_batch`."""
        if self._pending[0].rehearsal:
            return [self._pending.popleft()]
        batch: list[_Task] = []
        while self._pending and len(batch) < self._max_batch and not self._pending[0].rehearsal:
            batch.append(self._pending.popleft())
        return batch

    def _commit(self, batch: list[_Task]) -> None:
        # A write whose caller stopped waiting before it started is not run (its future was cancelled).
        tasks = [task for task in batch if task.future.set_running_or_notify_cancel()]
        attempt = 0
        while tasks:
            tasks = _drop_expired(tasks)
            if not tasks:
                break
            attempt += 1
            try:
                connection = self._connection
                if connection is None or connection.closed or connection.invalidated:
                    connection = self._connection = self._engine.connect()
                committed = self._run_batch(connection, tasks, in_turn=attempt > 1)
            except DBAPIError as error:
                log.warning("write batch of %d failed (attempt %d): %s", len(tasks), attempt, error)
                self._disconnect()
                if attempt == MAX_ATTEMPTS:
                    for task in tasks:
                        _settle(task.future, False, error)
                    return
                time.sleep(random.uniform(0.01, 0.04) * attempt)  # apart from the write it collided with
                continue
            if not committed:
                continue  # the expired writes are answered at the top of the loop, the others run again
            self.batches += 1
            self.writes += len(tasks)
            for task in tasks:
                assert task.outcome is not None
                _settle(task.future, *task.outcome)
            if self.on_commit is not None and not tasks[0].rehearsal:
                self.on_commit(len(tasks), self._commit_seconds)
            return

    def _run_batch(self, connection: Connection, tasks: list[_Task], in_turn: bool) -> bool:
        """Run the batch in one transaction and commit it; False, with nothing kept, when the deadline of
        one of its writes passed first (its caller is about to stop waiting: it must not be committed)."""
        repository = SqlRepository(connection, self._cache)
        transaction = _begin(connection, in_turn)
        try:
            if tasks[0].rehearsal:
                return _rehearse(repository, transaction, tasks[0])
            failure = _run_together(repository, tasks)
            if failure is None:
                repository.flush_rollups()
            else:
                transaction.rollback()
                repository.discard_rollups()
                if len(tasks) == 1:
                    tasks[0].outcome = (False, failure)
                    return True
                self.isolated_batches += 1
                transaction = _begin(connection, in_turn)
                _run_isolated(connection, repository, tasks)
            if _past_deadline(tasks):
                transaction.rollback()
                return False
            began = time.perf_counter()
            transaction.commit()
            self._commit_seconds = time.perf_counter() - began
            return True
        finally:
            if transaction.is_active:
                transaction.rollback()


#: The PostgreSQL advisory lock a batch run again holds (an arbitrary constant: "tracklane" in ASCII).
WRITERS_IN_TURN_LOCK = 0x747261636B6C616E


def _begin(connection: Connection, in_turn: bool) -> Transaction:
    """Begin a batch's transaction; `in_turn` (a batch run again after a database error): on PostgreSQL,
    first wait for the batches being run again by the other processes sharing the database.

    One batch holds the row locks of all its writes until it commits. The batches of two writers on the
    same hot rows (a campaign's cap counters, two copies of one postback arriving through two servers) may
    deadlock or time out, and if run again at once, collide again until their writes' deadlines pass. Run
    again in turn, each waits at most for the one before it; first attempts still run side by side.
    """
    transaction = connection.begin()
    if in_turn and connection.dialect.name == "postgresql":
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": WRITERS_IN_TURN_LOCK})
    return transaction


def _drop_expired(tasks: list[_Task]) -> list[_Task]:
    """Fail the writes whose deadline has passed (they are not run, or not run again); keep the others."""
    now = time.monotonic()
    kept = []
    for task in tasks:
        if task.deadline > now:
            kept.append(task)
        else:
            _settle(task.future, False, StorageUnavailable("the write could not be done in time; retry"))
    return kept


def _past_deadline(tasks: list[_Task]) -> bool:
    now = time.monotonic()
    return any(task.deadline <= now for task in tasks)


def _run_together(repository: SqlRepository, tasks: list[_Task]) -> Exception | None:
    """The common case, every task succeeding, needs no savepoints: run them all in the one transaction.

    A refusal is a task's result (a `Refused` value), not a failure. The first exception a task raises is
    returned (the caller rolls back, and runs the batch again with each task isolated); one the database
    raised for its own reasons is raised.
    """
    for task in tasks:
        try:
            task.outcome = (True, task.work(repository))
        except Exception as error:
            if isinstance(error, DBAPIError) and _is_retryable(error):
                raise
            return error
    return None


def _rehearse(repository: SqlRepository, transaction: Transaction, task: _Task) -> bool:
    """Run a rehearsal (a batch of its own) and roll it back, whatever it did; False, with its outcome
    dropped, when its deadline passed meanwhile (it is answered as a write that could not be done in time)."""
    try:
        task.outcome = (True, task.work(repository))
    except Exception as error:
        if isinstance(error, DBAPIError) and _is_retryable(error):
            raise
        task.outcome = (False, error)
    finally:
        repository.discard_rollups()
        transaction.rollback()
    return not _past_deadline([task])


def _run_isolated(connection: Connection, repository: SqlRepository, tasks: list[_Task]) -> None:
    """Each task in its own SAVEPOINT, so that one failing write cannot spoil the others."""
    for task in tasks:
        savepoint = connection.begin_nested()
        try:
            value = task.work(repository)
            repository.flush_rollups()
        except (OperationalError, DBAPIError) as error:
            if _is_retryable(error):
                raise
            savepoint.rollback()
            repository.discard_rollups()
            task.outcome = (False, error)
        except Exception as error:  # the task's own failure: only its savepoint is undone
            savepoint.rollback()
            repository.discard_rollups()
            task.outcome = (False, error)
        else:
            savepoint.commit()
            task.outcome = (True, value)


def _is_retryable(error: DBAPIError) -> bool:
    """Deadlocks, serialization failures, lock and statement timeouts and lost connections abort the batch;
    it is run again (while its writes' deadlines allow)."""
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


class _LoopWaker:
    """Wakes the writes of one event loop that the writer answered: one call into the loop for all the
    writes answered meanwhile (a batch's), where chaining each future to the loop cost a write about
    20 microseconds of the loop's time (`asyncio.wrap_future`, its callbacks and a wake-up each)."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = weakref.ref(loop)  # held weakly: `_wakers` would otherwise keep every loop alive
        self._lock = threading.Lock()
        self._ready: list[asyncio.Future[None]] = []
        self._scheduled = False

    def answered(self, waiting: asyncio.Future[None]) -> None:
        """From any thread: `waiting` may now read its write's result."""
        with self._lock:
            self._ready.append(waiting)
            if self._scheduled:
                return
            self._scheduled = True
        loop = self._loop()
        if loop is None:  # the loop is gone: nobody waits any more
            return
        with suppress(RuntimeError):  # the loop was closed: nobody waits any more
            loop.call_soon_threadsafe(self._wake)

    def _wake(self) -> None:
        with self._lock:
            ready, self._ready, self._scheduled = self._ready, [], False
        for waiting in ready:
            if not waiting.done():
                waiting.set_result(None)


_wakers: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _LoopWaker] = weakref.WeakKeyDictionary()


def _waker(loop: asyncio.AbstractEventLoop) -> _LoopWaker:
    waker = _wakers.get(loop)
    if waker is None:
        waker = _wakers[loop] = _LoopWaker(loop)
    return waker


async def _awaited(pending: Future[T], answer_by: float) -> T:
    """The write's result, translated; `StorageUnavailable` if it is not answered by `answer_by`. A write
    whose caller stops waiting (a timeout, a cancelled request) is cancelled: the writer skips it if it had
    not started it."""
    loop = asyncio.get_running_loop()
    waiting: asyncio.Future[None] = loop.create_future()
    waker = _waker(loop)
    pending.add_done_callback(lambda _done: waker.answered(waiting))
    timer = loop.call_later(max(0.0, answer_by - time.monotonic()), _give_up, waiting)
    try:
        await waiting
    except BaseException:
        pending.cancel()
        raise
    finally:
        timer.cancel()
    with translated():
        return pending.result()


def _give_up(waiting: asyncio.Future[None]) -> None:
    if not waiting.done():
        waiting.set_exception(StorageUnavailable("the write could not be done in time; retry"))


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

    def __init__(
        self,
        writer_engine: Engine,
        reader_engine: Engine,
        catalog_cache_seconds: float = 0,
        *,
        write_timeout: float = WRITE_TIMEOUT_SECONDS,
        queue_size: int = QUEUE_SIZE,
    ) -> None:
        cache = CatalogCache(catalog_cache_seconds)
        self.writer = GroupCommitWriter(writer_engine, cache, queue_size=queue_size, timeout=write_timeout)
        self._readers = reader_engine

    def write(self, work: Callable[[Repository], T]) -> Awaitable[T]:
        answer_by = time.monotonic() + self.writer.timeout + ANSWER_GRACE
        return _awaited(self.writer.submit(work), answer_by)

    def rehearse(self, work: Callable[[Repository], T]) -> Awaitable[T]:
        answer_by = time.monotonic() + self.writer.timeout + ANSWER_GRACE
        return _awaited(self.writer.submit(work, rehearsal=True), answer_by)

    async def read(self, work: Callable[[Repository], T]) -> T:
        return await asyncio.to_thread(self.read_now, work)

    def read_now(self, work: Callable[[Repository], T]) -> T:
        with translated(), self._readers.connect() as connection, connection.begin():
            return work(SqlRepository(connection))

    def write_now(self, work: Callable[[Repository], T]) -> T:
        """Run a write from synchronous code (CLI, demo set-up) and wait for its commit."""
        pending = self.writer.submit(work)
        with translated():
            try:
                return pending.result(timeout=self.writer.timeout + ANSWER_GRACE)
            except FutureTimeout:
                pending.cancel()
                raise StorageUnavailable("the write could not be done in time; retry") from None

    def drain(self, timeout: float | None = None) -> bool:
        """Let the writer commit what is queued (at most a write's timeout and its grace: a write queued
        longer than that has failed anyway); whether the queue emptied."""
        return self.writer.drain(self.writer.timeout + ANSWER_GRACE if timeout is None else timeout)

    def close(self) -> None:
        self.writer.close()
        self._readers.dispose()
