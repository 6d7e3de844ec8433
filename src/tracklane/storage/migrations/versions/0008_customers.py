"""Customer activity counted once, and custom events

Adds `customer_activities.event` (the name of a custom event, kind `event`) and `dedup_key`, unique per source
and kind: a customer's signup and churn are keyed by the customer, a payment or refund by its own id or its
message, so that a repeat counts nothing. For the rows already stored, each customer keeps its first signup
and its first churn (the repeats a second `signup` or `cancel` recorded are deleted), keyed by the customer;
every other row is keyed by its message.

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

_ONCE_PER_CUSTOMER = ("signup", "churn")
_UNIQUE = "uq_customer_activities_source_id_kind_dedup_key"


def upgrade() -> None:
    with op.batch_alter_table("customer_activities", schema=None) as batch_op:
        batch_op.add_column(sa.Column("event", sa.String(length=255), nullable=True))
        batch_op.add_column(sa.Column("dedup_key", sa.String(length=300), nullable=True))
    activities = sa.table(
        "customer_activities",
        sa.column("id", sa.BigInteger()),
        sa.column("customer_id", sa.BigInteger()),
        sa.column("kind", sa.String()),
        sa.column("message_id", sa.String()),
        sa.column("dedup_key", sa.String()),
    )
    a = activities.c
    once = a.kind.in_(_ONCE_PER_CUSTOMER)
    kept = activities.alias("kept").c
    first = (
        sa.select(sa.func.min(kept.id)).where(kept.kind.in_(_ONCE_PER_CUSTOMER)).group_by(kept.customer_id, kept.kind)
    )
    bind = op.get_bind()
    bind.execute(sa.delete(activities).where(once, a.id.not_in(first)))
    bind.execute(
        sa.update(activities).where(once).values(dedup_key=sa.literal("customer:") + sa.cast(a.customer_id, sa.String))
    )
    bind.execute(sa.update(activities).where(~once).values(dedup_key=sa.literal("message:") + a.message_id))
    with op.batch_alter_table("customer_activities", schema=None) as batch_op:
        batch_op.alter_column("dedup_key", existing_type=sa.String(length=300), nullable=False)
        batch_op.create_unique_constraint(_UNIQUE, ["source_id", "kind", "dedup_key"])


def downgrade() -> None:
    with op.batch_alter_table("customer_activities", schema=None) as batch_op:
        batch_op.drop_constraint(_UNIQUE, type_="unique")
        batch_op.drop_column("dedup_key")
        batch_op.drop_column("event")
