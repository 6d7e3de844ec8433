"""Billing details of advertisers and partners

Adds nullable columns only (null: not set), so existing rows stay as they are: on `advertisers` the billing
frequency, payment terms in days and tax id; on `partners` the billing frequency, payment method and tax id.

Revision ID: 0009
Revises: 0008
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("advertisers", schema=None) as batch_op:
        batch_op.add_column(sa.Column("billing_frequency", sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column("payment_terms_days", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("tax_id", sa.String(length=64), nullable=True))
    with op.batch_alter_table("partners", schema=None) as batch_op:
        batch_op.add_column(sa.Column("billing_frequency", sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column("payment_method", sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column("tax_id", sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("partners", schema=None) as batch_op:
        batch_op.drop_column("tax_id")
        batch_op.drop_column("payment_method")
        batch_op.drop_column("billing_frequency")
    with op.batch_alter_table("advertisers", schema=None) as batch_op:
        batch_op.drop_column("tax_id")
        batch_op.drop_column("payment_terms_days")
        batch_op.drop_column("billing_frequency")
