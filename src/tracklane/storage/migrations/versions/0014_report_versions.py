"""The version of each UTC day's report data

Adds `report_versions`: one row per UTC day, its version raised by every write that changes what a report
counts for that day (and never lowered), so that a report's rows made earlier can be told still true. A day
without a row has never been written since this revision: its version is 0.

Revision ID: 0014
Revises: 0013
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import tracklane.storage.types

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "report_versions",
        sa.Column("bucket", tracklane.storage.types.UtcDateTime(), nullable=False),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("bucket", name=op.f("pk_report_versions")),
        sqlite_with_rowid=False,
    )


def downgrade() -> None:
    op.drop_table("report_versions")
