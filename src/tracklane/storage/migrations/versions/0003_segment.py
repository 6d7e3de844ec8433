"""Segment-compatible intake: sources, received messages, customers, their identities and activity

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import tracklane.storage.types

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "sources",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("preset", sa.String(length=32), nullable=False),
        sa.Column("write_key", sa.String(length=64), nullable=False),
        sa.Column("webhook_secret", sa.String(length=64), nullable=False),
        sa.Column("settings", sa.JSON(), nullable=False),
        sa.Column("created_at", tracklane.storage.types.UtcDateTime(), nullable=False),
        sa.Column("updated_at", tracklane.storage.types.UtcDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sources")),
        sa.UniqueConstraint("write_key", name=op.f("uq_sources_write_key")),
    )
    op.create_table(
        "customers",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("source_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("user_id", sa.String(length=255), nullable=True),
        sa.Column("previous_ids", sa.JSON(), nullable=False),
        sa.Column("traits", sa.JSON(), nullable=False),
        sa.Column("group_id", sa.String(length=255), nullable=True),
        sa.Column("group_traits", sa.JSON(), nullable=False),
        sa.Column("audiences", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("transaction_id", sa.String(length=64), nullable=True),
        sa.Column("offer_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("partner_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("visits", sa.Integer(), nullable=False),
        sa.Column("signed_up_at", tracklane.storage.types.UtcDateTime(), nullable=True),
        sa.Column("churned_at", tracklane.storage.types.UtcDateTime(), nullable=True),
        sa.Column("created_at", tracklane.storage.types.UtcDateTime(), nullable=False),
        sa.Column("updated_at", tracklane.storage.types.UtcDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["source_id"], ["sources.id"], name=op.f("fk_customers_source_id_sources")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_customers")),
    )
    with op.batch_alter_table("customers", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_customers_partner_id"), ["partner_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_customers_source_id"), ["source_id"], unique=False)

    op.create_table(
        "segment_messages",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("source_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("message_id", sa.String(length=100), nullable=False),
        sa.Column("type", sa.String(length=16), nullable=False),
        sa.Column("event", sa.String(length=255), nullable=True),
        sa.Column("user_id", sa.String(length=255), nullable=True),
        sa.Column("anonymous_id", sa.String(length=255), nullable=True),
        sa.Column("timestamp", tracklane.storage.types.UtcDateTime(), nullable=False),
        sa.Column("original_timestamp", tracklane.storage.types.UtcDateTime(), nullable=False),
        sa.Column("sent_at", tracklane.storage.types.UtcDateTime(), nullable=True),
        sa.Column("received_at", tracklane.storage.types.UtcDateTime(), nullable=False),
        sa.Column("relayed", sa.Boolean(), nullable=False),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("detail", sa.Text(), nullable=True),
        sa.Column("conversion_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("customer_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("mapped", sa.JSON(), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("created_at", tracklane.storage.types.UtcDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["source_id"], ["sources.id"], name=op.f("fk_segment_messages_source_id_sources")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_segment_messages")),
        sa.UniqueConstraint("source_id", "message_id", name="uq_segment_messages_source_id_message_id"),
    )
    op.create_table(
        "customer_activities",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("source_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("customer_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("amount", tracklane.storage.types.Money(), nullable=True),
        sa.Column("currency", sa.String(length=3), nullable=True),
        sa.Column("offer_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("partner_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=True),
        sa.Column("message_id", sa.String(length=100), nullable=False),
        sa.Column("occurred_at", tracklane.storage.types.UtcDateTime(), nullable=False),
        sa.Column("created_at", tracklane.storage.types.UtcDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["customer_id"], ["customers.id"], name=op.f("fk_customer_activities_customer_id_customers")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_customer_activities")),
    )
    with op.batch_alter_table("customer_activities", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_customer_activities_customer_id"), ["customer_id"], unique=False)
        batch_op.create_index("ix_customer_activities_partner_occurred", ["partner_id", "occurred_at"], unique=False)

    op.create_table(
        "customer_identities",
        sa.Column("source_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("identity", sa.String(length=300), nullable=False),
        sa.Column("customer_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.ForeignKeyConstraint(
            ["customer_id"], ["customers.id"], name=op.f("fk_customer_identities_customer_id_customers")
        ),
        sa.PrimaryKeyConstraint("source_id", "identity", name=op.f("pk_customer_identities")),
    )
    with op.batch_alter_table("customer_identities", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_customer_identities_customer_id"), ["customer_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("customer_identities", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_customer_identities_customer_id"))

    op.drop_table("customer_identities")
    with op.batch_alter_table("customer_activities", schema=None) as batch_op:
        batch_op.drop_index("ix_customer_activities_partner_occurred")
        batch_op.drop_index(batch_op.f("ix_customer_activities_customer_id"))

    op.drop_table("customer_activities")
    op.drop_table("segment_messages")
    with op.batch_alter_table("customers", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_customers_source_id"))
        batch_op.drop_index(batch_op.f("ix_customers_partner_id"))

    op.drop_table("customers")
    op.drop_table("sources")
