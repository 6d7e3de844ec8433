"""People who sign in: users, their password hashes, sessions and one-time links (invitations, password resets)

New tables only; nothing existing changes. Session and link tokens are stored as their SHA-256.

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import tracklane.storage.types

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "users",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("email", sa.String(length=320), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("advertiser_id", _ID, nullable=True),
        sa.Column("partner_id", _ID, nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("created_at", tracklane.storage.types.UtcDateTime(), nullable=False),
        sa.Column("updated_at", tracklane.storage.types.UtcDateTime(), nullable=False),
        sa.Column("last_sign_in_at", tracklane.storage.types.UtcDateTime(), nullable=True),
        sa.ForeignKeyConstraint(["advertiser_id"], ["advertisers.id"], name=op.f("fk_users_advertiser_id_advertisers")),
        sa.ForeignKeyConstraint(["partner_id"], ["partners.id"], name=op.f("fk_users_partner_id_partners")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_users")),
        sa.UniqueConstraint("email", name=op.f("uq_users_email")),
    )
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_users_advertiser_id"), ["advertiser_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_users_partner_id"), ["partner_id"], unique=False)

    op.create_table(
        "user_passwords",
        sa.Column("user_id", _ID, nullable=False),
        sa.Column("password_hash", sa.Text(), nullable=False),
        sa.Column("updated_at", tracklane.storage.types.UtcDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name=op.f("fk_user_passwords_user_id_users")),
        sa.PrimaryKeyConstraint("user_id", name=op.f("pk_user_passwords")),
    )

    op.create_table(
        "user_sessions",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("user_id", _ID, nullable=False),
        sa.Column("csrf_token", sa.String(length=64), nullable=False),
        sa.Column("created_at", tracklane.storage.types.UtcDateTime(), nullable=False),
        sa.Column("expires_at", tracklane.storage.types.UtcDateTime(), nullable=False),
        sa.Column("last_seen_at", tracklane.storage.types.UtcDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name=op.f("fk_user_sessions_user_id_users")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_user_sessions")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_user_sessions_token_hash")),
    )
    with op.batch_alter_table("user_sessions", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_user_sessions_user_id"), ["user_id"], unique=False)

    op.create_table(
        "user_links",
        sa.Column("id", _ID, autoincrement=True, nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("user_id", _ID, nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("created_at", tracklane.storage.types.UtcDateTime(), nullable=False),
        sa.Column("expires_at", tracklane.storage.types.UtcDateTime(), nullable=False),
        sa.Column("used_at", tracklane.storage.types.UtcDateTime(), nullable=True),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name=op.f("fk_user_links_user_id_users")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_user_links")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_user_links_token_hash")),
    )
    with op.batch_alter_table("user_links", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_user_links_user_id"), ["user_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("user_links", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_user_links_user_id"))
    op.drop_table("user_links")
    with op.batch_alter_table("user_sessions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_user_sessions_user_id"))
    op.drop_table("user_sessions")
    op.drop_table("user_passwords")
    with op.batch_alter_table("users", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_users_partner_id"))
        batch_op.drop_index(batch_op.f("ix_users_advertiser_id"))
    op.drop_table("users")
