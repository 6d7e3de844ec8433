"""The group-commit writer on a real database: writes of one batch commit together; a failing one is undone
alone; a refusal returned as a value costs the batch nothing; the loop survives anything; every wait is
bounded (a full queue, a deadline, a closed writer)."""

from __future__ import annotations

import asyncio
import gc
import threading
import time
import weakref
from collections.abc import Iterator
from concurrent.futures import Future
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import Engine, event, update

from tracklane.domain.errors import PostbackRefused, StorageUnavailable
from tracklane.domain.model import Origin
from tracklane.domain.postback import ConversionRequest
from tracklane.services.conversions import ConversionService
from tracklane.services.ports import Page, Repository
from tracklane.storage import database as database_module
from tracklane.storage import migrate
from tracklane.storage.database import GroupCommitWriter, SqlDatabase
from tracklane.storage.engines import create_admin_engine, create_reader_engine, create_writer_engine
from tracklane.storage.schema import advertisers

NOW = datetime(2026, 1, 1, tzinfo=UTC)


class Refused(Exception):
    pass


@pytest.fixture
def migrated(database_url: str) -> str:
    engine = create_admin_engine(database_url)
    migrate.upgrade(engine)
    engine.dispose()
    return database_url


@pytest.fixture
def savepoints(migrated: str) -> Iterator[tuple[Engine, list[str]]]:
    """The writer's engine, and the name of every SAVEPOINT it makes."""
    engine = create_writer_engine(migrated)
    made: list[str] = []
    event.listen(engine, "savepoint", lambda conn, name: made.append(name))
    yield engine, made
    engine.dispose()


@pytest.fixture
def database(migrated: str, savepoints: tuple[Engine, list[str]]) -> Iterator[SqlDatabase]:
    db = SqlDatabase(savepoints[0], create_reader_engine(migrated), 2.0)
    yield db
    db.close()


def _hold_writer(database: SqlDatabase | GroupCommitWriter) -> threading.Event:
    """Keep the writer busy until the returned event is set, so that writes submitted meanwhile form one batch."""
    writer = database.writer if isinstance(database, SqlDatabase) else database
    started, release = threading.Event(), threading.Event()

    def hold(repo: Repository) -> None:
        started.set()
        release.wait(10)

    writer.submit(hold)
    assert started.wait(10)
    return release


def _create_advertiser(database: SqlDatabase | GroupCommitWriter, name: str, fail: bool = False) -> Future[int]:
    def work(repo: Repository) -> int:
        advertiser = repo.insert_advertiser(name, f"token-{name}", NOW)
        if fail:
            raise Refused(name)
        return advertiser.id

    writer = database.writer if isinstance(database, SqlDatabase) else database
    return writer.submit(work)


def _advertiser_names(database: SqlDatabase) -> set[str]:
    return {a.name for a in database.read_now(lambda repo: repo.list_advertisers(Page(limit=100)))}


@pytest.mark.parametrize("failing", [set(), {"b"}, {"a", "c"}])
def test_one_batch_keeps_every_write_but_the_failing_ones(database: SqlDatabase, failing: set[str]) -> None:
    release = _hold_writer(database)
    futures = {name: _create_advertiser(database, name, fail=name in failing) for name in ("a", "b", "c", "d")}
    batches_before = database.writer.batches
    release.set()
    for name, future in futures.items():
        if name in failing:
            with pytest.raises(Refused):
                future.result(10)
        else:
            assert future.result(10) > 0
    assert database.writer.batches == batches_before + 2  # the holding write's batch, then the four together
    assert _advertiser_names(database) == {"a", "b", "c", "d"} - failing


