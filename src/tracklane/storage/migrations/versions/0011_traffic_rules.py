"""Traffic rules and the blocks optimization rules make

New tables only; nothing existing changes: `traffic_rules` (block lists and optimization rules, on an offer
or every offer, for a partner or every partner) and `traffic_blocks` (each value an optimization rule
blocked, with the numbers that blocked it, one row per rule, offer, partner and value).

Revision ID: 0011
Revises: 0010
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import tracklane.storage.types

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
_TIME = tracklane.storage.types.UtcDateTime


def upgrade() -> None:
    op.create_table(
        "traffic_rules",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=True),
        sa.Column("offer_id", _ID, nullable=True),
        sa.Column("partner_id", _ID, nullable=True),
        sa.Column("variable", sa.String(length=16), nullable=False),
        sa.Column("match", sa.String(length=16), nullable=False),
        sa.Column("values", sa.JSON(), nullable=False),
        sa.Column("min_clicks", sa.Integer(), nullable=True),
        sa.Column("cvr_below_percent", sa.String(length=16), nullable=True),
        sa.Column("window_days", sa.Integer(), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("last_evaluated_at", _TIME(), nullable=True),
        sa.Column("created_at", _TIME(), nullable=False),
        sa.Column("updated_at", _TIME(), nullable=False),
        sa.ForeignKeyConstraint(["offer_id"], ["offers.id"], name=op.f("fk_traffic_rules_offer_id_offers")),
        sa.ForeignKeyConstraint(["partner_id"], ["partners.id"], name=op.f("fk_traffic_rules_partner_id_partners")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_traffic_rules")),
    )
    with op.batch_alter_table("traffic_rules", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_traffic_rules_offer_id"), ["offer_id"], unique=False)

    op.create_table(
        "traffic_blocks",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("rule_id", _ID, nullable=False),
        sa.Column("offer_id", _ID, nullable=False),
        sa.Column("partner_id", _ID, nullable=False),
        sa.Column("variable", sa.String(length=16), nullable=False),
        sa.Column("value", sa.String(length=255), nullable=False),
        sa.Column("clicks", sa.Integer(), nullable=False),
        sa.Column("conversions", sa.Integer(), nullable=False),
        sa.Column("cvr_percent", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("created_at", _TIME(), nullable=False),
        sa.Column("lifted_at", _TIME(), nullable=True),
        sa.Column("lifted_by", sa.String(length=200), nullable=True),
        sa.Column("lift_reason", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["rule_id"], ["traffic_rules.id"], name=op.f("fk_traffic_blocks_rule_id_traffic_rules")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_traffic_blocks")),
        sa.UniqueConstraint("rule_id", "offer_id", "partner_id", "value", name=op.f("uq_traffic_blocks_rule_id")),
    )
    with op.batch_alter_table("traffic_blocks", schema=None) as batch_op:
        batch_op.create_index("ix_traffic_blocks_offer_partner", ["offer_id", "partner_id"], unique=False)


def downgrade() -> None:
    op.drop_table("traffic_blocks")
    op.drop_table("traffic_rules")
