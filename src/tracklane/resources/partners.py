"""Partners: the bodies of an admin's creation, a public sign-up, a change and a sign-up verdict, who gave a
verdict, and the partner as shown.

- Everyone who may see a partner sees `PartnerView` (partners carry no money): the public sign-up's answer.
- The admin's view adds the billing details (`PartnerAdminView`); no other role ever sees them.
- Webhooks carry the admin's view with the partner's users, its contacts (`PartnerData`).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Annotated, Any, Literal

import msgspec

from tracklane.domain.catalog import parse_email, parse_name
from tracklane.domain.model import ApiKey, Partner, PartnerStatus, User
from tracklane.resources.billing import PartnerBillingBody, PartnerBillingView, partner_billing_view
from tracklane.resources.fields import UNSET, Email, Name, Reason, Struct, Unset, View
from tracklane.resources.users import UserView, user_view


class PartnerCreate(Struct):
    """An admin's partner, or a public sign-up (which may give its billing details too; its answer does not
    show them)."""

    name: Name
    email: Email
    billing: PartnerBillingBody | Unset = UNSET

    def __post_init__(self) -> None:
        self.name = parse_name(self.name)
        self.email = parse_email(self.email)


StatusReason = Annotated[str, msgspec.Meta(max_length=500, description="why it has its status (a verdict's "
                                          "reason), shown to it; a status change without one clears it")]  # fmt: skip


def reason_with_status(status: object, reason: str | Unset | None) -> str | Unset | None:
    """The status reason an update sets: the one given (blank: none); none when the status changes without
    one (an approval clears a rejection's reason); unchanged otherwise."""
    if isinstance(reason, str):
        return reason.strip() or None
    return None if status is not UNSET and reason is UNSET else reason


class PartnerUpdate(Struct):
    """The fields sent change; in `billing`, the billing fields sent (`null` clears one)."""

    name: Name | Unset = UNSET
    email: Email | Unset = UNSET
    status: PartnerStatus | Unset = UNSET
    status_reason: StatusReason | Unset | None = UNSET
    billing: PartnerBillingBody | Unset = UNSET

    def __post_init__(self) -> None:
        if isinstance(self.name, str):
            self.name = parse_name(self.name)
        if isinstance(self.email, str):
            self.email = parse_email(self.email)
        self.status_reason = reason_with_status(self.status, self.status_reason)


class Verdict(Struct):
    verdict: Literal["approved", "rejected"]
    reason: Reason | None = None

    @property
    def status(self) -> PartnerStatus:
        return PartnerStatus.ACTIVE if self.verdict == "approved" else PartnerStatus.REJECTED


class DecidedBy(View, frozen=True):
    """Who gave a verdict: a user of the console (`user`), an API key (`api_key`), or Tracklane itself
    (`system`: the demo program)."""

    type: Literal["user", "api_key", "system"]
    id: int | None
    name: str
    email: str | None


def decided_by_user(user: User) -> DecidedBy:
    return DecidedBy(type="user", id=user.id, name=user.name or user.email, email=user.email)


def decided_by_key(key: ApiKey) -> DecidedBy:
    return DecidedBy(type="api_key", id=key.id, name=f"api key #{key.id} ({key.role.value})", email=None)


def decided_by_system(name: str) -> DecidedBy:
    return DecidedBy(type="system", id=None, name=name, email=None)


class PartnerView(View, frozen=True):
    id: int
    name: str
    email: str
    status: PartnerStatus
    status_reason: str | None
    created_at: datetime
    updated_at: datetime


class PartnerAdminView(PartnerView, frozen=True):
    """The partner as the admin API shows it: with its billing details."""

    billing: PartnerBillingView


class PartnerData(PartnerAdminView, frozen=True):
    """The partner as webhooks carry it: the admin's view and its users (the people who sign in to its
    portal, its contacts), oldest first."""

    users: list[UserView]


def _seen(p: Partner) -> dict[str, Any]:
    return {"id": p.id, "name": p.name, "email": p.email, "status": p.status, "status_reason": p.status_reason,
            "created_at": p.created_at, "updated_at": p.updated_at}  # fmt: skip


def partner_view(p: Partner) -> PartnerView:
    return PartnerView(**_seen(p))


def partner_admin_view(p: Partner) -> PartnerAdminView:
    return PartnerAdminView(**_seen(p), billing=partner_billing_view(p.billing))


def partner_data(p: Partner, users: Sequence[User]) -> PartnerData:
    """`users`: the partner's users (others are left out)."""
    contacts = sorted((u for u in users if u.partner_id == p.id), key=lambda u: u.id)
    return PartnerData(**_seen(p), billing=partner_billing_view(p.billing), users=[user_view(u) for u in contacts])


class SignupVerdictData(View, frozen=True):
    """The `partner.signup_verdict` webhook payload: the verdict, who gave it and when, and the partner."""

    partner_id: int
    partner_name: str
    verdict: str
    new_status: PartnerStatus
    reason: str | None
    decided_by: DecidedBy
    decided_at: datetime
    partner: PartnerData


def signup_verdict_data(
    partner: PartnerData, verdict: Verdict, decided_by: DecidedBy, at: datetime
) -> SignupVerdictData:
    return SignupVerdictData(partner_id=partner.id, partner_name=partner.name, verdict=verdict.verdict,
                             new_status=partner.status, reason=verdict.reason, decided_by=decided_by,
                             decided_at=at, partner=partner)  # fmt: skip