def test_a_refusal_commits_with_its_batch_and_costs_it_no_savepoint(
    database: SqlDatabase, savepoints: tuple[Engine, list[str]]
) -> None:
    """A bad postback (a token no advertiser has) among other writes: refused, and the batch runs once."""
    conversions = ConversionService(database, lambda: NOW)
    bad = ConversionRequest("no-such-click", "not-a-token", None, None, None, None, None, (None,) * 5)

    async def scenario() -> None:
        release = await asyncio.to_thread(_hold_writer, database)
        refused = asyncio.ensure_future(conversions.record(bad, Origin.POSTBACK))
        await asyncio.sleep(0.05)  # the refused write is queued first
        others = [_create_advertiser(database, name) for name in ("a", "b", "c")]
        batches_before = database.writer.batches
        release.set()
        with pytest.raises(PostbackRefused) as raised:
            await refused
        assert raised.value.code == "invalid_token"
        assert all(await asyncio.gather(*(asyncio.wrap_future(f) for f in others)))
        assert database.writer.batches == batches_before + 2  # the holding write's batch, then all four together

    asyncio.run(scenario())
    assert savepoints[1] == []
    assert _advertiser_names(database) == {"a", "b", "c"}


class Escaped(BaseException):
    """Nothing a write should raise, and nothing the writer's own handling of writes catches."""


def test_an_exception_escaping_a_batch_fails_only_that_batch(
    database: SqlDatabase, monkeypatch: pytest.MonkeyPatch
) -> None:
    def escape(repo: Repository) -> None:
        raise Escaped

    release = _hold_writer(database)
    doomed = [database.writer.submit(escape), _create_advertiser(database, "same batch")]
    release.set()
    for future in doomed:
        assert isinstance(future.exception(10), RuntimeError)

    broken = database_module.SqlRepository  # a fault in the writer itself, outside any write

    def fail_once(*args: Any) -> Any:
        monkeypatch.setattr(database_module, "SqlRepository", broken)
        raise LookupError("the writer's own fault")

    monkeypatch.setattr(database_module, "SqlRepository", fail_once)
    assert isinstance(_create_advertiser(database, "unlucky").exception(10), LookupError)

    assert _create_advertiser(database, "after").result(10) > 0
    assert _advertiser_names(database) == {"after"}


def test_a_full_queue_refuses_at_once_and_the_queued_writes_commit(migrated: str) -> None:
    writer = GroupCommitWriter(create_writer_engine(migrated), queue_size=2)
    try:
        release = _hold_writer(writer)
        queued = [_create_advertiser(writer, name) for name in ("q1", "q2")]
        started = time.monotonic()
        refused = _create_advertiser(writer, "one too many")
        assert isinstance(refused.exception(0), StorageUnavailable)
        assert time.monotonic() - started < 0.1 and writer.refused_full == 1
        release.set()
        assert all(future.result(10) > 0 for future in queued)
    finally:
        writer.close()


def test_close_answers_what_is_queued_and_refuses_what_comes_after(migrated: str) -> None:
    writer = GroupCommitWriter(create_writer_engine(migrated))
    release = _hold_writer(writer)
    queued = [_create_advertiser(writer, name) for name in ("q1", "q2")]
    closing = threading.Thread(target=writer.close)
    closing.start()
    for future in queued:  # answered while the batch under way still holds the writer
        assert isinstance(future.exception(5), StorageUnavailable)
    release.set()
    closing.join(10)
    assert not closing.is_alive()
    assert isinstance(_create_advertiser(writer, "late").exception(0), StorageUnavailable)


