"""Use cases of the people who sign in: users, passwords (argon2), sessions, one-time links (invitations and
password resets) and a partner's public sign-up with its first user.

Passwords are hashed and verified with argon2-cffi's `PasswordHasher` (its defaults: argon2id), on a worker
thread, never inside a database write; a hash made with weaker parameters is replaced at the next sign-in.
Session and link tokens are random (`new_token`), handed out once and stored as their SHA-256. Checking a
session is a read; it writes only to note the session was seen, at most once per `SEEN_EVERY`.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import TypeVar

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from tracklane.domain.errors import Conflict, InvalidParameter, NotFound, StorageUnavailable
from tracklane.domain.model import LinkKind, Partner, PartnerStatus, Role, SignedIn, User, UserStatus
from tracklane.domain.webhooks import EventType
from tracklane.resources.fields import UNSET
from tracklane.resources.users import PASSWORD_MAX, PartnerSignUp, UserCreate, UserUpdate, parse_password
from tracklane.services.catalog import partner_payload
from tracklane.services.outbox import emit
from tracklane.services.ports import (
    Clock,
    Database,
    NewLink,
    NewSession,
    NewUser,
    Page,
    Repository,
    UserChanges,
    UserLink,
    raise_refused,
    refusing,
)

T = TypeVar("T")

SESSION_LIFETIME = timedelta(hours=12)
SEEN_EVERY = timedelta(minutes=5)
LINK_LIFETIME = {LinkKind.INVITATION: timedelta(hours=72), LinkKind.PASSWORD_RESET: timedelta(hours=2)}
_NO_LONGER_VALID = "this link is no longer valid (used, replaced or expired): ask for a new one"


def hash_token(token: str) -> str:
    """What is stored of a session or link token."""
    return hashlib.sha256(token.encode()).hexdigest()


class UserService:
    def __init__(
        self,
        db: Database,
        clock: Clock,
        new_token: Callable[[], str],
        session_lifetime: timedelta = SESSION_LIFETIME,
        hasher: PasswordHasher | None = None,
    ) -> None:
        self._db = db
        self._clock = clock
        self._new_token = new_token
        self._session_lifetime = session_lifetime
        self._hasher = hasher or PasswordHasher()
        self._dummy_hash: str | None = None

    # users
    async def create(self, request: UserCreate) -> User:
        """A new user: `active` with the password given, else `invited` (send it an invitation link)."""
        password_hash = None if request.password is None else await self._hash(request.password)
        status = UserStatus.INVITED if password_hash is None else UserStatus.ACTIVE
        new = NewUser(request.email, request.name, request.role, request.advertiser_id, request.partner_id, status,
                      self._clock())  # fmt: skip

        def work(repo: Repository) -> User:
            if new.advertiser_id is not None and repo.get_advertiser(new.advertiser_id) is None:
                raise InvalidParameter("advertiser_id", f"advertiser {new.advertiser_id} does not exist")
            if new.partner_id is not None and repo.get_partner(new.partner_id) is None:
                raise InvalidParameter("partner_id", f"partner {new.partner_id} does not exist")
            _email_free(repo, new.email)
            user = repo.insert_user(new)
            if password_hash is not None:
                repo.set_password_hash(user.id, password_hash, new.created_at)
            return user

        return raise_refused(await self._db.write(refusing(work)))

    async def get(self, user_id: int) -> User:
        return _found(await self._db.read(lambda repo: repo.get_user(user_id)), user_id)

    async def by_email(self, email: str) -> User:
        """The user signing in with this e-mail address (as typed: trimmed, any case)."""
        address = email.strip().lower()
        user = await self._db.read(lambda repo: repo.find_user_by_email(address))
        if user is None:
            raise NotFound(f"no user has the e-mail address {address}")
        return user

    async def list(self, page: Page) -> list[User]:
        return await self._db.read(lambda repo: repo.list_users(page))

    async def update(self, user_id: int, request: UserUpdate) -> User:
        """Change the name, e-mail or status; disabling a user ends its sessions and voids its links."""
        now = self._clock()

        def work(repo: Repository) -> User:
            user = _found(repo.get_user(user_id), user_id)
            email = request.email
            if isinstance(email, str) and email != user.email:
                _email_free(repo, email)
            status: UserStatus | None = None if request.status is UNSET else UserStatus(request.status)
            if status is UserStatus.ACTIVE and repo.get_password_hash(user_id) is None:
                status = UserStatus.INVITED  # active once it has set a password
            repo.update_user(user_id, UserChanges(email=email, name=request.name,
                                                  status=UNSET if status is None else status), now)  # fmt: skip
            if status is UserStatus.DISABLED:
                repo.end_sessions(user_id)
                repo.void_links(user_id, None, now)
            return _found(repo.get_user(user_id), user_id)

        return raise_refused(await self._db.write(refusing(work)))

    # signing in
    async def sign_in(self, email: str, password: str) -> tuple[SignedIn, str] | None:
        """A new session and its token; None for an unknown e-mail, a wrong password, or a user that is
        invited or disabled (one answer for all, in about the same time: a password is always verified)."""
        address = email.strip().lower()

        def found(repo: Repository) -> tuple[User | None, str | None]:
            user = repo.find_user_by_email(address)
            return user, None if user is None else repo.get_password_hash(user.id)

        user, stored = await self._db.read(found)
        if user is None or stored is None or len(password) > PASSWORD_MAX:
            await self._verify(await self._dummy(), password)
            return None
        if not await self._verify(stored, password) or user.status is not UserStatus.ACTIVE:
            return None
        rehashed = await self._hash(password) if self._hasher.check_needs_rehash(stored) else None
        token, csrf, now = self._new_token(), self._new_token(), self._clock()
        expires_at = now + self._session_lifetime

        def work(repo: Repository) -> SignedIn | None:
            current = repo.get_user(user.id)
            if current is None or current.status is not UserStatus.ACTIVE or repo.get_password_hash(user.id) != stored:
                return None  # disabled, or its password changed, since it was verified
            if rehashed is not None:
                repo.set_password_hash(user.id, rehashed, now)
            repo.end_sessions(user.id, expired_by=now)
            repo.insert_session(NewSession(hash_token(token), user.id, csrf, now, expires_at))
            repo.update_user(user.id, UserChanges(last_sign_in_at=now), now)
            return SignedIn(_found(repo.get_user(user.id), user.id), csrf, expires_at)

        signed_in = await self._db.write(work)
        return None if signed_in is None else (signed_in, token)

    async def session(self, token: str) -> SignedIn | None:
        """The valid, unexpired session of an active user with this token, else None."""
        if not token:
            return None
        digest, now = hash_token(token), self._clock()

        def work(repo: Repository) -> tuple[SignedIn, int, datetime] | None:
            found = repo.find_session(digest)
            if found is None or found.expires_at <= now:
                return None
            user = repo.get_user(found.user_id)
            if user is None or user.status is not UserStatus.ACTIVE:
                return None
            return SignedIn(user, found.csrf_token, found.expires_at), found.id, found.last_seen_at

        result = await self._db.read(work)
        if result is None:
            return None
        signed_in, session_id, last_seen_at = result
        if now - last_seen_at >= SEEN_EVERY:
            with contextlib.suppress(StorageUnavailable):  # bookkeeping: the session is valid all the same
                await self._db.write(lambda repo: repo.touch_session(session_id, now))
        return signed_in

    async def sign_out(self, token: str) -> None:
        if token:
            digest = hash_token(token)
            await self._db.write(lambda repo: repo.delete_session(digest))

    # one-time links
    async def one_time_link(self, user_id: int, kind: LinkKind) -> str:
        """A new link's token: an invitation (for an invited user; valid 72 h) or a password reset (for a user
        that is not disabled; valid 2 h). It voids the user's older unused links of that kind."""
        token, now = self._new_token(), self._clock()

        def work(repo: Repository) -> str:
            user = _found(repo.get_user(user_id), user_id)
            if kind is LinkKind.INVITATION and user.status is not UserStatus.INVITED:
                raise Conflict(f"status: user {user_id} is {user.status.value}; send a password reset instead",
                               field="status")  # fmt: skip
            if user.status is UserStatus.DISABLED:
                raise Conflict(f"status: user {user_id} is disabled; make it active first", field="status")
            repo.void_links(user_id, kind, now)
            repo.insert_link(NewLink(hash_token(token), user_id, kind, now, now + LINK_LIFETIME[kind]))
            return token

        return raise_refused(await self._db.write(refusing(work)))

    async def link_user(self, token: str) -> User | None:
        """Whose link this is, while it is still valid (the page that takes it shows the e-mail)."""
        if not token:
            return None
        digest, now = hash_token(token), self._clock()

        def work(repo: Repository) -> User | None:
            link = repo.find_link(digest)
            return None if link is None else _holder(repo, link, now)

        return await self._db.read(work)

    async def redeem(self, token: str, password: str) -> User:
        """Set the password of the link's user: an invited user becomes active; the link is used, the user's
        other links are void and its sessions end. A link that is unknown, used or expired is refused, naming
        `token`; a password that is too short or too long, naming `password`."""
        password = parse_password(password)
        if await self.link_user(token) is None:
            raise InvalidParameter("token", _NO_LONGER_VALID)
        password_hash = await self._hash(password)
        digest, now = hash_token(token), self._clock()

        def work(repo: Repository) -> User:
            link = repo.find_link(digest)
            user = None if link is None else _holder(repo, link, now)
            if link is None or user is None:
                raise InvalidParameter("token", _NO_LONGER_VALID)
            repo.set_password_hash(user.id, password_hash, now)
            if user.status is UserStatus.INVITED:
                repo.update_user(user.id, UserChanges(status=UserStatus.ACTIVE), now)
            repo.use_link(link.id, now)
            repo.void_links(user.id, None, now)
            repo.end_sessions(user.id)
            return _found(repo.get_user(user.id), user.id)

        return raise_refused(await self._db.write(refusing(work)))

    # public sign-up
    async def sign_up_partner(self, request: PartnerSignUp) -> tuple[Partner, User]:
        """A pending partner (`partner.signed_up`, as the public partner sign-up) and its first user, active
        with the password given, in one write. An e-mail address a partner or a user has already is refused."""
        password_hash = await self._hash(request.password)
        now = self._clock()

        def work(repo: Repository) -> tuple[Partner, User]:
            if repo.find_partner_by_email(request.email) is not None:
                raise Conflict(f"email: a partner with {request.email} already exists", field="email")
            _email_free(repo, request.email)
            partner = repo.insert_partner(request.name, request.email, PartnerStatus.PENDING.value, now)
            user = repo.insert_user(NewUser(request.email, "", Role.PARTNER, None, partner.id, UserStatus.ACTIVE, now))
            repo.set_password_hash(user.id, password_hash, now)
            emit(repo, EventType.PARTNER_SIGNED_UP, partner_payload(repo, partner), now)
            return partner, user

        return raise_refused(await self._db.write(refusing(work)))

    # passwords, off the event loop
    async def _hash(self, password: str) -> str:
        return await asyncio.to_thread(self._hasher.hash, password)

    async def _verify(self, stored: str, password: str) -> bool:
        return await asyncio.to_thread(self._matches, stored, password)

    def _matches(self, stored: str, password: str) -> bool:
        try:
            return self._hasher.verify(stored, password)
        except (VerificationError, InvalidHashError):
            return False

    async def _dummy(self) -> str:
        """A hash to verify against when there is no user (or no password): the answer takes as long."""
        if self._dummy_hash is None:
            self._dummy_hash = await self._hash(self._new_token())
        return self._dummy_hash


def _holder(repo: Repository, link: UserLink, now: datetime) -> User | None:
    """The user a link still lets set a password: unused, unexpired; an invitation only while the user is
    invited; never for a disabled user."""
    if link.used_at is not None or link.expires_at <= now:
        return None
    user = repo.get_user(link.user_id)
    if user is None or user.status is UserStatus.DISABLED:
        return None
    if link.kind is LinkKind.INVITATION and user.status is not UserStatus.INVITED:
        return None
    return user


def _email_free(repo: Repository, email: str) -> None:
    if repo.find_user_by_email(email) is not None:
        raise Conflict(f"email: a user with {email} already exists", field="email")


def _found(value: T | None, user_id: int) -> T:
    if value is None:
        raise NotFound(f"user {user_id} does not exist")
    return value
