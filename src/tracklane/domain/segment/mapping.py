"""What one Segment message means under a source's settings: the click it names, the conversion or event
it is, a refund, customer activity (signup, payment, refund, churn, visit), traits, audiences, group, alias.

`map_message` decides; the service applies the result inside the message's transaction.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tracklane.domain.errors import InvalidParameter
from tracklane.domain.money import MAX_DECIMAL_TEXT, STORAGE_PLACES, parse_currency, parse_decimal, parse_money
from tracklane.domain.segment.messages import Message
from tracklane.domain.segment.settings import ADV_FIELDS, IMPACT_PARAMETERS, IMPACT_PRODUCT_FIELDS, SourceSettings

DEFAULT_CURRENCY = "USD"
BASE_EVENT_NAMES = ("base", "0", "")
AUDIENCE_TRACKS = {"Audience Entered": True, "Audience Exited": False}
PRODUCT_FIELDS = ("product_id", "sku", "name", "brand", "category", "variant", "price", "quantity", "coupon")
_SNAKE = re.compile(r"^[a-z0-9]+(?:_[a-z0-9]+)*$")
_QUANTUM = Decimal(1).scaleb(-STORAGE_PLACES)


@dataclass(frozen=True, slots=True)
class ConversionIntent:
    """A base conversion (no event named) or an event of the click's offer, with the sale's details."""

    event_id: int | None
    event_name: str | None
    amount: Decimal | None
    currency: str
    order_id: str | None
    advs: tuple[str | None, str | None, str | None, str | None, str | None]
    base_if_no_event: bool = False  # impact: an action event the offer does not define is its base conversion
    skip_if_no_event: bool = False  # default: a track named like no offer event is not a conversion


@dataclass(frozen=True, slots=True)
class Meaning:
    """Everything a message asks for; empty parts mean nothing to do."""

    summary: str
    click_reference: str | None = None
    links_click: bool = False
    conversion: ConversionIntent | None = None
    refund_order_id: str | None = None
    refunds_order: bool = False
    activity: str | None = None  # signup, payment, refund, churn
    activity_amount: Decimal | None = None
    activity_currency: str | None = None
    visit: bool = False
    traits: Mapping[str, Any] = field(default_factory=dict)
    audiences: Mapping[str, bool] = field(default_factory=dict)
    group: tuple[str, Mapping[str, Any]] | None = None
    alias: tuple[str, str] | None = None
    parameters: Mapping[str, str] = field(default_factory=dict)
    items: Sequence[Mapping[str, str]] = ()


def map_message(message: Message, settings: SourceSettings) -> Meaning:
    """Decide what the message means; raises `InvalidParameter` naming the property when it is malformed."""
    reference = click_reference(message, settings)
    parameters = impact_parameters(message, settings) if settings.impact_parameters else {}
    items = tuple(product_items(message, settings))
    common: dict[str, Any] = {"click_reference": reference, "parameters": parameters, "items": items}
    if message.type == "track":
        return _track(message, settings, common)
    if message.type in ("page", "screen"):
        enabled = settings.enable_page_events if message.type == "page" else settings.enable_screen_events
        return Meaning(summary=f"{message.type} visit", links_click=enabled, visit=True, **common)
    if message.type == "identify":
        traits, audiences = split_audiences(message)
        return Meaning(summary="identify", links_click=settings.enable_identify_events, traits=traits,
                       audiences=audiences, **common)  # fmt: skip
    if message.type == "group":
        assert message.group_id is not None
        return Meaning(summary="group", links_click=True, group=(message.group_id, dict(message.traits)), **common)
    assert message.previous_id is not None and message.user_id is not None
    return Meaning(summary="alias", alias=(message.previous_id, message.user_id), **common)


def _track(message: Message, settings: SourceSettings, common: dict[str, Any]) -> Meaning:
    name = message.event or ""
    if name in AUDIENCE_TRACKS:
        return Meaning(summary=name, audiences=track_audience(message), **common)
    meaning: dict[str, Any] = {"links_click": True, **common}
    parts = []
    conversion = _conversion_intent(message, settings, name)
    if conversion is not None:
        meaning["conversion"] = conversion
        named = conversion.event_id is not None or conversion.event_name is not None
        parts.append("conversion" if not named else "conversion or event" if conversion.base_if_no_event else "event")
    if name in settings.refund_events:
        meaning.update(refunds_order=True, refund_order_id=order_id(message, settings))
        parts.append("order refund")
    activity = _activity(name, settings)
    if activity is not None:
        meaning["activity"] = activity
        if activity in ("payment", "refund"):
            meaning["activity_amount"] = amount(message, settings)
            meaning["activity_currency"] = currency(message)
        parts.append(activity)
    if name in settings.page_load_events:
        parts.append("page load")
    return Meaning(summary=f"track {name!r}: " + (", ".join(parts) or "no mapping"), **meaning)


def _activity(name: str, settings: SourceSettings) -> str | None:
    for kind, names in (
        ("signup", settings.signup_events),
        ("payment", settings.payment_events),
        ("refund", settings.customer_refund_events),
        ("churn", settings.churn_events),
    ):
        if name in names:
            return kind
    return None


def _conversion_intent(message: Message, settings: SourceSettings, name: str) -> ConversionIntent | None:
    details: dict[str, Any] = {
        "amount": amount(message, settings), "currency": currency(message),
        "order_id": order_id(message, settings), "advs": advs(message, settings),
    }  # fmt: skip
    if name in settings.event_mapping:
        target = settings.event_mapping[name]
        if target.lower() in BASE_EVENT_NAMES:
            return ConversionIntent(None, None, **details)
        return ConversionIntent(*_event_reference(target), **details)
    if name in settings.conversion_events or name in settings.install_events:
        if settings.event_type_id:
            return ConversionIntent(*_event_reference(settings.event_type_id), **details)
        if settings.match_offer_event_names and settings.impact_parameters:
            return ConversionIntent(None, name, base_if_no_event=True, **details)
        return ConversionIntent(None, None, **details)
    if settings.match_offer_event_names and name not in settings.refund_events:
        return ConversionIntent(None, name, skip_if_no_event=True, **details)
    return None


def _event_reference(target: str) -> tuple[int | None, str | None]:
    """An offer event named by a setting: its id (ASCII digits, at most 18: any id the database holds) or
    its name."""
    if target.isascii() and target.isdigit() and len(target) <= 18:
        return int(target), None
    return None, target


def click_reference(message: Message, settings: SourceSettings) -> str | None:
    """The click's transaction id: `properties.transaction_id`, else `context.referrer.id` of a configured
    referrer type, else a configured click parameter of the landing URL."""
    explicit = message.properties.get("transaction_id")
    if isinstance(explicit, str) and explicit.strip():
        return explicit.strip()[:64]
    referrer = message.context.get("referrer")
    if isinstance(referrer, dict) and referrer.get("type") in settings.referrer_types:
        found = referrer.get("id")
        if isinstance(found, str | int) and not isinstance(found, bool) and str(found).strip():
            return str(found).strip()[:64]
    page = message.context.get("page")
    urls = {"context.page.url": page.get("url") if isinstance(page, dict) else None,
            "properties.url": message.properties.get("url")}  # fmt: skip
    for where, url in urls.items():
        if isinstance(url, str) and (found := _url_parameter(url, settings.click_id_parameters, where)):
            return found
    return None


def _url_parameter(url: str, names: Sequence[str], where: str) -> str | None:
    if not names:
        return None
    try:
        query = parse_qs(urlsplit(url).query)
    except ValueError:  # e.g. an unclosed IPv6 host: `http://[::1?tl_tid=x`
        raise InvalidParameter(where, "is not a valid URL") from None
    for name in names:
        values = query.get(name)
        if values and values[0].strip():
            return values[0].strip()[:64]
    return None


def amount(message: Message, settings: SourceSettings) -> Decimal | None:
    """The sale amount: the first of the settings' amount fields present; impact: revenue only without products."""
    if settings.impact_parameters and isinstance(message.properties.get("products"), list):
        return _products_total(message.properties["products"], settings)
    for name in settings.amount_fields:
        value = message.properties.get(name)
        if value not in (None, ""):
            return money(value, f"properties.{name}")
    return None


