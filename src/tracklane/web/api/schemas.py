"""Request body shapes, for the OpenAPI document; the domain validates the decoded JSON itself, so money
stays exact decimal and every error names its field."""

from __future__ import annotations

from decimal import Decimal
from typing import Any, Literal

from pydantic import BaseModel, Field

Money = Decimal | str | int


class PriceRuleIn(BaseModel):
    type: Literal["cpa", "cpl", "fixed", "cps", "cpa_cps", "cpc"]
    amount: Money | None = Field(None, description="Flat amount (cpa, cpl, fixed, cpc, cpa_cps), e.g. \"5.00\"")
    percent: Money | None = Field(None, description="Percent of the sale amount (cps, cpa_cps), 0..100")


class CapIn(BaseModel):
    metric: Literal["clicks", "conversions"]
    period: Literal["day", "week", "month", "total"]
    limit: int = Field(ge=0)
    per_partner: bool = False


class AdvertiserIn(BaseModel):
    name: str


class AdvertiserUpdate(BaseModel):
    name: str | None = None
    status: Literal["active", "inactive"] | None = None
    rotate_postback_token: bool | None = Field(None, description="true issues a new postback token")


class PartnerIn(BaseModel):
    name: str
    email: str


class PartnerUpdate(BaseModel):
    name: str | None = None
    email: str | None = None
    status: Literal["pending", "active", "rejected", "blocked"] | None = None


class VerdictIn(BaseModel):
    verdict: Literal["approved", "rejected"]
    reason: str | None = None


class OfferIn(BaseModel):
    advertiser_id: int
    name: str
    destination_url: str = Field(description="http(s) URL; macros such as {transaction_id} in path and query")
    revenue: PriceRuleIn
    payout: PriceRuleIn
    fallback_url: str | None = None
    status: Literal["active", "paused"] = "active"
    visibility: Literal["public", "approval_required", "private"] = "public"
    currency: str = "USD"
    attribution_window_days: int = Field(30, ge=1, le=365)
    allow_multiple_conversions: bool = False
    default_status: Literal["approved", "pending"] = "approved"
    caps: list[CapIn] = []


class OfferUpdate(BaseModel):
    name: str | None = None
    destination_url: str | None = None
    revenue: PriceRuleIn | None = None
    payout: PriceRuleIn | None = None
    fallback_url: str | None = None
    status: Literal["active", "paused"] | None = None
    visibility: Literal["public", "approval_required", "private"] | None = None
    currency: str | None = None
    attribution_window_days: int | None = None
    allow_multiple_conversions: bool | None = None
    default_status: Literal["approved", "pending"] | None = None
    caps: list[CapIn] | None = None


class OfferEventIn(BaseModel):
    name: str
    revenue: PriceRuleIn
    payout: PriceRuleIn
    allow_multiple_per_click: bool = False


class OfferEventUpdate(BaseModel):
    name: str | None = None
    revenue: PriceRuleIn | None = None
    payout: PriceRuleIn | None = None
    allow_multiple_per_click: bool | None = None


class OfferAccessIn(BaseModel):
    offer_id: int
    partner_id: int
    status: Literal["requested", "approved", "rejected"] = "approved"
    reason: str | None = None


class OfferAccessUpdate(BaseModel):
    status: Literal["requested", "approved", "rejected"]
    reason: str | None = None


class PartnerPayoutIn(BaseModel):
    partner_id: int
    event_id: int | None = Field(None, description="absent: the base conversion")
    payout: PriceRuleIn


class ApiKeyIn(BaseModel):
    role: Literal["admin", "advertiser", "partner"]
    advertiser_id: int | None = None
    partner_id: int | None = None


class ConversionStatusIn(BaseModel):
    status: Literal["approved", "pending", "rejected"]
    reason: str | None = Field(None, description="required to reject")


class WebhookIn(BaseModel):
    url: str = Field(description="http(s) URL receiving Standard Webhooks POSTs")
    event_types: list[str] | None = Field(None, description="event types to receive; null: all")
    description: str | None = None


class WebhookUpdate(BaseModel):
    url: str | None = None
    event_types: list[str] | None = None
    description: str | None = None
    status: Literal["active", "disabled"] | None = Field(None, description="active re-enables the endpoint")


class RotateSecretIn(BaseModel):
    overlap_hours: float = Field(24, ge=0, le=168, description="how long the old secret keeps signing too")


class PartnerPostbackIn(BaseModel):
    partner_id: int
    url: str = Field(description="http(s) URL; macros such as {transaction_id} in path and query only")
    offer_id: int | None = Field(None, description="absent: every offer of the partner")
    on: Literal["conversion", "event", "both"] = "conversion"
    method: Literal["GET", "POST"] = "GET"
    delay_seconds: int = Field(0, ge=0, le=300)
    success_body_contains: str | None = Field(None, description="success also needs this text in the answer")


class PartnerPostbackUpdate(BaseModel):
    url: str | None = None
    offer_id: int | None = None
    on: Literal["conversion", "event", "both"] | None = None
    method: Literal["GET", "POST"] | None = None
    delay_seconds: int | None = None
    success_body_contains: str | None = None
    status: Literal["active", "inactive"] | None = Field(None, description="active re-activates the postback")


class ReplayIn(BaseModel):
    from_: str = Field(alias="from", description="created at or after (ISO 8601)")
    to: str = Field(description="created before (ISO 8601)")
    statuses: str | None = Field(None, description="comma-separated: failed, skipped, succeeded (default: two first)")
    endpoint_id: int | None = None
    postback_id: int | None = None


def body_doc(model: type[BaseModel]) -> dict[str, Any]:
    """`openapi_extra` that documents a JSON body the handler reads itself."""
    return {
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": model.model_json_schema(ref_template="#/$defs/{model}")}},
        }
    }


class SourceIn(BaseModel):
    name: str
    preset: Literal["default", "everflow", "impact", "tractionboard"] = "default"
    write_key: str | None = Field(None, description="keep an existing write key (default: a new one)")
    settings: dict[str, Any] | None = Field(None, description="overrides of the preset's mapping settings")


class SourceUpdate(BaseModel):
    name: str | None = None
    settings: dict[str, Any] | None = None
