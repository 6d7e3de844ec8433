"""Owners for every conversion channel: an offer's conversion methods and whether partners see the sale
amount; each Segment source belongs to one advertiser

Existing offers keep every method they had (postback, pixel, sdk, segment, api) and do not share the amount.
Each existing source is given the advertiser its Segment conversions were attributed to (the most frequent,
then the lowest id); a source without conversions goes to the only advertiser when there is exactly one.
Any other source keeps no advertiser and attributes nothing until an admin sets its `advertiser_id`.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

LEGACY_METHODS = '["postback", "pixel", "sdk", "segment", "api"]'


def upgrade() -> None:
    with op.batch_alter_table("offers") as batch:
        batch.add_column(sa.Column("conversion_methods", sa.JSON(), nullable=False,
                                   server_default=sa.text(f"'{LEGACY_METHODS}'")))  # fmt: skip
        batch.add_column(sa.Column("share_amount_with_partners", sa.Boolean(), nullable=False,
                                   server_default=sa.false()))  # fmt: skip
    with op.batch_alter_table("sources") as batch:
        batch.add_column(sa.Column("advertiser_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
                                   nullable=True))  # fmt: skip
        batch.create_index("ix_sources_advertiser_id", ["advertiser_id"])
        batch.create_foreign_key("fk_sources_advertiser_id_advertisers", "advertisers", ["advertiser_id"], ["id"])
    op.execute(
        """
        UPDATE sources SET advertiser_id = (
            SELECT c.advertiser_id FROM segment_messages m JOIN conversions c ON c.id = m.conversion_id
            WHERE m.source_id = sources.id
            GROUP BY c.advertiser_id ORDER BY COUNT(*) DESC, c.advertiser_id LIMIT 1
        )
        """
    )
    op.execute(
        """
        UPDATE sources SET advertiser_id = (SELECT MIN(id) FROM advertisers)
        WHERE advertiser_id IS NULL AND (SELECT COUNT(*) FROM advertisers) = 1
        """
    )


def downgrade() -> None:
    with op.batch_alter_table("sources") as batch:
        batch.drop_constraint("fk_sources_advertiser_id_advertisers", type_="foreignkey")
        batch.drop_index("ix_sources_advertiser_id")
        batch.drop_column("advertiser_id")
    with op.batch_alter_table("offers") as batch:
        batch.drop_column("share_amount_with_partners")
        batch.drop_column("conversion_methods")
