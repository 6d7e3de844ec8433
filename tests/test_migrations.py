"""The migrations build exactly the schema of `storage/schema.py`, on SQLite and PostgreSQL, and re-run safely."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

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


def test_the_release_head_is_alembics_head() -> None:
    """A database at `HEAD_REVISION` is not migrated (Alembic is not even loaded): it must be the head."""
    scripts = ScriptDirectory(str(Path(migrate.__file__).parent / "migrations"))
    assert scripts.get_current_head() == migrate.HEAD_REVISION


def test_a_server_on_a_migrated_database_never_loads_alembic(tmp_path: Path) -> None:
    """Alembic and what it brings (about 12 MB) stay out of a server process whose database is up to date."""
    url = f"sqlite:///{tmp_path / 'served.db'}"
    engine = create_admin_engine(url)
    try:
        migrate.upgrade(engine)
    finally:
        engine.dispose()
    program = (
        "import sys\n"
        "from tracklane.bootstrap import build\n"
        "from tracklane.settings import Settings\n"
        f"build(Settings(database_url={url!r}, secrets_key='a-secrets-key-of-32-characters!!!')).close()\n"
        "print(sorted(name for name in sys.modules if name.split('.')[0] in ('alembic', 'mako', 'pygments')))\n"
    )
    loaded = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, check=True).stdout
    assert loaded.strip() == "[]"
