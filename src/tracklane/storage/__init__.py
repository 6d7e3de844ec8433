"""Storage adapters: schema, migrations, the SQL repository and the group-commit database (SQLite, PostgreSQL)."""
