"""SQL for the people who sign in: users, their password hashes (a table of their own, so that no read of a
user carries one), sessions and one-time links, both found by the SHA-256 of their token."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import Connection, Row, bindparam, delete, insert, select, update

from tracklane.domain.model import LinkKind, Role, User, UserStatus
from tracklane.services.ports import NewLink, NewSession, NewUser, Page, UserChanges, UserLink, UserSession
from tracklane.storage.paging import paged
from tracklane.storage.schema import user_links, user_passwords, user_sessions, users

# The session lookup runs on every page of the console: built once, so its compiled form is reused.
_SESSION_BY_TOKEN = select(user_sessions).where(user_sessions.c.token_hash == bindparam("digest"))
_USER_BY_ID = select(users).where(users.c.id == bindparam("id"))


def user(row: Row[Any]) -> User:
    return User(
        id=row.id, email=row.email, name=row.name, role=Role(row.role), advertiser_id=row.advertiser_id,
        partner_id=row.partner_id, status=UserStatus(row.status), created_at=row.created_at,
        last_sign_in_at=row.last_sign_in_at,
    )  # fmt: skip


def session(row: Row[Any]) -> UserSession:
    return UserSession(row.id, row.user_id, row.csrf_token, row.created_at, row.expires_at, row.last_seen_at)


def link(row: Row[Any]) -> UserLink:
    return UserLink(row.id, row.user_id, LinkKind(row.kind), row.created_at, row.expires_at, row.used_at)


def _plain(value: object) -> object:
    return value.value if isinstance(value, StrEnum) else value


class SqlUsers:
    conn: Connection

    # users
    def insert_user(self, new: NewUser) -> User:
        values = {
            "email": new.email,
            "name": new.name,
            "role": new.role.value,
            "advertiser_id": new.advertiser_id,
            "partner_id": new.partner_id,
            "status": new.status.value,
            "created_at": new.created_at,
            "updated_at": new.created_at,
        }
        return user(self.conn.execute(insert(users).values(**values).returning(*users.c)).one())

    def get_user(self, user_id: int) -> User | None:
        row = self.conn.execute(_USER_BY_ID, {"id": user_id}).one_or_none()
        return None if row is None else user(row)

    def find_user_by_email(self, email: str) -> User | None:
        row = self.conn.execute(select(users).where(users.c.email == email)).one_or_none()
        return None if row is None else user(row)

    def list_users(self, page: Page) -> list[User]:
        return [user(r) for r in self.conn.execute(paged(select(users), users, page))]

    def update_user(self, user_id: int, changes: UserChanges, now: datetime) -> None:
        values = {name: _plain(value) for name, value in changes.given().items()}
        self.conn.execute(update(users).where(users.c.id == user_id).values(**values, updated_at=now))

    # passwords
    def get_password_hash(self, user_id: int) -> str | None:
        query = select(user_passwords.c.password_hash).where(user_passwords.c.user_id == user_id)
        found: str | None = self.conn.execute(query).scalar_one_or_none()
        return found

    def set_password_hash(self, user_id: int, password_hash: str, now: datetime) -> None:
        values = {"password_hash": password_hash, "updated_at": now}
        changed = self.conn.execute(update(user_passwords).where(user_passwords.c.user_id == user_id).values(**values))
        if not changed.rowcount:
            self.conn.execute(insert(user_passwords).values(user_id=user_id, **values))

    # sessions
    def insert_session(self, new: NewSession) -> None:
        self.conn.execute(
            insert(user_sessions).values(
                token_hash=new.token_hash,
                user_id=new.user_id,
                csrf_token=new.csrf_token,
                created_at=new.created_at,
                expires_at=new.expires_at,
                last_seen_at=new.created_at,
            )
        )

    def find_session(self, token_hash: str) -> UserSession | None:
        row = self.conn.execute(_SESSION_BY_TOKEN, {"digest": token_hash}).one_or_none()
        return None if row is None else session(row)

    def touch_session(self, session_id: int, now: datetime) -> None:
        self.conn.execute(update(user_sessions).where(user_sessions.c.id == session_id).values(last_seen_at=now))

    def delete_session(self, token_hash: str) -> None:
        self.conn.execute(delete(user_sessions).where(user_sessions.c.token_hash == token_hash))

    def end_sessions(self, user_id: int, expired_by: datetime | None = None) -> None:
        query = delete(user_sessions).where(user_sessions.c.user_id == user_id)
        if expired_by is not None:
            query = query.where(user_sessions.c.expires_at <= expired_by)
        self.conn.execute(query)

    # one-time links
    def insert_link(self, new: NewLink) -> None:
        self.conn.execute(
            insert(user_links).values(
                token_hash=new.token_hash,
                user_id=new.user_id,
                kind=new.kind.value,
                created_at=new.created_at,
                expires_at=new.expires_at,
            )
        )

    def find_link(self, token_hash: str) -> UserLink | None:
        row = self.conn.execute(select(user_links).where(user_links.c.token_hash == token_hash)).one_or_none()
        return None if row is None else link(row)

    def use_link(self, link_id: int, now: datetime) -> None:
        self.conn.execute(update(user_links).where(user_links.c.id == link_id).values(used_at=now))

    def void_links(self, user_id: int, kind: LinkKind | None, now: datetime) -> None:
        query = update(user_links).where(
            user_links.c.user_id == user_id, user_links.c.used_at.is_(None), user_links.c.expires_at > now
        )
        if kind is not None:
            query = query.where(user_links.c.kind == kind.value)
        self.conn.execute(query.values(expires_at=now))
