"""Creating and migrating the schema with Alembic, on SQLite and PostgreSQL alike.

On PostgreSQL an advisory lock makes concurrent start-ups of many processes migrate once. Migrations that
seal stored secrets (0005) are handed the secrets box (`secrets`); without one they refuse to convert rows.

A database already at `HEAD_REVISION` is only read (its revision, and the secrets key's fingerprint):
Alembic, with the template and highlighting libraries it brings (about 12 MB of a server's memory), is
loaded only when there is something to migrate.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Connection, Engine, inspect, text

from tracklane.storage.secret_box import FernetBox, check_key

if TYPE_CHECKING:
    from alembic.config import Config

#: The newest migration of this release (tests/test_migrations.py checks it is Alembic's head).
HEAD_REVISION = "0014"

_MIGRATIONS = Path(__file__).parent / "migrations"
_LOCK_ID = 7_301_994_211
log = logging.getLogger("tracklane")


def alembic_config(connection: Connection, secrets: FernetBox | None = None) -> Config:
    from alembic.config import Config  # only to migrate (see the module docstring)

    config = Config()
    config.set_main_option("script_location", str(_MIGRATIONS))
    config.attributes["connection"] = connection
    config.attributes["secrets"] = secrets
    return config


def upgrade(engine: Engine, secrets: FernetBox | None = None, revision: str = "head") -> None:
    """Bring the database to the newest schema (or to `revision`) and, given the secrets box, check that
    its key is the database's (`SecretsKeyError` otherwise: nothing is changed)."""
    if revision == "head" and schema_revision(engine) == HEAD_REVISION:
        if secrets is not None:
            with engine.begin() as connection:
                _lock(connection)
                check_key(connection, secrets)
        return
    from alembic import command  # only to migrate (see the module docstring)

    config: Config | None = None
    with engine.connect() as connection:
        if engine.dialect.name == "sqlite":
            # A batch migration rebuilds a table (copy, drop, rename); dropping a table other rows reference
            # fails while foreign keys are enforced, and enforcement can only be switched off outside a
            # transaction. The keys are checked before the migration commits instead.
            # Secure delete overwrites what a migration deletes or replaces (secrets it seals) on disk.
            raw = connection.connection.driver_connection
            assert raw is not None
            raw.execute("PRAGMA foreign_keys=OFF")
            raw.execute("PRAGMA secure_delete=ON")
        with connection.begin():
            _lock(connection)
            config = alembic_config(connection, secrets)
            command.upgrade(config, revision)
            if engine.dialect.name == "sqlite":
                broken = connection.exec_driver_sql("PRAGMA foreign_key_check").all()
                if broken:
                    raise RuntimeError(f"the migration would break foreign keys: {broken[:5]}")
            if secrets is not None and revision == "head":
                check_key(connection, secrets)
    compact = config.attributes.get("compact") if config is not None else None
    if compact:
        _compact(engine, compact)


def schema_revision(engine: Engine) -> str | None:
    """The revision the database's schema is at; None for a database with no schema yet."""
    with engine.connect() as connection:
        if not inspect(connection).has_table("alembic_version"):
            return None
        revision = connection.execute(text("SELECT version_num FROM alembic_version")).scalar()
    return None if revision is None else str(revision)


def _lock(connection: Connection) -> None:
    """On PostgreSQL, the transaction's hold of the migration lock: one process migrates at a time."""
    if connection.dialect.name == "postgresql":
        connection.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": _LOCK_ID})


def _compact(engine: Engine, tables: list[str]) -> None:
    """After a migration replaced rows (secrets it sealed), make sure the old values do not linger on disk:
    SQLite's write-ahead log is emptied (secure delete already overwrote the pages), PostgreSQL's tables are
    rewritten without their dead row versions. Best effort: the data itself is already safe."""
    try:
        with engine.connect() as connection:
            raw = connection.connection.driver_connection
            assert raw is not None
            if engine.dialect.name == "sqlite":
                raw.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            else:
                raw.autocommit = True
                raw.execute("VACUUM FULL " + ", ".join(f'"{table}"' for table in tables))
    except Exception as error:  # the database is busy: the operator can run VACUUM later
        log.warning("compacting %s after the migration failed (%s); run VACUUM to reclaim old values", tables, error)
