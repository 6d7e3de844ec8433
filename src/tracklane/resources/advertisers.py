"""Advertisers: the bodies that create and change one, and how each role sees it.

The admin's view carries the postback token (the `secure` value of `/postback`); the view sent in
webhooks does not, because a webhook receiver is another system.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from tracklane.domain.catalog import parse_name
from tracklane.domain.model import Advertiser
from tracklane.resources.fields import UNSET, Name, Struct, Unset, View

AdvertiserStatus = Literal["active", "inactive"]


class AdvertiserCreate(Struct):
    name: Name

    def __post_init__(self) -> None:
        self.name = parse_name(self.name)


class AdvertiserUpdate(Struct):
    name: Name | Unset = UNSET
    status: AdvertiserStatus | Unset = UNSET
    rotate_postback_token: bool | Unset = UNSET

    def __post_init__(self) -> None:
        if isinstance(self.name, str):
            self.name = parse_name(self.name)


class AdvertiserData(View, frozen=True):
    """The advertiser as webhooks carry it: no postback token."""

    id: int
    name: str
    status: str
    created_at: datetime
    updated_at: datetime


class AdvertiserView(AdvertiserData, frozen=True):
    """The advertiser as the admin API shows it, with its postback token."""

    postback_token: str


def advertiser_data(a: Advertiser) -> AdvertiserData:
    return AdvertiserData(id=a.id, name=a.name, status=a.status, created_at=a.created_at, updated_at=a.updated_at)


def advertiser_view(a: Advertiser) -> AdvertiserView:
    return AdvertiserView(id=a.id, name=a.name, status=a.status, created_at=a.created_at,
                          updated_at=a.updated_at, postback_token=a.postback_token)  # fmt: skip
