"""People who sign in: the bodies that create and change a user, a partner's public sign-up with its first user,
the user as shown (never a password or its hash) and a one-time link as issued (its token and the page that
takes it). Users are the admin's alone; each signs in to the console or to their own portal."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal
from urllib.parse import urlencode

import msgspec

from tracklane.domain.catalog import parse_email, parse_name
from tracklane.domain.errors import InvalidParameter
from tracklane.domain.model import Role, User, UserStatus
from tracklane.resources.fields import UNSET, Email, Id, Name, Struct, Unset, View

PASSWORD_MIN = 10
PASSWORD_MAX = 1024

Password = Annotated[
    str,
    msgspec.Meta(min_length=PASSWORD_MIN, max_length=PASSWORD_MAX, extra_json_schema={"writeOnly": True},
                 description=f"{PASSWORD_MIN} to {PASSWORD_MAX} characters; only its argon2 hash is kept"),
]  # fmt: skip
PersonName = Annotated[str, msgspec.Meta(max_length=200, examples=["Ada Lovelace"])]


def parse_password(raw: object) -> str:
    """A new password as given (never trimmed: every character counts), or `InvalidParameter` naming `password`."""
    if not isinstance(raw, str) or len(raw) < PASSWORD_MIN:
        raise InvalidParameter("password", f"must be at least {PASSWORD_MIN} characters")
    if len(raw) > PASSWORD_MAX:
        raise InvalidParameter("password", f"must be at most {PASSWORD_MAX} characters")
    return raw


class UserCreate(Struct):
    """`advertiser_id` is required for (and only for) an advertiser's user, `partner_id` for a partner's.
    Without a password the user is `invited` until it accepts an invitation link."""

    email: Email
    role: Role
    name: PersonName = ""
    advertiser_id: Id | None = None
    partner_id: Id | None = None
    password: Password | None = None

    def __post_init__(self) -> None:
        self.email = parse_email(self.email)
        self.name = self.name.strip()
        if self.password is not None:
            self.password = parse_password(self.password)
        owners = {"advertiser_id": (Role.ADVERTISER, self.advertiser_id), "partner_id": (Role.PARTNER, self.partner_id)}
        for field, (role, value) in owners.items():
            if role is self.role and value is None:
                raise InvalidParameter(field, f"is required for role {self.role.value}")
            if role is not self.role and value is not None:
                raise InvalidParameter(field, f"is not used by role {self.role.value}")


class UserUpdate(Struct):
    """`disabled` ends the user's sessions at once; `active` lets it sign in again (a user that never set a
    password stays `invited`)."""

    name: PersonName | Unset = UNSET
    email: Email | Unset = UNSET
    status: Literal["active", "disabled"] | Unset = UNSET

    def __post_init__(self) -> None:
        if isinstance(self.name, str):
            self.name = self.name.strip()
        if isinstance(self.email, str):
            self.email = parse_email(self.email)


class PartnerSignUp(Struct):
    """A partner's public sign-up with its first user: the partner starts `pending` (as with
    `POST /api/v1/partner-signups`), the user `active`, signing in with this e-mail and password."""

    name: Name
    email: Email
    password: Password

    def __post_init__(self) -> None:
        self.name = parse_name(self.name)
        self.email = parse_email(self.email)
        self.password = parse_password(self.password)


class UserView(View, frozen=True):
    id: int
    email: str
    name: str
    role: Role
    advertiser_id: int | None
    partner_id: int | None
    status: UserStatus
    created_at: datetime
    last_sign_in_at: datetime | None


class OneTimeLinkView(View, frozen=True):
    """An invitation or password reset link: the admin copies `url` to the person (no mail is sent)."""

    token: str
    url: str


def user_view(u: User) -> UserView:
    return UserView(id=u.id, email=u.email, name=u.name, role=u.role, advertiser_id=u.advertiser_id,
                    partner_id=u.partner_id, status=u.status, created_at=u.created_at,
                    last_sign_in_at=u.last_sign_in_at)  # fmt: skip


def accept_url(base_url: str, token: str) -> str:
    """The console page where the holder of a one-time link sets a password."""
    return f"{base_url.rstrip('/')}/ui/accept?{urlencode({'token': token})}"


def one_time_link_view(base_url: str, token: str) -> OneTimeLinkView:
    return OneTimeLinkView(token=token, url=accept_url(base_url, token))