def _products_total(products: list[Any], settings: SourceSettings) -> Decimal | None:
    price_field = settings.product_mapping.get("ItemPrice", IMPACT_PRODUCT_FIELDS["ItemPrice"])
    quantity_field = settings.product_mapping.get("ItemQuantity", IMPACT_PRODUCT_FIELDS["ItemQuantity"])
    total = Decimal(0)
    for index, product in enumerate(products):
        if not isinstance(product, dict) or product.get(price_field) in (None, ""):
            continue
        price = money(product[price_field], f"properties.products[{index}].{price_field}")
        quantity = money(product.get(quantity_field) or 1, f"properties.products[{index}].{quantity_field}")
        total += price * quantity
    return money(total, "properties.products") if products else None


def money(value: object, where: str) -> Decimal:
    """A non-negative amount from a number or a numeric string, rounded to the storage scale.

    A string has the grammar of every decimal given as text (ASCII digits with at most one `.`), with any
    number of places (Segment clients send what the shop computed; it is rounded here)."""
    if isinstance(value, str):
        value = parse_decimal(value, where, places=MAX_DECIMAL_TEXT)
    if isinstance(value, int | Decimal) and not isinstance(value, bool):
        try:
            value = Decimal(value).quantize(_QUANTUM, rounding=ROUND_HALF_UP)
        except ArithmeticError:
            raise InvalidParameter(where, f"{value!r} is not a number") from None
    return parse_money(value, where)


