"""Partners: the bodies of an admin's creation, a public sign-up, a change and a sign-up verdict, and the
partner as shown (the same to every role that may see it: partners carry no money)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from tracklane.domain.catalog import parse_email, parse_name
from tracklane.domain.model import Partner, PartnerStatus
from tracklane.resources.fields import UNSET, Email, Name, Reason, Struct, Unset, View


class PartnerCreate(Struct):
    name: Name
    email: Email

    def __post_init__(self) -> None:
        self.name = parse_name(self.name)
        self.email = parse_email(self.email)


class PartnerUpdate(Struct):
    name: Name | Unset = UNSET
    email: Email | Unset = UNSET
    status: PartnerStatus | Unset = UNSET

    def __post_init__(self) -> None:
        if isinstance(self.name, str):
            self.name = parse_name(self.name)
        if isinstance(self.email, str):
            self.email = parse_email(self.email)


class Verdict(Struct):
    verdict: Literal["approved", "rejected"]
    reason: Reason | None = None

    @property
    def status(self) -> PartnerStatus:
        return PartnerStatus.ACTIVE if self.verdict == "approved" else PartnerStatus.REJECTED


class PartnerView(View, frozen=True):
    id: int
    name: str
    email: str
    status: PartnerStatus
    created_at: datetime
    updated_at: datetime


def partner_view(p: Partner) -> PartnerView:
    return PartnerView(id=p.id, name=p.name, email=p.email, status=p.status, created_at=p.created_at,
                       updated_at=p.updated_at)  # fmt: skip


class SignupVerdictData(View, frozen=True):
    """The `partner.signup_verdict` webhook payload."""

    partner_id: int
    partner_name: str
    verdict: str
    new_status: PartnerStatus
    reason: str | None
    decided_at: datetime
    partner: PartnerView


def signup_verdict_data(p: Partner, verdict: Verdict, at: datetime) -> SignupVerdictData:
    return SignupVerdictData(partner_id=p.id, partner_name=p.name, verdict=verdict.verdict, new_status=p.status,
                             reason=verdict.reason, decided_at=at, partner=partner_view(p))  # fmt: skip
