"""What one Segment message means under a source's settings: the click it names, the conversion or event
it is, a refund, customer activity (signup, payment, refund, churn, visit), traits, audiences, group, alias.

`map_message` decides; the service applies the result inside the message's transaction.

The click (`find_click`) is looked for in the preset's places, in order, and each place that gave none
says why (`context.referrer.id: is missing`), so that a message with no click is recorded with the field
that was missing or bad. A preset that requires the click in `context.referrer` (Everflow) refuses a
conversion without it, naming the field.

impact.com (`impact_parameters`): the parameter view is computed from the seed's tables (track calls, and
page loads: `page`, `screen`, `identify`), a custom parameter mapping tried before each default path. The
same values drive what is recorded: `ClickId` is the click looked for first, `OrderId` the order id,
`OrderSubTotalPostDiscount` (only without a products array) or the products' `ItemPrice{i}` times
`ItemQuantity{i}` the amount, `CurrencyCode` the currency. Actions, installs and page loads are each their
own payable action, recording the offer event the settings name for them (see `_conversion_intent`).

Audiences come only from Engage's own markers (`context.personas` with `computation_class: audience` names
its trait by `computation_key`; `Audience Entered` / `Audience Exited` tracks) or from the source's declared
`audiences`, never from any boolean trait. A message Engage computed is not user behaviour: it links no
click, is no page load and no conversion.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, Literal
from urllib.parse import parse_qs, urlsplit

from tracklane.domain.errors import InvalidParameter
from tracklane.domain.money import MAX_DECIMAL_TEXT, STORAGE_PLACES, parse_currency, parse_decimal, parse_money
from tracklane.domain.segment.messages import Message
from tracklane.domain.segment.settings import (
    ADV_FIELDS,
    IMPACT_PAGE_PARAMETERS,
    IMPACT_PARAMETERS,
    IMPACT_PRODUCT_FIELDS,
    SourceSettings,
    is_base,
)

DEFAULT_CURRENCY = "USD"
AUDIENCE_TRACKS = {"Audience Entered": True, "Audience Exited": False}
PRODUCT_FIELDS = ("product_id", "sku", "name", "brand", "category", "variant", "price", "quantity", "coupon")
INSTALL_EVENT_CODE = "INSTALL"
#: impact.com's rule for a CustomerId: at least this many characters, this many distinct, no whitespace.
CUSTOMER_ID_LENGTH, CUSTOMER_ID_DISTINCT = 7, 3
#: impact.com parameters that come from the settings or from the click lookup, not from a default path.
_FROM_SETTINGS = ("CampaignId", "EventTypeId", "ImpactAppId", "EventCode", "ClickId")
_QUANTUM = Decimal(1).scaleb(-STORAGE_PLACES)
_MAX_REFERENCE = 64

#: What a conversion intent does when the offer has no event named `event_name`: `refuse` (unknown_event),
#: `base` (record the base conversion), `skip` (nothing, silently), `unpaid` (nothing; the detail names the
#: setting that would name another event).
IfNoEvent = Literal["refuse", "base", "skip", "unpaid"]


@dataclass(frozen=True, slots=True)
class ConversionIntent:
    """A base conversion (no event named) or an event of the click's offer, with the sale's details.

    `action` is what the message is (a conversion, an impact.com action, install or page load, an event);
    `setting` names the setting that chooses the offer event of an `unpaid` intent."""

    event_id: int | None
    event_name: str | None
    amount: Decimal | None
    currency: str | None
    order_id: str | None
    advs: tuple[str | None, str | None, str | None, str | None, str | None]
    action: str = "conversion"
    if_no_event: IfNoEvent = "refuse"
    setting: str | None = None

    def describe(self) -> str:
        """What the intent records, for the message's summary."""
        if self.event_id is not None:
            target = f"offer event #{self.event_id}"
        elif self.event_name is None:
            target = "base conversion"
        elif self.if_no_event == "base":
            target = f"offer event {self.event_name!r}, else the base conversion"
        elif self.if_no_event == "refuse":
            target = f"offer event {self.event_name!r}"
        else:
            where = f" (or the one settings.{self.setting} names)" if self.setting else ""
            target = f"offer event {self.event_name!r} if the offer has one{where}"
        return target if self.action in ("conversion", "event") else f"{self.action} → {target}"


