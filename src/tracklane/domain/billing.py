"""Billing details of advertisers and partners: how often each is invoiced or paid, how a partner is paid, the
payment terms an advertiser is given, and each one's tax id.

They are the admin's business records: only the admin's views and the webhooks (sent to the admin's own
systems) carry them. Every field is optional (`None`: not set).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from tracklane.domain.errors import InvalidParameter

MAX_TAX_ID = 64
MAX_PAYMENT_TERMS_DAYS = 365


class BillingFrequency(StrEnum):
    """How often an advertiser is invoiced or a partner is paid."""

    WEEKLY = "weekly"
    BIMONTHLY = "bimonthly"  # twice a month
    MONTHLY = "monthly"
    TWO_MONTHS = "two_months"
    QUARTERLY = "quarterly"
    MANUAL = "manual"
    OTHER = "other"


class PaymentMethod(StrEnum):
    """How a partner is paid."""

    WIRE = "wire"
    DIRECT_DEPOSIT = "direct_deposit"
    PAYPAL = "paypal"
    CHECK = "check"
    OTHER = "other"


@dataclass(frozen=True, slots=True)
class AdvertiserBilling:
    billing_frequency: BillingFrequency | None = None
    payment_terms_days: int | None = None  # days the advertiser has to pay an invoice (net 30: 30)
    tax_id: str | None = None


@dataclass(frozen=True, slots=True)
class PartnerBilling:
    billing_frequency: BillingFrequency | None = None
    payment_method: PaymentMethod | None = None
    tax_id: str | None = None


def parse_tax_id(raw: object, field: str = "tax_id") -> str | None:
    """A tax id as written (trimmed; empty: none), printable, at most `MAX_TAX_ID` characters."""
    if raw is None:
        return None
    if not isinstance(raw, str):
        raise InvalidParameter(field, "must be a string")
    value = raw.strip()
    if len(value) > MAX_TAX_ID:
        raise InvalidParameter(field, f"must be at most {MAX_TAX_ID} characters")
    if not value.isprintable():
        raise InvalidParameter(field, "must not contain control characters")
    return value or None
