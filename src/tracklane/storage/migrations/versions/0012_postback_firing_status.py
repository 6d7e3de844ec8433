"""The firing status of partner postbacks

Adds `partner_postbacks.fire_status` (`approved`, `rejected` or `any`), `approved` for the postbacks already
registered: they keep firing exactly as before, once, when a conversion is or becomes approved.

Revision ID: 0012
Revises: 0011
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("partner_postbacks", schema=None) as batch_op:
        batch_op.add_column(sa.Column("fire_status", sa.String(length=16), server_default="approved", nullable=False))


def downgrade() -> None:
    with op.batch_alter_table("partner_postbacks", schema=None) as batch_op:
        batch_op.drop_column("fire_status")
