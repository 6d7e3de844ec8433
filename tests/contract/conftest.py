"""The `store` fixture: the storage ports in memory (the fake), on SQLite and on PostgreSQL.

Every contract test runs once per implementation; what passes on all three is what the use cases may
rely on. The SQL databases are built as the composition root builds them: migrate, then `SqlDatabase`
over a writer and a reader engine.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, TypeVar

import pytest
from sqlalchemy.exc import IntegrityError

from tests.fakes import FakeDatabase, IntegrityViolation
from tests.servers import POSTGRES_ENV, postgres_database, sqlite_url
from tracklane.services.ports import Database, Repository
from tracklane.storage import migrate
from tracklane.storage.database import SqlDatabase
from tracklane.storage.engines import create_admin_engine, create_reader_engine, create_writer_engine

T = TypeVar("T")


class SyncDatabase(Database, Protocol):
    """A database the tests can also drive from synchronous code."""

    def write_now(self, work: Callable[[Repository], T]) -> T: ...
    def read_now(self, work: Callable[[Repository], T]) -> T: ...
    def close(self) -> None: ...


@dataclass(frozen=True, slots=True)
class Store:
    """One implementation of the ports under test."""

    name: str
    db: SyncDatabase
    #: What a write breaking a unique or foreign key raises where the port says nothing more precise.
    integrity_error: type[Exception]

    def write(self, work: Callable[[Repository], T]) -> T:
        """Run `work` in one write transaction and wait for its commit."""
        return self.db.write_now(work)

    def read(self, work: Callable[[Repository], T]) -> T:
        return self.db.read_now(work)


def _migrated(url: str) -> None:
    engine = create_admin_engine(url)
    try:
        migrate.upgrade(engine)
    finally:
        engine.dispose()


def _sql(url: str) -> SqlDatabase:
    return SqlDatabase(create_writer_engine(url), create_reader_engine(url), 0)


@pytest.fixture(scope="session")
def migrated_sqlite(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One SQLite file migrated to the newest schema; each test gets a copy (migrating takes far longer)."""
    directory = tmp_path_factory.mktemp("template")
    _migrated(sqlite_url(directory))
    return directory / "tracklane.db"


@pytest.fixture(params=["fake", "sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store(request: pytest.FixtureRequest, tmp_path: Path, migrated_sqlite: Path) -> Iterator[Store]:
    if request.param == "fake":
        yield Store("fake", FakeDatabase(), IntegrityViolation)
        return
    if request.param == "sqlite":
        shutil.copyfile(migrated_sqlite, tmp_path / "tracklane.db")
        db = _sql(sqlite_url(tmp_path))
        try:
            yield Store("sqlite", db, IntegrityError)
        finally:
            db.close()
        return
    if not os.environ.get(POSTGRES_ENV):
        pytest.skip(f"PostgreSQL tests need {POSTGRES_ENV} (CI sets it)")
    with postgres_database() as url:
        _migrated(url)
        db = _sql(url)
        try:
            yield Store("postgres", db, IntegrityError)
        finally:
            db.close()
