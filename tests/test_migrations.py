"""The migrations build exactly the schema of `storage/schema.py`, on SQLite and PostgreSQL, and re-run safely."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from tracklane.storage import migrate
from tracklane.storage.engines import create_admin_engine
from tracklane.storage.schema import metadata


def test_migrations_match_the_schema(database_url: str) -> None:
    engine = create_admin_engine(database_url)
    try:
        migrate.upgrade(engine)
        migrate.upgrade(engine)
        with engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            differences = compare_metadata(context, metadata)
    finally:
        engine.dispose()
    assert differences == []