@dataclass(frozen=True, slots=True)
class ClickLookup:
    """The click reference a message carries, where it was read, and why each place looked at gave none."""

    reference: str | None = None
    path: str | None = None
    missing: tuple[tuple[str, str], ...] = ()

    def explained(self) -> tuple[str, ...]:
        return tuple(f"{path}: {reason}" for path, reason in self.missing)


@dataclass(frozen=True, slots=True)
class Meaning:
    """Everything a message asks for; empty parts mean nothing to do."""

    summary: str
    click_reference: str | None = None
    click_path: str | None = None  # where the click reference was read
    click_missing: tuple[str, ...] = ()  # each place that gave no click, and why ("context.referrer.id: ...")
    strict_click: bool = False  # the click is the one the message names, never the customer's
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
    engage = engage_computation(message)
    lookup = find_click(message, settings)
    notes: list[str] = []
    parameters = impact_parameters(message, settings, lookup, notes) if settings.impact_parameters else {}
    items = () if settings.impact_parameters else tuple(product_items(message, settings))
    common: dict[str, Any] = {
        "click_reference": lookup.reference, "click_path": lookup.path, "click_missing": lookup.explained(),
        "strict_click": settings.require_referrer, "parameters": parameters, "items": items,
    }  # fmt: skip
    meaning = _meaning(message, settings, common, engage)
    if settings.require_referrer and meaning.conversion is not None and lookup.reference is None:
        _refuse_without_referrer(lookup, settings)
    if notes:
        meaning = replace(meaning, summary="; ".join((meaning.summary, *notes)))
    return meaning


def _meaning(message: Message, settings: SourceSettings, common: dict[str, Any], engage: bool) -> Meaning:
    if message.type == "track":
        return _track(message, settings, common, engage)
    if message.type in ("page", "screen"):
        enabled = settings.enable_page_events if message.type == "page" else settings.enable_screen_events
        return _page_load(message, settings, common, f"{message.type} visit", enabled and not engage, visit=True)
    if message.type == "identify":
        traits, audiences = split_audiences(message, settings)
        loads = settings.enable_identify_events and not engage
        return _page_load(message, settings, common, "identify", loads, traits=traits, audiences=audiences)
    if message.type == "group":
        assert message.group_id is not None
        return Meaning(summary="group", links_click=True, group=(message.group_id, dict(message.traits)), **common)
    assert message.previous_id is not None and message.user_id is not None
    return Meaning(summary="alias", alias=(message.previous_id, message.user_id), **common)


def _page_load(
    message: Message, settings: SourceSettings, common: dict[str, Any], summary: str, loads: bool, **more: Any
) -> Meaning:
    """A page, screen or identify: a page load (links the click) when enabled; paid when
    `page_load_event` names the offer event page loads record."""
    conversion = None
    if loads and settings.page_load_event:
        conversion = _intent(settings.page_load_event, _sale(message, settings), "page load")
        summary += f": {conversion.describe()}"
    elif loads and settings.impact_parameters:
        summary += ": page load"
    return Meaning(summary=summary, links_click=loads, conversion=conversion, **more, **common)


def _refuse_without_referrer(lookup: ClickLookup, settings: SourceSettings) -> None:
    (path, reason), *rest = lookup.missing or (("context.referrer", "is missing"),)
    also = "".join(f"; {p}: {r}" for p, r in rest)
    types = " or ".join(settings.referrer_types)
    raise InvalidParameter(path, f"{reason}{also} (the {settings.preset} preset attributes a conversion only by "
                                 f"context.referrer.id with context.referrer.type {types})")  # fmt: skip


