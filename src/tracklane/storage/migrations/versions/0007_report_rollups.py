"""Report rollups: unique clicks flagged when recorded, and clicks and conversions summed per cell

Adds `clicks.is_unique` (the first click from its IP address for its offer and partner in 24 hours; set here
for the clicks already stored, an earlier click being one with a smaller id) with the index that finds a
visitor's earlier click, and the two rollup tables, counted from the rows already stored.

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import tracklane.storage.types
from tracklane.storage.rollups import flag_unique_clicks, rebuild

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _cell() -> list[sa.Column[object]]:
    return [
        sa.Column("shape", sa.String(length=16), nullable=False),
        sa.Column("grain", sa.Integer(), nullable=False),
        sa.Column("bucket", tracklane.storage.types.UtcDateTime(), nullable=False),
        sa.Column("offer_id", _ID, nullable=False),
        sa.Column("partner_id", _ID, nullable=False),
        sa.Column("advertiser_id", _ID, nullable=False),
        sa.Column("value", sa.String(length=255), nullable=False),
    ]


def _counts(*names: str) -> list[sa.Column[object]]:
    return [sa.Column(name, sa.BigInteger(), nullable=False) for name in names]


_CELL = ("shape", "grain", "bucket", "offer_id", "partner_id", "advertiser_id", "value")


def upgrade() -> None:
    with op.batch_alter_table("clicks", schema=None) as batch_op:
        batch_op.add_column(sa.Column("is_unique", sa.Boolean(), server_default=sa.false(), nullable=False))
        batch_op.create_index("ix_clicks_visitor", ["offer_id", "partner_id", "ip", "created_at"], unique=False)
    bind = op.get_bind()
    flag_unique_clicks(bind)
    op.create_table(
        "click_rollups",
        *_cell(),
        *_counts("gross_clicks", "unique_clicks", "clicks", "bot_clicks", "rejected_clicks", "revenue", "payout"),
        sa.PrimaryKeyConstraint(*_CELL, name="pk_click_rollups"),
        sqlite_with_rowid=False,
    )
    op.create_table(
        "conversion_rollups",
        *_cell(),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("is_event", sa.Boolean(), nullable=False),
        sa.Column("event_name", sa.String(length=200), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("origin", sa.String(length=16), nullable=False),
        *_counts("conversions", "with_amount", "revenue", "payout", "amount"),
        sa.PrimaryKeyConstraint(*_CELL, "currency", "is_event", "event_name", "status", "origin",
                                name="pk_conversion_rollups"),
        sqlite_with_rowid=False,
    )  # fmt: skip
    rebuild(bind)


def downgrade() -> None:
    op.drop_table("conversion_rollups")
    op.drop_table("click_rollups")
    with op.batch_alter_table("clicks", schema=None) as batch_op:
        batch_op.drop_index("ix_clicks_visitor")
        batch_op.drop_column("is_unique")
