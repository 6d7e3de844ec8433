"""Migration 0008 on a database that already holds customer activity: each customer keeps its first signup and
its first churn (the repeats a second `signup` or `cancel` recorded go), and every row gets its dedup key."""

from __future__ import annotations

from sqlalchemy import text

from tracklane.storage import migrate
from tracklane.storage.engines import create_admin_engine

AT = "2024-05-01 12:00:00+00:00"


def test_existing_activity_is_counted_once_per_customer_after_the_migration(database_url: str) -> None:
    engine = create_admin_engine(database_url)
    try:
        migrate.upgrade(engine, revision="0007")
        with engine.begin() as connection:
            connection.execute(text(
                "INSERT INTO sources (id, name, preset, write_key, webhook_secret, settings, created_at, updated_at)"
                " VALUES (1, 's', 'tractionboard', 'wk', 'sealed', '{}', :at, :at)"), {"at": AT})  # fmt: skip
            for customer in (1, 2):
                connection.execute(text(
                    "INSERT INTO customers (id, source_id, previous_ids, traits, group_traits, audiences, status,"
                    " visits, created_at, updated_at) VALUES (:id, 1, '[]', '{}', '{}', '[]', 'active', 0, :at, :at)"),
                    {"id": customer, "at": AT})  # fmt: skip
            rows = [(1, 1, "signup", "m-1"), (2, 1, "signup", "m-2"), (3, 1, "churn", "m-3"), (4, 1, "churn", "m-4"),
                    (5, 1, "payment", "m-5"), (6, 2, "signup", "m-6"), (7, 2, "signup", "m-7")]  # fmt: skip
            for row_id, customer, kind, message_id in rows:
                connection.execute(text(
                    "INSERT INTO customer_activities (id, source_id, customer_id, kind, amount, message_id,"
                    " occurred_at, created_at) VALUES (:id, 1, :customer, :kind, NULL, :message, :at, :at)"),
                    {"id": row_id, "customer": customer, "kind": kind, "message": message_id, "at": AT})  # fmt: skip
        migrate.upgrade(engine)
        with engine.connect() as connection:
            kept = connection.execute(
                text("SELECT id, kind, dedup_key, event FROM customer_activities ORDER BY id")
            ).all()
    finally:
        engine.dispose()
    assert [tuple(row) for row in kept] == [
        (1, "signup", "customer:1", None),
        (3, "churn", "customer:1", None),
        (5, "payment", "message:m-5", None),
        (6, "signup", "customer:2", None),
    ]