def _track(message: Message, settings: SourceSettings, common: dict[str, Any], engage: bool) -> Meaning:
    name = message.event or ""
    if name in AUDIENCE_TRACKS:
        return Meaning(summary=name, audiences=track_audience(message), **common)
    if engage:
        return Meaning(summary=f"track {name!r}: computed by Engage, not user behaviour", **common)
    meaning: dict[str, Any] = {"links_click": True, **common}
    parts = []
    conversion = _conversion_intent(message, settings, name)
    if conversion is not None:
        meaning["conversion"] = conversion
        parts.append(conversion.describe())
    if name in settings.refund_events:
        meaning.update(refunds_order=True, refund_order_id=order_id(message, settings))
        parts.append("order refund")
    activity = _activity(name, settings)
    if activity is not None:
        meaning["activity"] = activity
        if activity in ("payment", "refund"):
            meaning["activity_amount"] = amount(message, settings)
            meaning["activity_currency"] = currency(message, settings)
        parts.append(activity)
    if name in settings.page_load_events and (conversion is None or conversion.action != "page load"):
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


def _sale(message: Message, settings: SourceSettings) -> dict[str, Any]:
    """The amount, currency (None when neither an amount nor a currency is given), order id and adv1..adv5."""
    money_amount = amount(message, settings)
    given = _given_currency(message, settings)
    return {
        "amount": money_amount, "currency": given or (DEFAULT_CURRENCY if money_amount is not None else None),
        "order_id": order_id(message, settings), "advs": advs(message, settings),
    }  # fmt: skip


def _conversion_intent(message: Message, settings: SourceSettings, name: str) -> ConversionIntent | None:
    """The payable action a track is, in this order: the event `event_mapping` names for it; an install
    (`install_events`: the `install_event`, else the offer event named like the track, never the base
    conversion); an action (`conversion_events`: the `event_type_id`, else under impact.com the offer event
    named like the track or the base conversion, else the base conversion); a page load (`page_load_events`:
    the `page_load_event`, else the offer event named like the track if there is one); any other track, the
    offer event named like it if there is one (when `match_offer_event_names`)."""

    def sale() -> dict[str, Any]:
        return _sale(message, settings)  # read only for a track that is a conversion: its money is checked then

    if name in settings.event_mapping:
        return _intent(settings.event_mapping[name], sale(), "mapped")
    if name in settings.install_events:
        if settings.install_event:
            return _intent(settings.install_event, sale(), "install")
        return ConversionIntent(None, name, **sale(), action="install", if_no_event="unpaid", setting="install_event")
    if name in settings.conversion_events:
        action = "action" if settings.impact_parameters else "conversion"
        if settings.event_type_id:
            return _intent(settings.event_type_id, sale(), action)
        if settings.match_offer_event_names and settings.impact_parameters:
            return ConversionIntent(None, name, **sale(), action=action, if_no_event="base")
        return ConversionIntent(None, None, **sale(), action=action)
    if name in settings.page_load_events:
        if settings.page_load_event:
            return _intent(settings.page_load_event, sale(), "page load")
        if settings.match_offer_event_names:
            return ConversionIntent(None, name, **sale(), action="page load", if_no_event="skip",
                                    setting="page_load_event")  # fmt: skip
        return None
    if settings.match_offer_event_names and name not in settings.refund_events:
        return ConversionIntent(None, name, **sale(), action="event", if_no_event="skip")
    return None


def _intent(target: str, sale: dict[str, Any], action: str) -> ConversionIntent:
    """The conversion a setting names: `base`, else an offer event by id or exact name (refused if the offer
    has none)."""
    if is_base(target):
        return ConversionIntent(None, None, **sale, action=action)
    return ConversionIntent(*_event_reference(target), **sale, action=action)


def _event_reference(target: str) -> tuple[int | None, str | None]:
    """An offer event named by a setting: its id (ASCII digits, at most 18: any id the database holds) or
    its name."""
    if target.isascii() and target.isdigit() and len(target) <= 18:
        return int(target), None
    return None, target


def engage_computation(message: Message) -> bool:
    """Whether Engage computed the message (it carries `context.personas`)."""
    personas = message.context.get("personas")
    return isinstance(personas, dict) and bool(personas.get("computation_class") or personas.get("computation_key"))


