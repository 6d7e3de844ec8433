"""The group-commit writer on a real database: writes of one batch commit together; a failing one is undone alone."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from concurrent.futures import Future
from datetime import UTC, datetime

import pytest

from tracklane.services.ports import Page, Repository
from tracklane.storage import migrate
from tracklane.storage.database import SqlDatabase
from tracklane.storage.engines import create_admin_engine, create_reader_engine, create_writer_engine

NOW = datetime(2026, 1, 1, tzinfo=UTC)


class Refused(Exception):
    pass


@pytest.fixture
def database(database_url: str) -> Iterator[SqlDatabase]:
    engine = create_admin_engine(database_url)
    migrate.upgrade(engine)
    engine.dispose()
    db = SqlDatabase(create_writer_engine(database_url), create_reader_engine(database_url), 2.0)
    yield db
    db.close()


def _hold_writer(database: SqlDatabase) -> threading.Event:
    """Keep the writer busy until the returned event is set, so that writes submitted meanwhile form one batch."""
    started, release = threading.Event(), threading.Event()

    def hold(repo: Repository) -> None:
        started.set()
        release.wait(10)

    database.writer.submit(hold)
    assert started.wait(10)
    return release


def _create_advertiser(database: SqlDatabase, name: str, fail: bool) -> Future[int]:
    def work(repo: Repository) -> int:
        advertiser = repo.insert_advertiser(name, f"token-{name}", NOW)
        if fail:
            raise Refused(name)
        return advertiser.id

    return database.writer.submit(work)


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
