"""A source's mapping settings and the presets that reproduce the Everflow, impact.com and Tractionboard
destinations; the default preset follows the Segment e-commerce spec.

Settings are stored as the JSON a user gave (preset name plus overrides) and read into `SourceSettings`
whenever a message is mapped, so a preset's defaults can evolve without rewriting stored sources.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any

from tracklane.domain.errors import InvalidParameter

PRESETS = ("default", "everflow", "impact", "tractionboard")
ADV_FIELDS = ("adv1", "adv2", "adv3", "adv4", "adv5")

#: impact.com's default parameter mapping for track calls: parameter -> fallback chain of message paths.
IMPACT_PARAMETERS: dict[str, tuple[str, ...]] = {
    "AppleAdTrack": ("context.device.adTrackingEnabled",),
    "AppleIfa": ("context.device.advertisingId",),
    "AppleIfv": ("context.device.id",),
    "AppName": ("context.app.name",),
    "AppPackage": ("context.app.namespace",),
    "AppVer": ("context.app.version",),
    "CurrencyCode": ("properties.currency",),
    "CustomerEmail": ("context.traits.email", "properties.email"),
    "CustomerId": ("userId",),
    "CustomerStatus": ("context.traits.status",),
    "CustomProfileId": ("anonymousId",),
    "DeviceCarrier": ("context.network.carrier",),
    "DeviceLocale": ("context.locale",),
    "DeviceMfr": ("context.device.manufacturer",),
    "DeviceModel": ("context.device.model",),
    "DeviceOs": ("context.device.type", "context.os.name"),
    "DeviceOsVer": ("context.os.version",),
    "EventDate": ("timestamp",),
    "EventTypeCode": ("event",),
    "GoogAId": ("properties.advertisingId",),
    "IpAddress": ("context.ip",),
    "Latitude": ("context.location.latitude",),
    "Longitude": ("context.location.longitude",),
    "OrderDiscount": ("properties.discount",),
    "OrderId": ("properties.orderId", "properties.order_id", "properties.transactionID", "properties.messageId",
                "messageId"),
    "OrderPromoCode": ("properties.coupon",),
    "OrderShipping": ("properties.shipping",),
    "OrderSubTotalPostDiscount": ("properties.revenue",),
    "OrderTax": ("properties.tax",),
    "ReferringUrl": ("context.referrer.url", "context.page.referrer"),
    "PageUrl": ("context.page.url", "properties.url", "context.page.referrer", "context.referrer.url"),
    "UserAgent": ("context.userAgent",),
}  # fmt: skip

#: impact.com's default mapping of each product of `properties.products[]`.
IMPACT_PRODUCT_FIELDS: dict[str, str] = {
    "ItemBrand": "brand", "ItemCategory": "category", "ItemName": "name", "ItemPrice": "price",
    "ItemPromoCode": "coupon", "ItemQuantity": "quantity", "ItemSku": "sku",
}  # fmt: skip


@dataclass(frozen=True, slots=True)
class SourceSettings:
    """How a source's messages map to conversions, events, refunds and customer activity."""

    preset: str = "default"
    conversion_events: tuple[str, ...] = ("Order Completed", "Completed Order")
    install_events: tuple[str, ...] = ()
    page_load_events: tuple[str, ...] = ()
    event_mapping: Mapping[str, str] = field(default_factory=dict)
    match_offer_event_names: bool = True
    refund_events: tuple[str, ...] = ("Order Refunded",)
    payment_events: tuple[str, ...] = ("Order Completed", "Completed Order")
    customer_refund_events: tuple[str, ...] = ("Order Refunded",)
    signup_events: tuple[str, ...] = ("Signed Up", "User Signed Up")
    churn_events: tuple[str, ...] = ()
    enable_page_events: bool = True
    enable_screen_events: bool = True
    enable_identify_events: bool = True
    referrer_types: tuple[str, ...] = ("tracklane",)
    click_id_parameters: tuple[str, ...] = ("tl_tid",)
    amount_fields: tuple[str, ...] = ("revenue", "total", "subtotal")
    order_id_fields: tuple[str, ...] = ("order_id", "orderId")
    impact_parameters: bool = False
    parameter_mapping: Mapping[str, str] = field(default_factory=dict)
    product_mapping: Mapping[str, str] = field(default_factory=dict)
    event_type_id: str | None = None