def find_click(message: Message, settings: SourceSettings) -> ClickLookup:
    """The click's transaction id and where it was read. Places, in order: under a `require_referrer`
    preset only `context.referrer.id` of a configured referrer type; under impact.com the custom ClickId
    path, `context.referrer.id` (type `impactRadius`), `properties.transaction_id`, the click parameter of
    the landing URL; otherwise `properties.transaction_id`, the referrer, the landing URL's parameter."""
    missing: list[tuple[str, str]] = []
    places: tuple[str, ...] = ("property", "referrer", "url")
    if settings.require_referrer:
        places = ("referrer",)
    elif settings.impact_parameters:
        places = ("click_id", "referrer", "property", "url")
    for place in places:
        found: tuple[str, str] | None = None
        if place == "click_id" and (custom := settings.parameter_mapping.get("ClickId")):
            found = _reference_at(message, custom, missing, " (ClickId)")
        elif place == "referrer":
            found = _referrer_reference(message, settings, missing)
        elif place == "property":
            found = _reference_at(message, "properties.transaction_id", missing)
        elif place == "url":
            found = _url_reference(message, settings, missing)
        if found is not None:
            return ClickLookup(found[1], found[0], tuple(missing))
    return ClickLookup(missing=tuple(missing))


def _reference_at(
    message: Message, path: str, missing: list[tuple[str, str]], label: str = ""
) -> tuple[str, str] | None:
    value = value_at(message, path)
    if value is None or value == "":
        missing.append((path, f"is missing{label}"))
        return None
    if isinstance(value, bool) or not isinstance(value, str | int):
        missing.append((path, f"must be a string{label}"))
        return None
    text = str(value).strip()
    if not text:
        missing.append((path, f"is empty{label}"))
        return None
    return path, text[:_MAX_REFERENCE]


def _referrer_reference(
    message: Message, settings: SourceSettings, missing: list[tuple[str, str]]
) -> tuple[str, str] | None:
    types = " or ".join(settings.referrer_types) or "none configured"
    referrer = message.context.get("referrer")
    if referrer is None:
        missing.append(("context.referrer", f"is missing (its id, with type {types})"))
        return None
    if not isinstance(referrer, dict):
        missing.append(("context.referrer", "must be an object"))
        return None
    kind = referrer.get("type")
    typed = False
    if kind is None or kind == "":
        missing.append(("context.referrer.type", f"is missing (must be {types})"))
    elif isinstance(kind, str) and kind in settings.referrer_types:
        typed = True
    else:
        shown = repr(kind[:40]) if isinstance(kind, str) else "not a string"
        missing.append(("context.referrer.type", f"is {shown}, not {types}"))
    found = _reference_at(message, "context.referrer.id", missing)
    return found if typed else None


def _url_reference(
    message: Message, settings: SourceSettings, missing: list[tuple[str, str]]
) -> tuple[str, str] | None:
    names = settings.click_id_parameters
    if not names:
        return None
    page = message.context.get("page")
    urls = {"context.page.url": page.get("url") if isinstance(page, dict) else None,
            "properties.url": message.properties.get("url")}  # fmt: skip
    for where, url in urls.items():
        if isinstance(url, str) and (found := _url_parameter(url, names, where)):
            return f"{' or '.join(names)} of {where}", found
    carrying = [where for where, url in urls.items() if isinstance(url, str)]
    if carrying:
        missing.append((" and ".join(carrying), f"has no {' or '.join(names)} parameter"))
    else:
        missing.append(("context.page.url", f"is missing (no {' or '.join(names)} to read)"))
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
            return values[0].strip()[:_MAX_REFERENCE]
    return None


def amount(message: Message, settings: SourceSettings) -> Decimal | None:
    """The sale amount: the first of the settings' amount fields present. impact.com: the products'
    price times quantity when there is a products array, else `OrderSubTotalPostDiscount`."""
    if settings.impact_parameters:
        if isinstance(message.properties.get("products"), list):
            return _products_total(message.properties["products"], settings)
        found = _first_value(message, _chain(settings, "OrderSubTotalPostDiscount", IMPACT_PARAMETERS))
        return money(found[1], found[0]) if found is not None else None
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


def currency(message: Message, settings: SourceSettings | None = None) -> str:
    """The currency given (impact.com: `CurrencyCode`), else USD."""
    return _given_currency(message, settings) or DEFAULT_CURRENCY


