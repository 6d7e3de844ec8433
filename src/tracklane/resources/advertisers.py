"""Advertisers: the bodies that create and change one, a public sign-up and an admin's verdict on it, and how
an advertiser is shown.

Advertisers are the admin's alone; a public sign-up's answer shows only what the one who signed up sent.
The admin's view carries the postback token (the `secure` value of `/postback`) and the billing details;
the webhook payload carries the billing details and the advertiser's users (its
contacts) but never the postback token, because a webhook receiver is another system.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, Literal

from tracklane.domain.catalog import parse_email, parse_name
from tracklane.domain.model import Advertiser, User
from tracklane.resources.billing import AdvertiserBillingBody, AdvertiserBillingView, advertiser_billing_view
from tracklane.resources.fields import UNSET, Email, Name, Struct, Unset, View
from tracklane.resources.partners import StatusReason, Verdict, reason_with_status
from tracklane.resources.users import UserView, user_view

#: Only an `active` advertiser's offers take billable clicks and conversions. A public sign-up is `pending`
#: until an admin's verdict makes it `active` or `rejected`.
AdvertiserStatus = Literal["active", "inactive", "pending", "rejected"]


class AdvertiserCreate(Struct):
    name: Name
    billing: AdvertiserBillingBody | Unset = UNSET

    def __post_init__(self) -> None:
        self.name = parse_name(self.name)


class AdvertiserSignUp(Struct):
    """A public sign-up: the company, and the person to invite to its portal once an admin approves it."""

    name: Name
    email: Email
    contact_name: Name | None = None
    billing: AdvertiserBillingBody | Unset = UNSET

    def __post_init__(self) -> None:
        self.name = parse_name(self.name)
        self.email = parse_email(self.email)
        if self.contact_name is not None:
            self.contact_name = parse_name(self.contact_name)


def verdict_status(verdict: Verdict) -> AdvertiserStatus:
    """The status an admin's verdict on a sign-up gives the advertiser."""
    return "active" if verdict.verdict == "approved" else "rejected"


class AdvertiserUpdate(Struct):
    """The fields sent change; in `billing`, the billing fields sent (`null` clears one)."""

    name: Name | Unset = UNSET
    status: AdvertiserStatus | Unset = UNSET
    status_reason: StatusReason | Unset | None = UNSET
    rotate_postback_token: bool | Unset = UNSET
    billing: AdvertiserBillingBody | Unset = UNSET

    def __post_init__(self) -> None:
        if isinstance(self.name, str):
            self.name = parse_name(self.name)
        self.status_reason = reason_with_status(self.status, self.status_reason)


class AdvertiserSignUpView(View, frozen=True):
    """The public sign-up's answer: the advertiser's id and status, never its postback token."""

    id: int
    name: str
    email: str
    status: str
    created_at: datetime


class _AdvertiserSeen(View, frozen=True):
    id: int
    name: str
    status: str
    status_reason: str | None
    created_at: datetime
    updated_at: datetime
    billing: AdvertiserBillingView


class AdvertiserView(_AdvertiserSeen, frozen=True):
    """The advertiser as the admin API shows it, with its postback token."""

    postback_token: str


class AdvertiserData(_AdvertiserSeen, frozen=True):
    """The advertiser as webhooks carry it: no postback token; its users (the people who sign in to its
    portal, its contacts), oldest first."""

    users: list[UserView]


def _seen(a: Advertiser) -> dict[str, Any]:
    return {"id": a.id, "name": a.name, "status": a.status, "status_reason": a.status_reason,
            "created_at": a.created_at, "updated_at": a.updated_at,
            "billing": advertiser_billing_view(a.billing)}  # fmt: skip


def advertiser_view(a: Advertiser) -> AdvertiserView:
    return AdvertiserView(**_seen(a), postback_token=a.postback_token)


def advertiser_signup_view(a: Advertiser, email: str) -> AdvertiserSignUpView:
    return AdvertiserSignUpView(id=a.id, name=a.name, email=email, status=a.status, created_at=a.created_at)


def advertiser_data(a: Advertiser, users: Sequence[User]) -> AdvertiserData:
    """`users`: the advertiser's users (others are left out)."""
    contacts = sorted((u for u in users if u.advertiser_id == a.id), key=lambda u: u.id)
    return AdvertiserData(**_seen(a), users=[user_view(u) for u in contacts])
