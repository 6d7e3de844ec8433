"""Billing details of advertisers and partners as the API reads and shows them (`domain/billing.py`).

The same block is read on creation and on change: the fields sent are set, `null` clears one, absent ones
stay as they are (on creation: not set). Only the admin's views and the webhooks carry the block.
"""

from __future__ import annotations

from typing import Annotated

import msgspec

from tracklane.domain.billing import (
    MAX_PAYMENT_TERMS_DAYS,
    MAX_TAX_ID,
    AdvertiserBilling,
    BillingFrequency,
    PartnerBilling,
    PaymentMethod,
    parse_tax_id,
)
from tracklane.resources.fields import UNSET, Struct, Unset, View

PaymentTermsDays = Annotated[int, msgspec.Meta(ge=0, le=MAX_PAYMENT_TERMS_DAYS, examples=[30],
                                               description="days the advertiser has to pay an invoice")]  # fmt: skip
TaxId = Annotated[str, msgspec.Meta(max_length=MAX_TAX_ID, examples=["DE123456789"],
                                    description="VAT number, EIN or other tax id, as written")]  # fmt: skip


class AdvertiserBillingBody(Struct):
    """How often the advertiser is invoiced, the payment terms of its invoices, and its tax id."""

    billing_frequency: BillingFrequency | Unset | None = UNSET
    payment_terms_days: PaymentTermsDays | Unset | None = UNSET
    tax_id: TaxId | Unset | None = UNSET

    def __post_init__(self) -> None:
        if isinstance(self.tax_id, str):
            self.tax_id = parse_tax_id(self.tax_id)


class PartnerBillingBody(Struct):
    """How often and how the partner is paid, and its tax id."""

    billing_frequency: BillingFrequency | Unset | None = UNSET
    payment_method: PaymentMethod | Unset | None = UNSET
    tax_id: TaxId | Unset | None = UNSET

    def __post_init__(self) -> None:
        if isinstance(self.tax_id, str):
            self.tax_id = parse_tax_id(self.tax_id)


class AdvertiserBillingView(View, frozen=True):
    billing_frequency: BillingFrequency | None
    payment_terms_days: int | None
    tax_id: str | None


class PartnerBillingView(View, frozen=True):
    billing_frequency: BillingFrequency | None
    payment_method: PaymentMethod | None
    tax_id: str | None


def advertiser_billing_view(b: AdvertiserBilling) -> AdvertiserBillingView:
    return AdvertiserBillingView(billing_frequency=b.billing_frequency, payment_terms_days=b.payment_terms_days,
                                 tax_id=b.tax_id)  # fmt: skip


def partner_billing_view(b: PartnerBilling) -> PartnerBillingView:
    return PartnerBillingView(billing_frequency=b.billing_frequency, payment_method=b.payment_method, tax_id=b.tax_id)