def _given_currency(message: Message, settings: SourceSettings | None) -> str | None:
    if settings is not None and settings.impact_parameters:
        found = _first_value(message, _chain(settings, "CurrencyCode", IMPACT_PARAMETERS))
        where, raw = found if found is not None else ("properties.currency", None)
    else:
        where, raw = "properties.currency", message.properties.get("currency")
    if raw in (None, ""):
        return None
    return parse_currency(raw.upper() if isinstance(raw, str) else raw, where)


def order_id(message: Message, settings: SourceSettings) -> str | None:
    """The order id: the first of the settings' order id fields; impact.com: `OrderId`."""
    if settings.impact_parameters:
        found = _first_text(message, _chain(settings, "OrderId", IMPACT_PARAMETERS))
        return found[1] if found is not None else message.message_id
    for name in settings.order_id_fields:
        value = message.properties.get(name)
        if isinstance(value, str | int) and not isinstance(value, bool) and str(value).strip():
            return str(value).strip()[:255]
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


def _chain(settings: SourceSettings, name: str, table: Mapping[str, tuple[str, ...]]) -> tuple[str, ...]:
    """Where a parameter is read: its custom path first (custom parameter mapping), then the default ones."""
    custom = settings.parameter_mapping.get(name)
    return ((custom,) if custom else ()) + tuple(p for p in table.get(name, ()) if p != custom)


def impact_parameters(
    message: Message, settings: SourceSettings, lookup: ClickLookup, notes: list[str] | None = None
) -> dict[str, str]:
    """impact.com's parameters for this message: the track table for tracks, the page table for page, screen
    and identify, each read from the custom parameter mapping first; `notes` hears what was left out."""
    track = message.type == "track"
    table = IMPACT_PARAMETERS if track else IMPACT_PAGE_PARAMETERS
    custom = [n for n in settings.parameter_mapping if n not in ADV_FIELDS and n not in _FROM_SETTINGS
              and n not in IMPACT_PARAMETERS and n not in IMPACT_PAGE_PARAMETERS]  # fmt: skip
    products = message.properties.get("products")
    found: dict[str, str] = {}
    if lookup.path is not None and lookup.path in (settings.parameter_mapping.get("ClickId"), "context.referrer.id"):
        assert lookup.reference is not None
        found["ClickId"] = lookup.reference  # the click the message is attributed by
    for name in (*table, *custom):
        if name == "OrderSubTotalPostDiscount" and isinstance(products, list):
            continue  # only passed when the products array is not defined
        hit = _first_text(message, _chain(settings, name, table))
        if hit is not None:
            found[name] = hit[1]
    found.update(_settings_parameters(message, settings, track))
    if track and isinstance(products, list):
        found.update(_item_parameters(products, settings))
    if "CustomerId" in found and (why := customer_id_problem(found["CustomerId"])) is not None:
        if notes is not None:
            notes.append(f"CustomerId not sent: {found['CustomerId']!r} {why}")
        del found["CustomerId"]
    if "CustomerEmail" in found:
        found["CustomerEmail"] = hashlib.sha1(found["CustomerEmail"].encode()).hexdigest()  # impact.com wants SHA1 hex
    return found


def _settings_parameters(message: Message, settings: SourceSettings, track: bool) -> dict[str, str]:
    """CampaignId (both tables), EventCode and EventTypeId (tracks), ImpactAppId (page loads): from a custom
    parameter mapping, else from the settings."""
    found: dict[str, str] = {}
    given = {"CampaignId": settings.campaign_id}
    if track:
        given["EventTypeId"] = settings.event_type_id
        if message.event in settings.install_events:
            found["EventCode"] = INSTALL_EVENT_CODE
    for name, setting in given.items():
        custom = _first_text(message, _chain(settings, name, {}))
        if custom is not None or setting:
            found[name] = custom[1] if custom is not None else str(setting)
    if not track and (app_id := _impact_app_id(message, settings)) is not None:
        found["ImpactAppId"] = app_id
    return found


def customer_id_problem(value: str) -> str | None:
    """Why a CustomerId is not one impact.com takes (7 or more characters, 3 distinct, no whitespace)."""
    if any(character.isspace() for character in value):
        return "contains whitespace"
    if len(value) < CUSTOMER_ID_LENGTH:
        return f"has {len(value)} characters; at least {CUSTOMER_ID_LENGTH} are needed"
    if len(set(value)) < CUSTOMER_ID_DISTINCT:
        return f"has fewer than {CUSTOMER_ID_DISTINCT} distinct characters"
    return None


