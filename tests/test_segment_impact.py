"""impact.com's Segment destination page, walked top to bottom through a real server: its settings table,
track calls (actions, installs, page loads), the track parameter table row by row, page, screen and
identify calls with the page parameter table row by row, custom parameter mapping (which drives the click,
the order id and the money, not only the view), custom mapping for products, and attribution by click id
or by the same person's earlier page. The app journey goes through the real segment-analytics-python."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests import factories
from tests.segment_support import conversions, customers, messages, source
from tests.servers import RunningServer

BROWSER = {"User-Agent": "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0"}
IPHONE = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_2 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile"


@pytest.fixture
def browser(server: RunningServer) -> Iterator[httpx.Client]:
    """A visitor's browser following tracking links (a real browser User-Agent: the click is no bot's)."""
    with httpx.Client(base_url=server.base_url, headers=BROWSER, timeout=30, follow_redirects=False) as client:
        yield client


def send(web: httpx.Client, src: dict[str, Any], *batch: dict[str, Any]) -> httpx.Response:
    response = web.post("/v1/batch", json={"batch": list(batch), "writeKey": src["write_key"]})
    assert (response.status_code, response.json()) == (200, {"success": True})
    return response


def stored(api: httpx.Client, src: dict[str, Any], message_id: str) -> dict[str, Any]:
    [message] = messages(api, src["id"], message_id=message_id)
    return message


def parameters(api: httpx.Client, src: dict[str, Any], message_id: str) -> dict[str, str]:
    found: dict[str, str] = stored(api, src, message_id)["mapped"]["parameters"]
    return found


# -- Destination/Connection settings reference ---------------------------------------------------------------


def test_the_settings_table_defaults_and_validation(api: httpx.Client) -> None:
    adv = factories.advertiser(api)
    plain = source(api, adv["id"], "impact")["effective_settings"]
    assert (plain["conversion_events"], plain["install_events"], plain["page_load_events"]) == (
        ["Order Completed"],  # Action Event Names: defaults to Order Completed
        ["Application Installed"],  # Install Event Names: defaults to Application Installed
        ["Application Opened"],  # Page Load Event Names: defaults to Application Opened
    )
    assert (plain["enable_page_events"], plain["enable_screen_events"], plain["enable_identify_events"]) == (
        True,
        False,
        False,
    )
    assert (plain["campaign_id"], plain["event_type_id"], plain["ios_app_id"], plain["android_app_id"]) == (
        None,
        None,
        None,
        None,
    )
    given = {
        "campaign_id": 12345, "event_type_id": "27113", "ios_app_id": "1234567", "android_app_id": "com.shop.app",
        "enable_screen_events": True, "enable_identify_events": True, "install_event": "App Install",
        "page_load_event": "base", "conversion_events": ["Order Completed", "User Registered"],
        "parameter_mapping": {"CustomerStatus": "properties.customer_status"},
        "product_mapping": {"ItemPrice": "product_revenue"},
    }  # fmt: skip
    shown = source(api, adv["id"], "impact", **given)["effective_settings"]
    assert {name: shown[name] for name in given} == {**given, "campaign_id": "12345"}
    for name, value in (
        ("campaign_id", "IR-12"),
        ("campaign_id", True),
        ("ios_app_id", "my app"),
        ("android_app_id", ["x"]),
        ("event_type_id", {"id": 1}),
        ("event_type_id", "x" * 201),
        ("install_event", 0),
        ("page_load_event", "line\nbreak"),
        ("audiences", [""]),
    ):
        body = {"name": "x", "advertiser_id": adv["id"], "preset": "impact", "settings": {name: value}}
        refused = api.post("/api/v1/sources", json=body)
        assert (refused.status_code, refused.json()["field"]) == (400, f"settings.{name}"), (name, value)


# -- Segment Spec: Track calls -----------------------------------------------------------------------------


def full_order(tid: str) -> dict[str, Any]:
    """An `Order Completed` carrying every field of the track parameter table."""
    return {
        "type": "track", "event": "Order Completed", "userId": "customer-4711", "anonymousId": "anon-4711",
        "messageId": "track-full", "timestamp": "2026-01-05T10:00:00Z",
        "context": {
            "device": {"adTrackingEnabled": True, "advertisingId": "IDFA-1", "id": "IDFV-1", "manufacturer": "Apple",
                       "model": "iPhone15,2", "type": "ios"},
            "app": {"name": "Shop", "namespace": "com.example.shop", "version": "3.2.1"},
            "referrer": {"type": "impactRadius", "id": tid, "url": "https://partner.example/post"},
            "traits": {"email": "ann@example.com", "status": "returning"},
            "network": {"carrier": "T-Mobile"}, "locale": "en-US", "os": {"name": "iOS", "version": "17.2"},
            "ip": "203.0.113.9", "location": {"latitude": 52.52, "longitude": 13.405},
            "page": {"url": "https://shop.example/checkout", "referrer": "https://shop.example/cart"},
            "userAgent": IPHONE,
        },
        "properties": {
            "currency": "USD", "email": "other@example.com", "advertisingId": "GAID-1", "discount": 2,
            "orderId": "ORD-1", "coupon": "SPRING", "shipping": "4.50", "revenue": "25.00", "tax": "1.75",
        },
    }  # fmt: skip


#: The seed's track parameter table, row by row: (impact.com parameter, Segment property, value for `full_order`).
TRACK_TABLE = [
    ("AppleAdTrack", "context.device.adTrackingEnabled", "true"),
    ("AppleIfa", "context.device.advertisingId", "IDFA-1"),
    ("AppleIfv", "context.device.id", "IDFV-1"),
    ("AppName", "context.app.name", "Shop"),
    ("AppPackage", "context.app.namespace", "com.example.shop"),
    ("AppVer", "context.app.version", "3.2.1"),
    ("CampaignId", "settings.campaignId", "12345"),
    ("ClickId", "context.referrer.id", "<tid>"),  # the referrer's type is impactRadius
    ("CurrencyCode", "properties.currency", "USD"),
    ("CustomerEmail", "context.traits.email || properties.email", hashlib.sha1(b"ann@example.com").hexdigest()),
    ("CustomerId", "userId", "customer-4711"),
    ("CustomerStatus", "context.traits.status", "returning"),
    ("CustomProfileId", "anonymousId", "anon-4711"),
    ("DeviceCarrier", "context.network.carrier", "T-Mobile"),
    ("DeviceLocale", "context.locale", "en-US"),
    ("DeviceMfr", "context.device.manufacturer", "Apple"),
    ("DeviceModel", "context.device.model", "iPhone15,2"),
    ("DeviceOs", "context.device.type || context.os.name", "ios"),
    ("DeviceOsVer", "context.os.version", "17.2"),
    # EventCode (INSTALL) is an install's only: see the install below
    ("EventDate", "timestamp", "2026-01-05T10:00:00+00:00"),
    ("EventTypeCode", "event", "Order Completed"),
    ("EventTypeId", "settings.eventTypeId", "<event id>"),
    ("GoogAId", "properties.advertisingId", "GAID-1"),
    ("IpAddress", "context.ip", "203.0.113.9"),
    # Item{Brand,Category,Name,Price,PromoCode,Quantity,Sku}{i}: the products order below
    ("Latitude", "context.location.latitude", "52.52"),
    ("Longitude", "context.location.longitude", "13.405"),
    ("OrderDiscount", "properties.discount", "2"),
    ("OrderId", "properties.orderId || ... || messageId", "ORD-1"),
    ("OrderPromoCode", "properties.coupon", "SPRING"),
    ("OrderShipping", "properties.shipping", "4.50"),
    ("OrderSubTotalPostDiscount", "properties.revenue", "25.00"),  # there is no products array
    ("OrderTax", "properties.tax", "1.75"),
    ("ReferringUrl", "context.referrer.url || context.page.referrer", "https://partner.example/post"),
    ("PageUrl", "context.page.url || properties.url || ...", "https://shop.example/checkout"),
    ("UserAgent", "context.userAgent", IPHONE),
]


def test_the_track_parameter_table_row_by_row(api: httpx.Client, web: httpx.Client, browser: httpx.Client) -> None:
    adv, offer, partner = factories.program(api)  # a 10.00 CPA
    sale = factories.event(api, offer["id"], name="Sale", revenue={"type": "cps", "percent": "20"})
    tid = factories.click(browser, offer["id"], partner["id"])
    # Event Type ID: the offer event every action records; each action type may name its own (event_mapping).
    src = source(api, adv["id"], "impact", campaign_id="12345", event_type_id=str(sale["id"]),
                 conversion_events=["Order Completed", "User Registered"],
                 event_mapping={"User Registered": "base"})  # fmt: skip
    referrer = {"referrer": {"type": "impactRadius", "id": tid}}
    registered = {"type": "track", "event": "User Registered", "anonymousId": "anon-4711", "context": referrer,
                  "messageId": "registered"}  # fmt: skip
    send(web, src, registered, full_order(tid))
    expected = {
        name: value.replace("<tid>", tid).replace("<event id>", str(sale["id"])) for name, _, value in TRACK_TABLE
    }
    assert parameters(api, src, "track-full") == expected
    base, order = sorted(conversions(api, transaction_id=tid), key=lambda c: c["id"])
    assert (base["event_id"], base["revenue"]) == (None, "10.00")  # the User Registered action: the offer's CPA
    # The Order Completed action: offer event "Sale" (the Event Type ID), its money from OrderSubTotalPostDiscount.
    assert (order["event_id"], order["amount"], order["order_id"], order["revenue"]) == (sale["id"], "25.00",
                                                                                         "ORD-1", "5.00")  # fmt: skip
    assert stored(api, src, "track-full")["conversion_id"] == order["id"]


@pytest.mark.parametrize(("row", "changes", "expected"), [
    ("DeviceOs", {"context": {"os": {"name": "Android"}}}, "Android"),
    ("CustomerEmail", {"properties": {"email": "bob@example.com"}}, hashlib.sha1(b"bob@example.com").hexdigest()),
    ("ReferringUrl", {"context": {"page": {"referrer": "https://blog.example/"}}}, "https://blog.example/"),
    ("PageUrl", {"properties": {"url": "https://shop.example/p"}}, "https://shop.example/p"),
    ("PageUrl", {"context": {"page": {"referrer": "https://shop.example/r"}}}, "https://shop.example/r"),
    ("PageUrl", {"context": {"referrer": {"url": "https://partner.example/"}}}, "https://partner.example/"),
    ("OrderId", {"properties": {"orderId": "A", "order_id": "B"}}, "A"),
    ("OrderId", {"properties": {"order_id": "B", "transactionID": "C"}}, "B"),
    ("OrderId", {"properties": {"transactionID": "C", "messageId": "D"}}, "C"),
    ("OrderId", {"properties": {"messageId": "D"}}, "D"),
    ("OrderId", {}, "<messageId>"),
])  # fmt: skip
def test_each_fallback_of_the_track_table(
    api: httpx.Client, web: httpx.Client, row: str, changes: dict[str, Any], expected: str
) -> None:
    adv = factories.advertiser(api)
    src = source(api, adv["id"], "impact")
    message = {"type": "track", "event": "Product Viewed", "anonymousId": "a", "messageId": "fallback-1", **changes}
    send(web, src, message)
    assert parameters(api, src, "fallback-1")[row] == expected.replace("<messageId>", "fallback-1")


def test_products_become_numbered_items_and_the_amount(api: httpx.Client, web: httpx.Client,
                                                       browser: httpx.Client) -> None:  # fmt: skip
    adv, offer, partner = factories.program(api, revenue={"type": "cps", "percent": "10"})
    tid = factories.click(browser, offer["id"], partner["id"])
    src = source(api, adv["id"], "impact")
    products = [
        {"sku": "TENT-2", "name": "Tent", "brand": "Acme", "category": "tents", "price": "120.00", "quantity": 1,
         "coupon": "TENT10"},
        {"sku": "PEG-8", "name": "Pegs", "brand": "Acme", "category": "parts", "price": 2.5, "quantity": 4},
    ]  # fmt: skip
    send(web, src, {"type": "track", "event": "Order Completed", "anonymousId": "a", "messageId": "with-products",
                    "context": {"referrer": {"type": "impactRadius", "id": tid}},
                    "properties": {"order_id": "P-1", "revenue": "999", "products": products}})  # fmt: skip
    shown = parameters(api, src, "with-products")
    assert {name: value for name, value in shown.items() if name.startswith("Item")} == {
        "ItemBrand1": "Acme", "ItemCategory1": "tents", "ItemName1": "Tent", "ItemPrice1": "120.00",
        "ItemPromoCode1": "TENT10", "ItemQuantity1": "1", "ItemSku1": "TENT-2",
        "ItemBrand2": "Acme", "ItemCategory2": "parts", "ItemName2": "Pegs", "ItemPrice2": "2.5",
        "ItemQuantity2": "4", "ItemSku2": "PEG-8",
    }  # fmt: skip
    assert "OrderSubTotalPostDiscount" not in shown  # [4]: only passed if the products array is not defined
    assert stored(api, src, "with-products")["mapped"]["items"] == []  # not an items[] list
    [conversion] = conversions(api, transaction_id=tid)
    assert (conversion["amount"], conversion["order_id"], conversion["revenue"]) == ("130.00", "P-1", "13.00")


def test_an_install_is_its_own_payable_action_and_never_blocks_the_order(
    api: httpx.Client, web: httpx.Client, browser: httpx.Client
) -> None:
    """A web offer that pays for orders: the install on the same click is not paid (its offer has no install
    event) and the order is the base conversion. An offer with an install event records both."""
    adv, shop, partner = factories.program(api, revenue={"type": "cps", "percent": "10"})
    tid = factories.click(browser, shop["id"], partner["id"])
    src = source(api, adv["id"], "impact")
    referrer = {"referrer": {"type": "impactRadius", "id": tid}}
    send(web, src,
         {"type": "track", "event": "Application Installed", "anonymousId": "dev-1", "messageId": "install-1",
          "context": referrer},
         {"type": "track", "event": "Order Completed", "anonymousId": "dev-1", "messageId": "order-1",
          "context": referrer, "properties": {"order_id": "O-1", "revenue": "40.00"}})  # fmt: skip
    [order] = conversions(api, transaction_id=tid)
    assert (order["event_id"], order["amount"], order["order_id"], order["revenue"]) == (None, "40.00", "O-1", "4.00")
    install = stored(api, src, "install-1")
    assert install["conversion_id"] is None and install["outcome"] == "customer"
    assert f"not paid: offer #{shop['id']} has no event 'Application Installed'" in install["detail"]
    assert "settings.install_event" in install["detail"]
    assert parameters(api, src, "install-1")["EventCode"] == "INSTALL"
    assert "EventCode" not in parameters(api, src, "order-1")
    # The offer defines the install: once it has its base conversion, the install is that event, with its money.
    factories.event(api, shop["id"], name="Application Installed", revenue={"type": "fixed", "amount": "1.50"})
    later = factories.click(browser, shop["id"], partner["id"])
    send(web, src,
         {"type": "track", "event": "Order Completed", "anonymousId": "dev-2", "messageId": "order-2",
          "context": {"referrer": {"type": "impactRadius", "id": later}}, "properties": {"revenue": "30"}},
         {"type": "track", "event": "Application Installed", "anonymousId": "dev-2",
          "messageId": "install-2"})  # fmt: skip
    base, installed = sorted(conversions(api, transaction_id=later), key=lambda c: c["id"])
    assert (base["event_id"], base["amount"], base["order_id"]) == (None, "30.00", "order-2")
    assert (installed["event_name"], installed["revenue"]) == ("Application Installed", "1.50")


def test_an_app_journey_from_the_real_python_client(server: RunningServer, api: httpx.Client,
                                                    browser: httpx.Client) -> None:  # fmt: skip
    """A CPI offer: the install is the base conversion (`install_event: base`), each app open is a paid page
    load (`page_load_event`), the order is an in-app purchase event (`event_mapping`), each with its money."""
    from segment.analytics import Client, request

    adv, app, partner = factories.program(api, revenue={"type": "cpa", "amount": "4.00"})
    opened = factories.event(api, app["id"], name="app open", revenue={"type": "fixed", "amount": "0.10"},
                             allow_multiple_per_click=True)  # fmt: skip
    purchase = factories.event(api, app["id"], name="purchase", revenue={"type": "cps", "percent": "30"})
    tid = factories.click(browser, app["id"], partner["id"])
    src = source(api, adv["id"], "impact", install_event="base", page_load_event=str(opened["id"]),
                 event_mapping={"Order Completed": "purchase"}, ios_app_id="1234567")  # fmt: skip
    errors: list[Any] = []
    client = Client(src["write_key"], host=server.base_url, sync_mode=True, on_error=lambda e, b: errors.append(e))
    device = {"device": {"type": "ios", "advertisingId": "IDFA-9"}, "os": {"name": "iOS"},
              "app": {"namespace": "com.example.app"}}  # fmt: skip
    client.track(anonymous_id="dev-9", event="Application Installed",
                 context={**device, "referrer": {"type": "impactRadius", "id": tid}})  # fmt: skip
    client.track(anonymous_id="dev-9", event="Application Opened", context=device)
    client.track(anonymous_id="dev-9", event="Application Opened", context=device)
    client.track(anonymous_id="dev-9", event="Order Completed", context=device,
                 properties={"orderId": "APP-1", "revenue": 10.0, "currency": "USD"})  # fmt: skip
    request._session.close()  # sync mode: each call was posted and answered in turn
    assert errors == []
    recorded = sorted(conversions(api, transaction_id=tid), key=lambda c: c["id"])
    assert [(c["event_id"], c["revenue"], c["amount"]) for c in recorded] == [
        (None, "4.00", None),  # the install
        (opened["id"], "0.10", None),  # the two app opens
        (opened["id"], "0.10", None),
        (purchase["id"], "3.00", "10.00"),  # 30 % of the order
    ]
    assert recorded[-1]["order_id"] == "APP-1"
    summaries = [m["mapped"]["summary"] for m in sorted(messages(api, src["id"]), key=lambda m: m["id"])]
    assert summaries[0] == "track 'Application Installed': install → base conversion"
    assert summaries[1] == f"track 'Application Opened': page load → offer event #{opened['id']}"


# -- Segment Spec: Page calls, Screen calls, Identify calls ------------------------------------------------


def full_page(tid: str, kind: str = "page") -> dict[str, Any]:
    """A page (or screen) carrying every field of the page parameter table."""
    return {
        "type": kind, "name": "Landing", "userId": "customer-4711", "anonymousId": "anon-4711",
        "messageId": f"{kind}-full", "timestamp": "2026-01-05T09:00:00Z",
        "context": {
            "device": {"advertisingId": "IDFA-1", "id": "IDFV-1", "manufacturer": "Apple", "model": "iPhone15,2"},
            "app": {"name": "Shop", "namespace": "com.example.shop", "version": "3.2.1"},
            "traits": {"email": "ann@example.com"}, "network": {"carrier": "T-Mobile"}, "locale": "en-US",
            "os": {"name": "iOS", "version": "17.2"}, "ip": "203.0.113.9", "userAgent": IPHONE,
            "page": {"url": f"https://shop.example/land?im_ref={tid}", "referrer": "https://partner.example/"},
        },
        "properties": {"advertisingId": "GAID-1"},
    }  # fmt: skip


#: The seed's page parameter table, row by row (the same for screen calls).
PAGE_TABLE = [
    ("AppleIfa", "context.device.advertisingId", "IDFA-1"),
    ("AppleIfv", "context.device.id", "IDFV-1"),
    ("AppName", "context.app.name", "Shop"),
    ("AppPackage", "context.app.namespace", "com.example.shop"),
    ("AppVer", "context.app.version", "3.2.1"),
    ("CampaignId", "settings.campaignId", "12345"),
    ("CustomerEmail", "context.traits.email || properties.email", hashlib.sha1(b"ann@example.com").hexdigest()),
    ("CustomerId", "userId", "customer-4711"),
    ("CustomProfileId", "anonymousId", "anon-4711"),
    ("DeviceCarrier", "context.network.carrier", "T-Mobile"),
    ("DeviceLocale", "context.locale", "en-US"),
    ("DeviceMfr", "context.device.manufacturer", "Apple"),
    ("DeviceModel", "context.device.model", "iPhone15,2"),
    ("DeviceOs", "context.device.type || context.os.name", "iOS"),
    ("DeviceOsVer", "context.os.version", "17.2"),
    ("EventDate", "timestamp", "2026-01-05T09:00:00+00:00"),
    ("GoogAId", "properties.advertisingId", "GAID-1"),
    ("ImpactAppId", "settings.appId || context.app.namespace", "1234567"),  # iOS: the iOS App ID
    ("IpAddress", "context.ip", "203.0.113.9"),
    ("PageUrl", "context.page.url || properties.url || ...", "https://shop.example/land?im_ref=<tid>"),
    ("ReferringUrl", "context.referrer.url || context.page.referrer", "https://partner.example/"),
    ("UserAgent", "context.userAgent", IPHONE),
]


def test_page_and_screen_calls_are_page_loads_with_the_page_table(
    api: httpx.Client, web: httpx.Client, browser: httpx.Client
) -> None:
    adv, offer, partner = factories.program(api)
    tid = factories.click(browser, offer["id"], partner["id"])
    src = source(api, adv["id"], "impact", campaign_id="12345", ios_app_id="1234567", android_app_id="7654321")
    send(web, src, full_page(tid))
    expected = {name: value.replace("<tid>", tid) for name, _, value in PAGE_TABLE}
    assert parameters(api, src, "page-full") == expected
    page = stored(api, src, "page-full")
    assert page["mapped"]["click_reference"] == tid and page["conversion_id"] is None  # a click, not a conversion
    [person] = customers(api, source_id=src["id"])
    assert person["transaction_id"] == tid
    # Screen calls: the same mapping, once Enable Screen Events is on (off by default); ImpactAppId per platform.
    screen = full_page(tid, "screen")
    screen["context"]["os"] = {"name": "Android", "version": "14"}
    send(web, src, screen)
    assert stored(api, src, "screen-full")["mapped"]["summary"] == "screen visit"  # no page load
    screens = source(api, adv["id"], "impact", campaign_id="12345", ios_app_id="1234567", android_app_id="7654321",
                     enable_screen_events=True)  # fmt: skip
    send(web, screens, screen)
    assert stored(api, screens, "screen-full")["mapped"]["summary"] == "screen visit: page load"
    shown = parameters(api, screens, "screen-full")
    assert shown == {**expected, "ImpactAppId": "7654321", "DeviceOs": "Android", "DeviceOsVer": "14"}
    [app_user] = customers(api, source_id=screens["id"])
    assert app_user["transaction_id"] == tid
    web_page = {"type": "page", "anonymousId": "w", "messageId": "web-page", "context": {"app": {"namespace": "n.s"}}}
    send(web, src, web_page)
    assert parameters(api, src, "web-page")["ImpactAppId"] == "n.s"  # no app id for the platform: the namespace


@pytest.mark.parametrize(("user_id", "sent"), [
    ("customer-4711", True),
    ("abc1234", True),  # 7 characters, 7 distinct
    ("abc123", False),  # 6 characters
    ("aaaaaab", False),  # 7 characters, 2 distinct
    ("ann smith", False),  # whitespace
])  # fmt: skip
def test_the_customer_id_rule(api: httpx.Client, web: httpx.Client, user_id: str, sent: bool) -> None:
    adv = factories.advertiser(api)
    src = source(api, adv["id"], "impact")
    send(web, src, {"type": "page", "userId": user_id, "messageId": "p"},
         {"type": "track", "event": "Order Completed", "userId": user_id, "messageId": "t"})  # fmt: skip
    for message_id in ("p", "t"):
        assert parameters(api, src, message_id).get("CustomerId") == (user_id if sent else None)
        summary = stored(api, src, message_id)["mapped"]["summary"]
        assert ("CustomerId not sent" in summary) is not sent, summary


def test_identify_calls_are_page_loads_only_when_enabled(
    api: httpx.Client, web: httpx.Client, browser: httpx.Client
) -> None:
    adv, offer, partner = factories.program(api)
    tid = factories.click(browser, offer["id"], partner["id"])
    identify = {"type": "identify", "anonymousId": "anon-i", "userId": "customer-9090", "traits": {"plan": "pro"},
                "context": {"page": {"url": f"https://shop.example/?im_ref={tid}"}}}  # fmt: skip
    off, on = source(api, adv["id"], "impact"), source(api, adv["id"], "impact", enable_identify_events=True)
    send(web, off, {**identify, "messageId": "identify-off"})
    send(web, on, {**identify, "messageId": "identify-on"})
    [not_linked] = customers(api, source_id=off["id"])
    [linked] = customers(api, source_id=on["id"])
    assert (not_linked["transaction_id"], linked["transaction_id"]) == (None, tid)
    assert linked["traits"] == not_linked["traits"] == {"plan": "pro"}
    assert parameters(api, on, "identify-on")["CustomerId"] == "customer-9090"


# -- Advanced options: custom parameter mapping, custom mapping for products, attributing track events -------


def test_custom_parameter_mapping_drives_the_click_the_order_id_and_the_money(
    api: httpx.Client, web: httpx.Client, browser: httpx.Client
) -> None:
    adv, offer, partner = factories.program(api, revenue={"type": "cps", "percent": "10"})
    tid = factories.click(browser, offer["id"], partner["id"])
    mapping = {
        "OrderSubTotalPostDiscount": "properties.subtotal", "OrderId": "properties.invoice_no",
        "ClickId": "properties.irclickid", "CustomerStatus": "properties.customer_status",  # the seed's example
        "CurrencyCode": "properties.cur", "Text1": "properties.plan",  # a parameter impact.com specified
    }  # fmt: skip
    src = source(api, adv["id"], "impact", parameter_mapping=mapping)
    properties = {"irclickid": tid, "subtotal": "8.00", "revenue": "10.00", "invoice_no": "INV-78",
                  "order_id": "ORD-78", "customer_status": "new", "cur": "usd", "currency": "EUR",
                  "plan": "gold"}  # fmt: skip
    send(web, src, {"type": "track", "event": "Order Completed", "userId": "server-user", "messageId": "custom",
                    "properties": properties})  # fmt: skip
    shown = parameters(api, src, "custom")
    assert (shown["OrderSubTotalPostDiscount"], shown["OrderId"], shown["ClickId"], shown["CustomerStatus"]) == (
        "8.00",
        "INV-78",
        tid,
        "new",
    )
    assert (shown["CurrencyCode"], shown["Text1"]) == ("usd", "gold")
    [conversion] = conversions(api, transaction_id=tid)
    assert (conversion["amount"], conversion["order_id"], conversion["currency"], conversion["revenue"]) == (
        "8.00",
        "INV-78",
        "USD",
        "0.80",
    )
    assert stored(api, src, "custom")["mapped"]["click_path"] == "properties.irclickid"


@pytest.mark.parametrize(("properties", "missing"), [
    ({}, "properties.irclickid: is missing (ClickId)"),
    ({"irclickid": {"id": "x"}}, "properties.irclickid: must be a string (ClickId)"),
    ({"irclickid": ""}, "properties.irclickid: is missing (ClickId)"),
])  # fmt: skip
def test_a_conversion_without_its_click_id_names_the_mapped_path(
    api: httpx.Client, web: httpx.Client, properties: dict[str, Any], missing: str
) -> None:
    adv = factories.advertiser(api)
    src = source(api, adv["id"], "impact", parameter_mapping={"ClickId": "properties.irclickid"})
    send(web, src, {"type": "track", "event": "Order Completed", "userId": "u-1", "messageId": "no-click",
                    "context": {"referrer": {"type": "other", "id": "x"}}, "properties": properties})  # fmt: skip
    message = stored(api, src, "no-click")
    assert message["outcome"] == "unattributed"
    assert missing in message["detail"]
    assert "context.referrer.type: is 'other', not impactRadius" in message["detail"]
    assert "context.page.url: is missing (no im_ref to read)" in message["detail"]
    assert "ClickId" not in message["mapped"]["parameters"]


def test_custom_mapping_for_products(api: httpx.Client, web: httpx.Client, browser: httpx.Client) -> None:
    adv, offer, partner = factories.program(api, revenue={"type": "cps", "percent": "10"})
    tid = factories.click(browser, offer["id"], partner["id"])
    src = source(api, adv["id"], "impact", product_mapping={"ItemPrice": "product_revenue"})
    products = [{"sku": "s-1", "price": 99, "product_revenue": "12.50", "quantity": 2}]
    send(web, src, {"type": "track", "event": "Order Completed", "anonymousId": "a", "messageId": "products",
                    "context": {"referrer": {"type": "impactRadius", "id": tid}},
                    "properties": {"order_id": "PR-1", "products": products}})  # fmt: skip
    assert parameters(api, src, "products")["ItemPrice1"] == "12.50"
    [conversion] = conversions(api, transaction_id=tid)
    assert conversion["amount"] == "25.00"


def test_attributing_track_events_by_im_ref_and_by_the_same_person(
    api: httpx.Client, web: httpx.Client, browser: httpx.Client
) -> None:
    """The JavaScript source's page carries im_ref in context.page.url; the server-side order carries only
    the userId an identify tied to the page's anonymousId."""
    adv, offer, partner = factories.program(api)
    tid = factories.click(browser, offer["id"], partner["id"])
    src = source(api, adv["id"], "impact")
    send(web, src,
         {"type": "page", "anonymousId": "anon-web", "messageId": "landing",
          "context": {"page": {"url": f"https://shop.example/?im_ref={tid}"}}},
         {"type": "identify", "anonymousId": "anon-web", "userId": "customer-5150", "messageId": "who"},
         {"type": "track", "event": "Order Completed", "userId": "customer-5150", "messageId": "server-order",
          "properties": {"order_id": "S-1", "revenue": "20"}})  # fmt: skip
    [conversion] = conversions(api, transaction_id=tid)
    assert (conversion["order_id"], conversion["amount"]) == ("S-1", "20.00")
    landing = stored(api, src, "landing")
    assert landing["mapped"]["click_path"] == "im_ref of context.page.url"
    assert "ClickId" not in landing["mapped"]["parameters"]  # [1]: only from a referrer of type impactRadius