def test_a_write_past_its_deadline_is_answered_in_time_and_never_run(
    migrated: str, savepoints: tuple[Engine, list[str]]
) -> None:
    database = SqlDatabase(savepoints[0], create_reader_engine(migrated), write_timeout=0.3)
    try:
        release = _hold_writer(database)  # the writer is stuck for longer than the deadline

        async def late() -> float:
            started = time.monotonic()
            with pytest.raises(StorageUnavailable):
                await database.write(lambda repo: repo.insert_advertiser("late", "token-late", NOW))
            return time.monotonic() - started

        waited = asyncio.run(late())
        queued = _create_advertiser(database, "expired")  # its caller waits past its deadline
        time.sleep(0.4)
        release.set()
        assert isinstance(queued.exception(5), StorageUnavailable)
        assert 0.3 <= waited < 0.3 + database_module.ANSWER_GRACE + 0.3
        # the writer still serves writes; this one gets a deadline a loaded machine meets (0.3 s did not always:
        # the held batch's commit comes first)
        database.writer.timeout = 10
        assert _create_advertiser(database, "in time").result(10) > 0
        assert _advertiser_names(database) == {"in time"}
    finally:
        database.close()


def test_a_write_that_outlasts_its_deadline_is_rolled_back_not_committed(
    migrated: str, savepoints: tuple[Engine, list[str]]
) -> None:
    """Its caller is answered 503 about then: committing it afterwards would acknowledge nothing and keep it."""
    database = SqlDatabase(savepoints[0], create_reader_engine(migrated), write_timeout=0.3)
    try:

        def slow(repo: Repository) -> int:
            advertiser = repo.insert_advertiser("slow", "token-slow", NOW)
            time.sleep(0.5)
            return advertiser.id

        assert isinstance(database.writer.submit(slow).exception(5), StorageUnavailable)
        assert _advertiser_names(database) == set()
    finally:
        database.close()


@pytest.mark.postgres
def test_two_writers_that_deadlock_both_commit_the_loser_in_turn(migrated: str) -> None:
    """Two processes' writers on one database: their batches lock the same two rows in opposite orders."""
    if not migrated.startswith("postgresql"):
        pytest.skip("one SQLite file has one writer at a time")
    engines = [create_writer_engine(migrated), create_writer_engine(migrated)]
    writers = [GroupCommitWriter(engine) for engine in engines]
    statements: list[str] = []
    for engine in engines:
        event.listen(engine, "before_cursor_execute", lambda *args: statements.append(args[2]))
    try:
        seed = writers[0].submit(lambda repo: [repo.insert_advertiser(n, f"token-{n}", NOW).id for n in "ab"])
        first, second = seed.result(10)
        both_hold_one = threading.Barrier(2, timeout=10)

        def rename(order: tuple[int, int]) -> Any:
            attempts = []

            def work(repo: Repository) -> int:
                attempts.append(1)
                for position, advertiser_id in enumerate(order):
                    repo.conn.execute(  # type: ignore[attr-defined]
                        update(advertisers).where(advertisers.c.id == advertiser_id).values(name=f"{order}")
                    )
                    if position == 0 and len(attempts) == 1:
                        both_hold_one.wait()
                return len(attempts)

            return work

        futures = [writers[0].submit(rename((first, second))), writers[1].submit(rename((second, first)))]
        attempts = sorted(future.result(10) for future in futures)
        assert attempts == [1, 2], "one batch is the deadlock's victim and commits when run again"
        assert sum("pg_advisory_xact_lock" in statement for statement in statements) == 1
    finally:
        for writer in writers:
            writer.close()
        for engine in engines:
            engine.dispose()


def test_the_writes_of_many_event_loops_are_answered_and_no_loop_is_kept_alive(database: SqlDatabase) -> None:
    """Each loop's writes are woken through that loop's waker; a loop that is gone is not held by it."""

    async def four(n: int) -> list[tuple[int, int]]:
        return await asyncio.gather(*(database.write(lambda repo, k=k: (n, k)) for k in range(4)))

    gone = []
    for n in range(3):
        loop = asyncio.new_event_loop()
        assert loop.run_until_complete(four(n)) == [(n, k) for k in range(4)]
        loop.close()
        gone.append(weakref.ref(loop))
        del loop
    database.write_now(lambda repo: None)  # the writer holds its last batch (and its callbacks) until the next
    gc.collect()
    assert [ref() for ref in gone] == [None, None, None]
