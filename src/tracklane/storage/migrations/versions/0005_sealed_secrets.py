"""Secrets sealed at rest: postback tokens (with a keyed hash to find them by), Segment webhook secrets and
webhook signing secrets; the fingerprint of the key they are sealed with

Rule for existing rows (run with the process's secrets key, `storage/secret_box.py`):
- each advertiser's postback token, stored in clear, gets its lookup hash (HMAC-SHA256) and is sealed;
- each source's webhook secret, stored in clear, is sealed;
- each webhook signing secret (current and previous) stored in clear is sealed; one already sealed (with
  `TRACKLANE_SECRETS_KEY` set before this release) is kept, after checking that this key opens it;
- the key's fingerprint is recorded;
- the clear values are not left on disk: SQLite runs the migration with `secure_delete` and then empties
  its write-ahead log; PostgreSQL rewrites the three tables (`VACUUM FULL`) without their dead row versions.
Every value keeps working as it did: the same postback tokens are accepted and the same secrets sign.
Without a key the migration refuses to run on a database that has such rows.

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from tracklane.storage.secret_box import PREFIX, FernetBox, SecretsKeyError

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

_advertisers = sa.table("advertisers", sa.column("id"), sa.column("postback_token"), sa.column("postback_token_hash"))
_sources = sa.table("sources", sa.column("id"), sa.column("webhook_secret"))
_endpoints = sa.table("webhook_endpoints", sa.column("id"), sa.column("secret"), sa.column("previous_secret"))


def upgrade() -> None:
    op.create_table(
        "secrets_key",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_secrets_key")),
    )
    with op.batch_alter_table("advertisers") as batch:
        batch.add_column(sa.Column("postback_token_hash", sa.String(length=64), nullable=True))
        batch.drop_constraint("uq_advertisers_postback_token", type_="unique")
        batch.alter_column("postback_token", existing_type=sa.String(length=64), type_=sa.Text(),
                           existing_nullable=False)  # fmt: skip
    with op.batch_alter_table("sources") as batch:
        batch.alter_column("webhook_secret", existing_type=sa.String(length=64), type_=sa.Text(),
                           existing_nullable=False)  # fmt: skip
    _seal_rows(_box())
    with op.batch_alter_table("advertisers") as batch:
        batch.alter_column("postback_token_hash", existing_type=sa.String(length=64), nullable=False)
        batch.create_unique_constraint("uq_advertisers_postback_token_hash", ["postback_token_hash"])


def downgrade() -> None:
    box = _box()
    connection = op.get_bind()
    for row in connection.execute(sa.select(_advertisers.c.id, _advertisers.c.postback_token)).all():
        connection.execute(_advertisers.update().where(_advertisers.c.id == row.id)
                           .values(postback_token=_needs(box).open(row.postback_token)))  # fmt: skip
    for row in connection.execute(sa.select(_sources.c.id, _sources.c.webhook_secret)).all():
        connection.execute(_sources.update().where(_sources.c.id == row.id)
                           .values(webhook_secret=_needs(box).open(row.webhook_secret)))  # fmt: skip
    for row in connection.execute(sa.select(_endpoints)).all():
        previous = None if row.previous_secret is None else _needs(box).open(row.previous_secret)
        connection.execute(_endpoints.update().where(_endpoints.c.id == row.id)
                           .values(secret=_needs(box).open(row.secret), previous_secret=previous))  # fmt: skip
    with op.batch_alter_table("sources") as batch:
        batch.alter_column("webhook_secret", existing_type=sa.Text(), type_=sa.String(length=64),
                           existing_nullable=False)  # fmt: skip
    with op.batch_alter_table("advertisers") as batch:
        batch.drop_constraint("uq_advertisers_postback_token_hash", type_="unique")
        batch.drop_column("postback_token_hash")
        batch.alter_column("postback_token", existing_type=sa.Text(), type_=sa.String(length=64),
                           existing_nullable=False)  # fmt: skip
        batch.create_unique_constraint("uq_advertisers_postback_token", ["postback_token"])
    op.drop_table("secrets_key")


def _seal_rows(box: FernetBox | None) -> None:
    connection = op.get_bind()
    sealed = False
    for row in connection.execute(sa.select(_advertisers.c.id, _advertisers.c.postback_token)).all():
        sealed = True
        token = row.postback_token
        connection.execute(_advertisers.update().where(_advertisers.c.id == row.id)
                           .values(postback_token=_needs(box).seal(token),
                                   postback_token_hash=_needs(box).digest(token)))  # fmt: skip
    for row in connection.execute(sa.select(_sources.c.id, _sources.c.webhook_secret)).all():
        sealed = True
        connection.execute(_sources.update().where(_sources.c.id == row.id)
                           .values(webhook_secret=_needs(box).seal(row.webhook_secret)))  # fmt: skip
    for row in connection.execute(sa.select(_endpoints)).all():
        sealed = True
        secret, previous = (_sealed(box, value) for value in (row.secret, row.previous_secret))
        connection.execute(_endpoints.update().where(_endpoints.c.id == row.id)
                           .values(secret=secret, previous_secret=previous))  # fmt: skip
    if box is not None:
        connection.execute(sa.table("secrets_key", sa.column("id"), sa.column("fingerprint")).insert()
                           .values(id=1, fingerprint=box.fingerprint))  # fmt: skip
    config = op.get_context().config
    if sealed and config is not None:  # the clear values are gone from the rows, not yet from the disk
        config.attributes["compact"] = ["advertisers", "sources", "webhook_endpoints"]


def _sealed(box: FernetBox | None, value: str | None) -> str | None:
    if value is None:
        return None
    if value.startswith(PREFIX):
        _needs(box).open(value)  # sealed before, with TRACKLANE_SECRETS_KEY: it must be this key
        return value
    return _needs(box).seal(value)


def _box() -> FernetBox | None:
    config = op.get_context().config
    box = None if config is None else config.attributes.get("secrets")
    return box if isinstance(box, FernetBox) else None


def _needs(box: FernetBox | None) -> FernetBox:
    if box is None:
        raise SecretsKeyError("migration 0005 seals the stored secrets: run it with the secrets key")
    return box
