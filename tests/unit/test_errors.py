"""The exception tree and its two edges: driver errors become domain errors in storage, domain errors become
HTTP answers in the web layer. Driver errors here are real ones, raised by SQLite."""

from __future__ import annotations

import ast
import asyncio
import json
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.exc import DBAPIError, IntegrityError, ProgrammingError
from sqlalchemy.pool import QueuePool

from tracklane.domain import errors
from tracklane.domain.errors import DuplicateKey, PostbackRefused, RefusalCode, StorageUnavailable, TracklaneError
from tracklane.services.ports import Repository
from tracklane.storage.database import SqlDatabase, translate, translated
from tracklane.storage.engines import create_reader_engine, create_writer_engine
from tracklane.storage.migrate import upgrade
from tracklane.web.errors import REFUSAL_STATUS, error_body, status_of


def test_every_error_raised_on_purpose_is_in_the_one_tree() -> None:
    kinds = [value for value in vars(errors).values() if isinstance(value, type) and issubclass(value, Exception)]
    assert {kind.__name__ for kind in kinds} >= {
        "Unauthorized",
        "RefusedDestination",
        "IntakeError",
        "DuplicateKey",
        "StorageUnavailable",
        "PostbackRefused",
    }
    assert all(issubclass(kind, TracklaneError) for kind in kinds)
    for kind in kinds:
        assert kind.__name__ in (errors.__doc__ or ""), f"{kind.__name__} is missing from the drawn tree"


def test_refusal_codes_keep_their_text_and_each_has_a_status() -> None:
    refused = PostbackRefused("busy", "retry")
    assert refused.code is RefusalCode.BUSY
    assert json.dumps(error_body(refused)) == '{"error": "busy", "message": "retry"}'
    assert status_of(refused) == 503
    assert set(REFUSAL_STATUS) == set(RefusalCode)
    with pytest.raises(ValueError, match="no_such_code"):
        PostbackRefused("no_such_code", "a bug")


def test_every_refusal_raised_uses_a_refusal_code() -> None:
    """A new code is added to `RefusalCode` (and given its status) before it is raised."""
    package = Path(__file__).resolve().parents[2] / "src" / "tracklane"
    for path in package.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "PostbackRefused" and node.args:
                code = node.args[0]
                if isinstance(code, ast.Constant):
                    assert code.value in set(RefusalCode), f"{path.name}:{node.lineno} raises {code.value!r}"


@pytest.fixture
def database(tmp_path: Path) -> SqlDatabase:
    url = f"sqlite:///{tmp_path / 'tracklane.db'}"
    writer = create_writer_engine(url)
    upgrade(writer)
    return SqlDatabase(writer, create_reader_engine(url))


def _insert_partner(email: str) -> str:
    return (
        "INSERT INTO partners (name, email, status, created_at, updated_at) "
        f"VALUES ('P', '{email}', 'active', '2024-01-01 00:00:00', '2024-01-01 00:00:00')"
    )


def test_a_unique_violation_is_a_duplicate_key_naming_the_column(database: SqlDatabase) -> None:
    def twice(repo: Repository) -> None:
        for _ in range(2):
            repo.conn.execute(text(_insert_partner("same@example.com")))  # type: ignore[attr-defined]

    with pytest.raises(DuplicateKey) as raised:
        asyncio.run(_write(database, twice))
    assert (raised.value.field, raised.value.message) == ("email", "email: this value is already taken")
    assert isinstance(raised.value.__cause__, IntegrityError)
    assert status_of(raised.value) == 409
    assert error_body(raised.value) == {"error": "conflict", "message": raised.value.message, "field": "email"}
    database.close()


def test_a_composite_key_names_its_last_column(database: SqlDatabase) -> None:
    def clash(repo: Repository) -> None:
        repo.conn.execute(text("CREATE TABLE names (offer_id INTEGER, name TEXT, UNIQUE (offer_id, name))"))  # type: ignore[attr-defined]
        for _ in range(2):
            repo.conn.execute(text("INSERT INTO names VALUES (1, 'install')"))  # type: ignore[attr-defined]

    with pytest.raises(DuplicateKey) as raised:
        database.write_now(clash)
    assert raised.value.field == "name"
    assert raised.value.message == "name: this value is already taken for this offer_id"
    database.close()


def test_any_other_integrity_error_stays_a_fault(database: SqlDatabase) -> None:
    def null_name(repo: Repository) -> None:
        repo.conn.execute(text("INSERT INTO partners (email) VALUES ('x@example.com')"))  # type: ignore[attr-defined]

    with pytest.raises(IntegrityError):
        database.write_now(null_name)
    database.close()


def test_a_database_that_cannot_be_opened_is_unavailable(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'missing' / 'tracklane.db'}"
    database = SqlDatabase(create_writer_engine(url), create_reader_engine(url))
    with pytest.raises(StorageUnavailable) as raised:
        database.read_now(lambda repo: None)
    assert isinstance(raised.value.__cause__, DBAPIError)
    assert status_of(raised.value) == 503
    database.close()


def test_a_pool_timeout_is_unavailable(tmp_path: Path) -> None:
    engine = create_engine(
        f"sqlite:///{tmp_path / 'x.db'}", poolclass=QueuePool, pool_size=1, max_overflow=0, pool_timeout=0.05
    )
    with engine.connect(), pytest.raises(StorageUnavailable), translated():
        engine.connect()
    engine.dispose()


def test_a_programming_error_is_returned_unchanged(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'x.db'}")
    with engine.connect() as connection, pytest.raises(ProgrammingError) as raised:
        connection.exec_driver_sql("SELECT ?", ())  # a parameter without its value
    assert translate(raised.value) is raised.value
    engine.dispose()


async def _write(database: SqlDatabase, work: Callable[[Repository], None]) -> None:
    await database.write(work)