def currency(message: Message) -> str:
    raw = message.properties.get("currency")
    if raw in (None, ""):
        return DEFAULT_CURRENCY
    return parse_currency(raw.upper() if isinstance(raw, str) else raw, "properties.currency")


def order_id(message: Message, settings: SourceSettings) -> str | None:
    for name in settings.order_id_fields:
        value = message.properties.get(name)
        if isinstance(value, str | int) and not isinstance(value, bool) and str(value).strip():
            return str(value).strip()[:255]
    if settings.impact_parameters:
        return message.message_id
    return None


def advs(
    message: Message, settings: SourceSettings
) -> tuple[str | None, str | None, str | None, str | None, str | None]:
    """adv1..adv5: `properties.advN` pass through unless the parameter mapping names another path."""
    values = []
    for name in ADV_FIELDS:
        path = settings.parameter_mapping.get(name, f"properties.{name}")
        values.append(text_at(message, path))
    return values[0], values[1], values[2], values[3], values[4]


def impact_parameters(message: Message, settings: SourceSettings) -> dict[str, str]:
    """impact.com's parameters: the default table, overridden by the custom parameter mapping."""
    chains: dict[str, tuple[str, ...]] = dict(IMPACT_PARAMETERS)
    chains.update({name: (path,) for name, path in settings.parameter_mapping.items() if name not in ADV_FIELDS})
    if isinstance(message.properties.get("products"), list):
        chains.pop("OrderSubTotalPostDiscount", None)
    if message.type != "track":
        for name in ("OrderId", "OrderSubTotalPostDiscount", "EventTypeCode"):
            chains.pop(name, None)
    found: dict[str, str] = {}
    for name, chain in chains.items():
        value = next((v for path in chain if (v := text_at(message, path)) is not None), None)
        if value is not None:
            found[name] = value
    if "ClickId" not in found and (reference := click_reference(message, settings)):
        found["ClickId"] = reference
    if "CustomerEmail" in found:
        found["CustomerEmail"] = hashlib.sha1(found["CustomerEmail"].encode()).hexdigest()  # impact.com wants SHA1 hex
    return found


def product_items(message: Message, settings: SourceSettings) -> list[dict[str, str]]:
    """Each product of `properties.products[]`, named by impact's Item* names under the impact preset."""
    products = message.properties.get("products")
    if not isinstance(products, list):
        return []
    if settings.impact_parameters:
        mapping = {**IMPACT_PRODUCT_FIELDS, **settings.product_mapping}
    else:
        mapping = {name: name for name in PRODUCT_FIELDS} | dict(settings.product_mapping)
    items = []
    for product in products:
        if isinstance(product, dict):
            item = {name: _text(product.get(source)) for name, source in mapping.items()}
            items.append({k: v for k, v in item.items() if v is not None})
    return items


def split_audiences(message: Message) -> tuple[dict[str, Any], dict[str, bool]]:
    """An identify's traits, and the audience memberships among them (snake_case names with true/false)."""
    personas = message.context.get("personas")
    computed = (
        personas.get("computation_key")
        if isinstance(personas, dict) and personas.get("computation_class") == "audience"
        else None
    )
    traits: dict[str, Any] = {}
    audiences: dict[str, bool] = {}
    for name, value in message.traits.items():
        if isinstance(value, bool) and (name == computed or (computed is None and _SNAKE.match(name))):
            audiences[name] = value
        else:
            traits[name] = value
    return traits, audiences


def track_audience(message: Message) -> dict[str, bool]:
    """`Audience Entered` / `Audience Exited` with `properties.audience_key`."""
    key = message.properties.get("audience_key")
    if not isinstance(key, str) or not key.strip():
        raise InvalidParameter("properties.audience_key", "is required for an audience track")
    value = message.properties.get(key)
    member = value if isinstance(value, bool) else AUDIENCE_TRACKS[message.event or ""]
    return {key.strip(): member}


def text_at(message: Message, path: str) -> str | None:
    """The value at a dotted path of the message (`properties.x`, `context.traits.email`, `userId`) as text."""
    if path == "timestamp":
        return message.timestamp.isoformat()
    if path == "messageId":
        return message.message_id
    head, _, rest = path.partition(".")
    roots: dict[str, Any] = {"properties": message.properties, "context": message.context, "traits": message.traits}
    node: Any = roots[head] if head in roots else message.raw.get(head)
    for part in rest.split(".") if rest else ():
        node = node.get(part) if isinstance(node, dict) else None
    return _text(node)


def _text(value: object) -> str | None:
    if value is None or isinstance(value, dict | list):
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    text = str(value).strip()
    return text[:255] or None