_PRESETS: dict[str, SourceSettings] = {
    "default": SourceSettings(),
    "everflow": SourceSettings(
        preset="everflow", conversion_events=(), match_offer_event_names=False, payment_events=(),
        customer_refund_events=(), refund_events=(), signup_events=(), referrer_types=("everflow",),
        click_id_parameters=(), amount_fields=("total",), order_id_fields=("orderId", "order_id"),
    ),
    "impact": SourceSettings(
        preset="impact", conversion_events=("Order Completed",), install_events=("Application Installed",),
        page_load_events=("Application Opened",), match_offer_event_names=True, refund_events=(),
        payment_events=(), customer_refund_events=(), signup_events=(), enable_page_events=True,
        enable_screen_events=False, enable_identify_events=False, referrer_types=("impactRadius",),
        click_id_parameters=("im_ref",), amount_fields=("revenue",),
        order_id_fields=("orderId", "order_id", "transactionID", "messageId"), impact_parameters=True,
    ),
    "tractionboard": SourceSettings(
        preset="tractionboard", conversion_events=("signup",), match_offer_event_names=False, refund_events=(),
        payment_events=("Payment Made",), customer_refund_events=("Refund Received",), signup_events=("signup",),
        churn_events=("cancel",), amount_fields=("revenue", "amount", "total", "value"),
    ),
}  # fmt: skip

_LISTS = {f.name for f in fields(SourceSettings) if isinstance(getattr(SourceSettings(), f.name), tuple)}
_FLAGS = {f.name for f in fields(SourceSettings) if isinstance(getattr(SourceSettings(), f.name), bool)}
_MAPS = {"event_mapping", "parameter_mapping", "product_mapping"}


def preset_names() -> tuple[str, ...]:
    return PRESETS


def source_settings(preset: str, overrides: Mapping[str, Any]) -> SourceSettings:
    """The preset's settings with the user's overrides; every override is validated and named on error."""
    if preset not in _PRESETS:
        raise InvalidParameter("preset", f"must be one of {', '.join(PRESETS)}")
    changes: dict[str, Any] = {}
    for name, value in overrides.items():
        changes[name] = _setting(name, value)
    return replace(_PRESETS[preset], **changes)


def _setting(name: str, value: object) -> object:
    where = f"settings.{name}"
    if name in _LISTS:
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
            raise InvalidParameter(where, "must be a list of names")
        return tuple(v.strip() for v in value)
    if name in _FLAGS:
        if not isinstance(value, bool):
            raise InvalidParameter(where, "must be true or false")
        return value
    if name in _MAPS:
        if not isinstance(value, dict) or not all(
            isinstance(k, str) and isinstance(v, str | int) and not isinstance(v, bool) for k, v in value.items()
        ):
            raise InvalidParameter(where, "must be an object of names to names")
        return {k.strip(): str(v).strip() for k, v in value.items()}
    if name == "event_type_id":
        if value is not None and not isinstance(value, str | int):
            raise InvalidParameter(where, "must be a string")
        return None if value in (None, "") else str(value)
    raise InvalidParameter(where, "is not a setting of a Segment source")


def settings_json(settings: SourceSettings) -> dict[str, Any]:
    """The effective settings as JSON (for the API)."""
    result: dict[str, Any] = {}
    for item in fields(SourceSettings):
        value = getattr(settings, item.name)
        result[item.name] = (
            list(value) if isinstance(value, tuple) else dict(value) if isinstance(value, Mapping) else value
        )
    return result