def _item_parameters(products: list[Any], settings: SourceSettings) -> dict[str, str]:
    """ItemSku1, ItemName1, ... ItemSkuN: each product of the array, numbered from 1."""
    mapping = {**IMPACT_PRODUCT_FIELDS, **settings.product_mapping}
    found: dict[str, str] = {}
    for index, product in enumerate(products, start=1):
        if not isinstance(product, dict):
            continue
        for name, source in mapping.items():
            if (value := _text(product.get(source))) is not None:
                found[f"{name}{index}"] = value
    return found


def _impact_app_id(message: Message, settings: SourceSettings) -> str | None:
    """`ImpactAppId`: the iOS or Android App ID setting of the message's platform, else `context.app.namespace`."""
    custom = _first_text(message, _chain(settings, "ImpactAppId", {}))
    if custom is not None:
        return custom[1]
    platform = " ".join(filter(None, (text_at(message, "context.os.name"), text_at(message, "context.device.type"))))
    platform = platform.lower()
    if settings.ios_app_id and any(name in platform for name in ("ios", "ipados", "iphone", "ipad")):
        return settings.ios_app_id
    if settings.android_app_id and "android" in platform:
        return settings.android_app_id
    return text_at(message, "context.app.namespace")


def product_items(message: Message, settings: SourceSettings) -> list[dict[str, str]]:
    """Each product of `properties.products[]`, with the product mapping applied (impact.com's are parameters)."""
    products = message.properties.get("products")
    if not isinstance(products, list):
        return []
    mapping = {name: name for name in PRODUCT_FIELDS} | dict(settings.product_mapping)
    items = []
    for product in products:
        if isinstance(product, dict):
            item = {name: _text(product.get(source)) for name, source in mapping.items()}
            items.append({k: v for k, v in item.items() if v is not None})
    return items


def split_audiences(message: Message, settings: SourceSettings) -> tuple[dict[str, Any], dict[str, bool]]:
    """An identify's traits, and the audience memberships among them: the trait Engage names by
    `context.personas.computation_key` (with `computation_class: audience`) and the source's declared
    `audiences`, each with `true`/`false`. Any other trait stays a trait, booleans included."""
    personas = message.context.get("personas")
    computed = (
        personas.get("computation_key")
        if isinstance(personas, dict) and personas.get("computation_class") == "audience"
        else None
    )
    traits: dict[str, Any] = {}
    audiences: dict[str, bool] = {}
    for name, value in message.traits.items():
        if isinstance(value, bool) and (name == computed or name in settings.audiences):
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


def value_at(message: Message, path: str) -> Any:
    """The value at a dotted path of the message (`properties.x`, `context.traits.email`, `userId`)."""
    if path == "timestamp":
        return message.timestamp.isoformat()
    if path == "messageId":
        return message.message_id
    head, _, rest = path.partition(".")
    roots: dict[str, Any] = {"properties": message.properties, "context": message.context, "traits": message.traits}
    node: Any = roots[head] if head in roots else message.raw.get(head)
    for part in rest.split(".") if rest else ():
        node = node.get(part) if isinstance(node, dict) else None
    return node


def text_at(message: Message, path: str) -> str | None:
    """The value at a dotted path of the message as text (None for nothing, an object or a list)."""
    return _text(value_at(message, path))


def _first_text(message: Message, paths: Sequence[str]) -> tuple[str, str] | None:
    """(path, text) of the first path with a value that reads as text."""
    for path in paths:
        if (value := text_at(message, path)) is not None:
            return path, value
    return None


def _first_value(message: Message, paths: Sequence[str]) -> tuple[str, Any] | None:
    """(path, value) of the first path with any value (an object too: it is then refused, by its path)."""
    for path in paths:
        value = value_at(message, path)
        if value is not None and value != "":
            return path, value
    return None


def _text(value: object) -> str | None:
    if value is None or isinstance(value, dict | list):
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    text = str(value).strip()
    return text[:255] or None
