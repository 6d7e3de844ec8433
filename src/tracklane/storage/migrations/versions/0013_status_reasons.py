"""Why an advertiser or a partner has its status

Adds the nullable `status_reason` to `advertisers` and `partners`: the reason a sign-up verdict or a status
change gave (null: none given), so that the admin reads it later and the partner or advertiser learns why.

Revision ID: 0013
Revises: 0012
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    for table in ("advertisers", "partners"):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.add_column(sa.Column("status_reason", sa.Text(), nullable=True))


def downgrade() -> None:
    for table in ("partners", "advertisers"):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_column("status_reason")
