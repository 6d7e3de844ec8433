"""A source's mapping settings and the presets that reproduce the Everflow, impact.com and Tractionboard
destinations; the default preset follows the Segment e-commerce spec.

Settings are stored as the JSON a user gave (preset name plus overrides) and read into `SourceSettings`
whenever a message is mapped, so a preset's defaults can evolve without rewriting stored sources.

impact.com's settings table maps to these: *Campaign ID* `campaign_id`, *Event Type ID* `event_type_id`,
*iOS App ID* `ios_app_id`, *Android App ID* `android_app_id`, *Enable Page/Screen/Identify Events*
`enable_*_events`, *Action Event Names* `conversion_events`, *Install Event Names* `install_events`, *Page
Load Event Names* `page_load_events`, *Custom Parameter Mapping* `parameter_mapping`, *Custom Mapping for
Products* `product_mapping`. Which offer event each kind of action records is Tracklane's own: `event_mapping`
(per Segment event name), `event_type_id` (every action), `install_event` and `page_load_event`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from typing import Any

from tracklane.domain.errors import InvalidParameter

PRESETS = ("default", "everflow", "impact", "tractionboard")
ADV_FIELDS = ("adv1", "adv2", "adv3", "adv4", "adv5")
#: What a setting naming an offer event says to name the base conversion instead.
BASE_EVENT_NAMES = ("base", "0", "")
MAX_EVENT_REFERENCE = 200  # an offer event's name is at most 200 characters

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

#: impact.com's default mapping for page loads (`page`, and `screen` and `identify`, which map like a page):
#: parameter -> fallback chain. `CampaignId` and `ImpactAppId` come from the settings (see `mapping.py`).
IMPACT_PAGE_PARAMETERS: dict[str, tuple[str, ...]] = {
    "AppleIfa": ("context.device.advertisingId",),
    "AppleIfv": ("context.device.id",),
    "AppName": ("context.app.name",),
    "AppPackage": ("context.app.namespace",),
    "AppVer": ("context.app.version",),
    "CustomerEmail": ("context.traits.email", "properties.email"),
    "CustomerId": ("userId",),
    "CustomProfileId": ("anonymousId",),
    "DeviceCarrier": ("context.network.carrier",),
    "DeviceLocale": ("context.locale",),
    "DeviceMfr": ("context.device.manufacturer",),
    "DeviceModel": ("context.device.model",),
    "DeviceOs": ("context.device.type", "context.os.name"),
    "DeviceOsVer": ("context.os.version",),
    "EventDate": ("timestamp",),
    "GoogAId": ("properties.advertisingId",),
    "IpAddress": ("context.ip",),
    "PageUrl": ("context.page.url", "properties.url", "context.page.referrer", "context.referrer.url"),
    "ReferringUrl": ("context.referrer.url", "context.page.referrer"),
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
    event_type_id: str | None = None  # the offer event every action records (impact's Event Type ID)
    install_event: str | None = None  # the offer event installs record; None: the one named like the install
    page_load_event: str | None = None  # the offer event page loads record; None: page loads are not paid
    require_referrer: bool = False  # a conversion's click is `context.referrer.id` and `.type`, nothing else
    audiences: tuple[str, ...] = ()  # trait names that are audiences (Engage's own markers are always read)
    campaign_id: str | None = None  # impact's Campaign ID (CampaignId)
    ios_app_id: str | None = None  # impact's iOS App ID (ImpactAppId of iOS page loads)
    android_app_id: str | None = None  # impact's Android App ID (ImpactAppId of Android page loads)


_PRESETS: dict[str, SourceSettings] = {
    "default": SourceSettings(),
    "everflow": SourceSettings(
        preset="everflow", conversion_events=(), match_offer_event_names=False, payment_events=(),
        customer_refund_events=(), refund_events=(), signup_events=(), referrer_types=("everflow",),
        click_id_parameters=(), amount_fields=("total",), order_id_fields=("orderId", "order_id"),
        require_referrer=True,
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
_EVENT_REFERENCES = {"event_type_id", "install_event", "page_load_event"}
_DIGITS = re.compile(r"^[0-9]{1,18}$")
_APP_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
_IDS = {
    "campaign_id": (_DIGITS, "must be impact.com's numeric Campaign ID (1 to 18 digits)"),
    "ios_app_id": (_APP_ID, "must be an app id: 1 to 64 letters, digits, '.', '_' or '-'"),
    "android_app_id": (_APP_ID, "must be an app id: 1 to 64 letters, digits, '.', '_' or '-'"),
}


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
    if name in _EVENT_REFERENCES:
        return _event_reference_setting(where, value)
    if name in _IDS:
        pattern, rule = _IDS[name]
        if value is None or value == "":
            return None
        text = str(value).strip() if isinstance(value, str | int) and not isinstance(value, bool) else None
        if text is None or not pattern.match(text):
            raise InvalidParameter(where, rule)
        return text
    raise InvalidParameter(where, "is not a setting of a Segment source")


def _event_reference_setting(where: str, value: object) -> str | None:
    """An offer event named by its id (a positive integer) or its exact name, or `base`; empty: none."""
    if value is None:
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        if value <= 0:
            raise InvalidParameter(where, "must be a positive offer event id, an offer event name or base")
        return str(value)
    if not isinstance(value, str):
        raise InvalidParameter(where, "must be an offer event id or name, or base")
    text = value.strip()
    if not text:
        return None
    if len(text) > MAX_EVENT_REFERENCE or not text.isprintable():
        raise InvalidParameter(where, f"must be an offer event name of at most {MAX_EVENT_REFERENCE} printable "
                                      "characters, an offer event id or base")  # fmt: skip
    return text


def is_base(target: str) -> bool:
    """Whether a setting naming an offer event names the base conversion."""
    return target.strip().lower() in BASE_EVENT_NAMES


def settings_json(settings: SourceSettings) -> dict[str, Any]:
    """The effective settings as JSON (for the API)."""
    result: dict[str, Any] = {}
    for item in fields(SourceSettings):
        value = getattr(settings, item.name)
        result[item.name] = (
            list(value) if isinstance(value, tuple) else dict(value) if isinstance(value, Mapping) else value
        )
    return result
