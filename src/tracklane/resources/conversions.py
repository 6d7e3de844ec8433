"""Conversions and events: the body of a change (status, money or both), and how each role sees a conversion
and its trace.

- The admin sees everything (`ConversionView`).
- An advertiser sees what it owes (revenue, its sale amount, its `adv1..adv5`) and the trace built from the
  revenue side's steps and the common ones: never a payout, a payout rule or a step about either
  (`ConversionAdvertiserView`).
- A partner sees its payout and the conversion's facts, never revenue, `adv1..adv5` or the trace; the sale
  amount only where the offer shares it with partners (`ConversionPartnerView`; absent otherwise).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import msgspec

from tracklane.domain.errors import InvalidParameter
from tracklane.domain.model import Conversion, ConversionStatus, Origin, ReasonCode, Role
from tracklane.domain.money import format_money, parse_money
from tracklane.domain.tenancy import Scope
from tracklane.domain.trace import Side, TraceStep
from tracklane.resources.fields import UNSET, Amount, MoneyText, Reason, Struct, Unset, View


class ConversionChange(Struct):
    """Change a conversion's status (approve, hold, reject), its money (an adjustment), or both at once.

    - `amount` is the sale amount it is now (an order update); `refund` takes part of the sale amount off (a
      partial refund). Either recomputes the money that depends on the sale amount (a cps or cpa_cps revenue
      or payout, by the offer's or event's rule) unless `revenue` or `payout` is given.
    - `revenue` and `payout` set that side's money; an advertiser may not set `payout`.

    - Rejecting an approved conversion reverses it; so does a refund of its whole sale amount (an `amount`
      of 0) given without a status: it becomes rejected, its money adjusted.

    Each change, who made it, why, and the money before and after, is appended to the trace: its audit
    history, each step seen by the side whose money it is about. Rejecting and any money change need a
    reason: a `reason_code`, a `reason` in words, or both (kept as `CODE: words`). That is checked once the
    conversion is found, so that a conversion the caller may not see is not found whatever the body says.
    """

    status: ConversionStatus | Unset = UNSET
    reason: Reason | None = None
    reason_code: (
        Annotated[ReasonCode, msgspec.Meta(description="impact.com-style code put before the reason")] | None
    ) = None
    amount: Amount | Unset = UNSET
    refund: Amount | Unset = UNSET
    revenue: Amount | Unset = UNSET
    payout: Amount | Unset = UNSET

    def __post_init__(self) -> None:
        if self.reason is not None:
            self.reason = self.reason.strip() or None
        if self.reason_code is not None:
            self.reason = self.reason_code.value + (f": {self.reason}" if self.reason else "")
        for name in ("amount", "refund", "revenue", "payout"):
            value = getattr(self, name)
            if value is not UNSET:
                setattr(self, name, Amount(parse_money(value, name)))
        if self.amount is not UNSET and self.refund is not UNSET:
            raise InvalidParameter(
                "refund", "cannot be given with amount: give the sale amount it is now, or the refund"
            )
        if self.refund is not UNSET and self.refund <= 0:
            raise InvalidParameter("refund", "must be more than 0")
        if self.status is UNSET and not self.moves_money:
            raise InvalidParameter("status", "is required unless the change sets amount, refund, revenue or payout")

    @property
    def moves_money(self) -> bool:
        return any(v is not UNSET for v in (self.amount, self.refund, self.revenue, self.payout))


class TraceStepView(View, omit_defaults=True, frozen=True):
    """One decision of the attribution trace; `side` says whose money it is about (absent: neither)."""

    step: str
    outcome: str
    detail: str
    side: Side | None = None
    at: datetime | None = None


class _ConversionSeen(View, frozen=True):
    """What every role that may see a conversion sees of it."""

    id: int
    transaction_id: str
    click_id: int
    offer_id: int
    partner_id: int
    advertiser_id: int
    event_id: int | None
    event_name: str | None
    status: ConversionStatus
    status_reason: str | None
    currency: str
    order_id: str | None
    origin: Origin
    created_at: datetime | None
    updated_at: datetime | None


class ConversionAdvertiserView(_ConversionSeen, frozen=True):
    """The conversion as its advertiser sees it: what it owes and why, never the partner's payout."""

    revenue: MoneyText
    revenue_type: str
    amount: MoneyText | None
    adv1: str | None
    adv2: str | None
    adv3: str | None
    adv4: str | None
    adv5: str | None
    trace: list[TraceStepView]


class ConversionView(ConversionAdvertiserView, frozen=True):
    """The conversion as the admin sees it: both sides of the deal and the whole trace."""

    payout: MoneyText
    payout_type: str


class ConversionPartnerView(_ConversionSeen, frozen=True):
    """The conversion as its partner sees it: its payout; `amount` only where the offer shares it."""

    payout: MoneyText
    payout_type: str
    amount: MoneyText | Unset | None = UNSET


ConversionRoleView = ConversionView | ConversionAdvertiserView | ConversionPartnerView


def _seen(c: Conversion) -> dict[str, Any]:
    return {
        "id": c.id, "transaction_id": c.transaction_id, "click_id": c.click_id, "offer_id": c.offer_id,
        "partner_id": c.partner_id, "advertiser_id": c.advertiser_id, "event_id": c.event_id,
        "event_name": c.event_name, "status": c.status, "status_reason": c.status_reason, "currency": c.currency,
        "order_id": c.order_id, "origin": c.origin, "created_at": c.created_at, "updated_at": c.updated_at,
    }  # fmt: skip


def _amount(c: Conversion) -> str | None:
    return None if c.amount is None else format_money(c.amount, c.currency)


def _step_view(step: TraceStep) -> TraceStepView:
    return TraceStepView(step=step.step, outcome=step.outcome, detail=step.detail, side=step.side, at=step.at)


def _advertiser_side(c: Conversion) -> dict[str, Any]:
    return {"revenue": format_money(c.revenue, c.currency), "revenue_type": c.revenue_type, "amount": _amount(c),
            **{f"adv{i}": adv for i, adv in enumerate(c.advs, start=1)}}  # fmt: skip


def conversion_view(c: Conversion) -> ConversionView:
    return ConversionView(**_seen(c), **_advertiser_side(c), trace=[_step_view(s) for s in c.trace],
                          payout=format_money(c.payout, c.currency), payout_type=c.payout_type)  # fmt: skip


def conversion_advertiser_view(c: Conversion) -> ConversionAdvertiserView:
    trace = [_step_view(s) for s in c.trace if s.seen_by(Side.REVENUE)]
    return ConversionAdvertiserView(**_seen(c), **_advertiser_side(c), trace=trace)


def conversion_partner_view(c: Conversion, shares_amount: bool) -> ConversionPartnerView:
    """`shares_amount`: the offer's `share_amount_with_partners`."""
    return ConversionPartnerView(**_seen(c), payout=format_money(c.payout, c.currency), payout_type=c.payout_type,
                                 amount=_amount(c) if shares_amount else UNSET)  # fmt: skip


def conversion_view_for(scope: Scope, c: Conversion, shares_amount: bool) -> ConversionRoleView:
    """The conversion as the caller's role sees it (the caller's tenant is checked before)."""
    if scope.role is Role.ADMIN:
        return conversion_view(c)
    if scope.role is Role.ADVERTISER:
        return conversion_advertiser_view(c)
    return conversion_partner_view(c, shares_amount)
