"""Clicks: how each role sees one (a click's money is CPC revenue and payout, in its offer's currency).

- The admin sees both sides (`ClickView`).
- An advertiser sees the revenue it owes for the click, never the partner's payout (`ClickAdvertiserView`).
- A partner sees its payout, never revenue (`ClickPartnerView`); a click carries none of the advertiser's
  landing pages for anyone.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from tracklane.domain.model import Click, Role
from tracklane.domain.money import format_money
from tracklane.domain.tenancy import Scope
from tracklane.resources.fields import MoneyText, View


class _ClickSeen(View, frozen=True):
    """What every role that may see a click sees of it."""

    id: int
    transaction_id: str
    offer_id: int
    partner_id: int
    advertiser_id: int | None
    sub1: str | None
    sub2: str | None
    sub3: str | None
    sub4: str | None
    sub5: str | None
    source_id: str | None
    ip: str | None
    user_agent: str | None
    device_type: str
    os: str | None
    browser: str | None
    is_bot: bool
    country: str | None
    referrer: str | None
    verdict: str
    reject_reason: str | None
    created_at: datetime


class ClickAdvertiserView(_ClickSeen, frozen=True):
    """The click as the advertiser of its offer sees it: the CPC revenue it owes."""

    revenue: MoneyText


class ClickView(ClickAdvertiserView, frozen=True):
    """The click as the admin sees it."""

    payout: MoneyText


class ClickPartnerView(_ClickSeen, frozen=True):
    """The click as its partner sees it: the CPC payout it earned."""

    payout: MoneyText


ClickRoleView = ClickView | ClickAdvertiserView | ClickPartnerView


def _seen(c: Click) -> dict[str, Any]:
    return {
        "id": c.id, "transaction_id": c.transaction_id, "offer_id": c.offer_id, "partner_id": c.partner_id,
        "advertiser_id": c.advertiser_id, **{f"sub{i}": sub for i, sub in enumerate(c.subs, start=1)},
        "source_id": c.source_id, "ip": c.ip, "user_agent": c.user_agent, "device_type": c.device.device_type,
        "os": c.device.os, "browser": c.device.browser, "is_bot": c.device.is_bot, "country": c.country,
        "referrer": c.referrer, "verdict": c.verdict, "reject_reason": c.reject_reason, "created_at": c.created_at,
    }  # fmt: skip


def click_view(c: Click, currency: str) -> ClickView:
    return ClickView(**_seen(c), revenue=format_money(c.revenue, currency), payout=format_money(c.payout, currency))


def click_advertiser_view(c: Click, currency: str) -> ClickAdvertiserView:
    return ClickAdvertiserView(**_seen(c), revenue=format_money(c.revenue, currency))


def click_partner_view(c: Click, currency: str) -> ClickPartnerView:
    return ClickPartnerView(**_seen(c), payout=format_money(c.payout, currency))


def click_view_for(scope: Scope, c: Click, currency: str) -> ClickRoleView:
    """The click as the caller's role sees it (the caller's tenant is checked before)."""
    if scope.role is Role.ADMIN:
        return click_view(c, currency)
    if scope.role is Role.ADVERTISER:
        return click_advertiser_view(c, currency)
    return click_partner_view(c, currency)
