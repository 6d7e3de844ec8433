"""The mapping of messages under each preset: e-commerce amounts and refunds, Everflow's event mapping,
impact.com's click ids, order-id chain, parameters and products, Tractionboard activity, audiences."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from tracklane.domain.errors import InvalidParameter
from tracklane.domain.segment.mapping import Meaning, map_message, money
from tracklane.domain.segment.messages import read_message
from tracklane.domain.segment.metrics import customer_metrics
from tracklane.domain.segment.settings import settings_json, source_settings

NOW = datetime(2026, 11, 23, 12, 0, 0, tzinfo=UTC)


def meaning(raw: dict[str, Any], preset: str = "default", **settings: Any) -> Meaning:
    message = read_message({"userId": "u1", "messageId": "mid-1", **raw}, {}, NOW, trusted=False)
    return map_message(message, source_settings(preset, settings))


def order(**properties: Any) -> dict[str, Any]:
    return {"type": "track", "event": "Order Completed", "properties": properties}


@pytest.mark.parametrize(("properties", "amount"), [
    ({"revenue": Decimal("10.5"), "total": 12, "subtotal": 9}, Decimal("10.5")),
    ({"total": "12.00", "subtotal": 9}, Decimal("12.00")),
    ({"subtotal": 9}, Decimal("9")),
    ({"revenue": "39.95"}, Decimal("39.95")),
    ({"revenue": Decimal("1.234567")}, Decimal("1.2346")),
    ({}, None),
])  # fmt: skip
def test_default_amount_is_revenue_then_total_then_subtotal(properties: dict[str, Any], amount: Decimal) -> None:
    conversion = meaning(order(**properties)).conversion
    assert conversion is not None and conversion.amount == amount
    currency = "USD" if amount is not None else None  # no money, no currency to check against the offer's
    assert (conversion.event_id, conversion.event_name, conversion.currency) == (None, None, currency)


def test_default_order_fields_currency_and_refund() -> None:
    conversion = meaning(order(order_id=77, currency="eur", adv2="x")).conversion
    assert conversion is not None
    assert (conversion.order_id, conversion.currency, conversion.advs[1]) == ("77", "EUR", "x")
    refund = meaning({"type": "track", "event": "Order Refunded", "properties": {"order_id": "O1", "total": 5}})
    assert (refund.refunds_order, refund.refund_order_id, refund.conversion, refund.activity) == (
        True,
        "O1",
        None,
        "refund",
    )
    other = meaning({"type": "track", "event": "Trial Started"}).conversion
    assert other is not None and (other.event_name, other.if_no_event) == ("Trial Started", "skip")
    with pytest.raises(InvalidParameter) as error:
        meaning(order(revenue="ten"))
    assert error.value.field == "properties.revenue"
    with pytest.raises(InvalidParameter):
        meaning(order(revenue=-1))


def test_click_reference_order() -> None:
    context = {"referrer": {"type": "tracklane", "id": "ref"}, "page": {"url": "https://x/?tl_tid=url"}}
    assert meaning({**order(transaction_id="prop"), "context": context}).click_reference == "prop"
    assert meaning({**order(), "context": context}).click_reference == "ref"
    assert meaning({**order(), "context": {"page": context["page"]}}).click_reference == "url"
    everflow_ref = {"referrer": {"type": "everflow", "id": "ef"}}
    assert meaning({**order(), "context": everflow_ref}).click_reference is None
    assert meaning({**order(), "context": everflow_ref}, "everflow").click_reference == "ef"


def test_everflow_event_mapping() -> None:
    mapped = {"Order Completed": "12", "Sign Up": "base", "Upgrade": "upgrade"}
    referrer = {"context": {"referrer": {"type": "everflow", "id": "ef"}}}
    paid = meaning({**order(total=76, orderId="123", adv1="a", revenue=1), **referrer}, "everflow",
                   event_mapping=mapped).conversion  # fmt: skip
    assert paid is not None and (paid.event_id, paid.amount, paid.order_id, paid.advs[0]) == (12, 76, "123", "a")
    base = meaning({"type": "track", "event": "Sign Up", **referrer}, "everflow", event_mapping=mapped).conversion
    assert base is not None and (base.event_id, base.event_name) == (None, None)
    named = meaning({"type": "track", "event": "Upgrade", **referrer}, "everflow", event_mapping=mapped).conversion
    assert named is not None and named.event_name == "upgrade"
    assert meaning({"type": "track", "event": "Unmapped"}, "everflow", event_mapping=mapped).conversion is None


@pytest.mark.parametrize(("context", "field", "reason"), [
    ({}, "context.referrer", "is missing"),
    ({"referrer": "ef"}, "context.referrer", "must be an object"),
    ({"referrer": {"type": "everflow"}}, "context.referrer.id", "is missing"),
    ({"referrer": {"id": "ef"}}, "context.referrer.type", "is missing"),
    ({"referrer": {"id": "ef", "type": "impactRadius"}}, "context.referrer.type", "is 'impactRadius', not everflow"),
    ({"referrer": {"id": {"x": 1}, "type": "everflow"}}, "context.referrer.id", "must be a string"),
    ({"referrer": {"id": " ", "type": "everflow"}}, "context.referrer.id", "is empty"),
])  # fmt: skip
def test_everflow_refuses_a_conversion_without_its_transaction_id(
    context: dict[str, Any], field: str, reason: str
) -> None:
    mapped = {"Order Completed": "base"}
    with pytest.raises(InvalidParameter) as error:
        meaning({**order(total=1), "context": context}, "everflow", event_mapping=mapped)
    assert error.value.field == field and error.value.detail.startswith(reason)
    assert "context.referrer.id with context.referrer.type everflow" in error.value.detail
    unmapped = meaning({"type": "track", "event": "Product Viewed", "context": context}, "everflow")
    assert unmapped.conversion is None  # only a conversion needs the click


def test_impact_preset() -> None:
    page = meaning(
        {"type": "page", "anonymousId": "a", "context": {"page": {"url": "https://s/?im_ref=CLK"}}}, "impact"
    )
    assert (page.click_reference, page.links_click, page.visit) == ("CLK", True, True)
    assert meaning({"type": "screen", "anonymousId": "a"}, "impact").links_click is False
    assert meaning({"type": "screen", "anonymousId": "a"}, "impact", enable_screen_events=True).links_click
    ref = meaning({**order(), "context": {"referrer": {"type": "impactRadius", "id": "IR"}}}, "impact")
    assert ref.click_reference == "IR" and ref.parameters["ClickId"] == "IR"
    action = meaning(order(revenue=20), "impact").conversion
    assert action is not None and (action.event_name, action.if_no_event, action.amount) == (
        "Order Completed",
        "base",
        20,
    )
    install = meaning({"type": "track", "event": "Application Installed"}, "impact").conversion
    assert install is not None and (install.event_name, install.if_no_event) == ("Application Installed", "unpaid")
    named = meaning({"type": "track", "event": "Application Installed"}, "impact", install_event="7").conversion
    assert named is not None and (named.event_id, named.if_no_event) == (7, "refuse")
    typed = meaning(order(), "impact", event_type_id="31").conversion
    assert typed is not None and typed.event_id == 31
    installed = meaning({"type": "track", "event": "Application Installed"}, "impact", event_type_id="31")
    assert installed.conversion is not None and installed.conversion.event_id is None  # not the actions' event
    custom = meaning(
        {"type": "track", "event": "User Registered"},
        "impact",
        conversion_events=["Order Completed", "User Registered"],
    ).conversion
    assert custom is not None and custom.if_no_event == "base"
    opened = meaning({"type": "track", "event": "Application Opened"}, "impact", page_load_event="Open")
    assert opened.conversion is not None and (opened.conversion.event_name, opened.conversion.action) == (
        "Open",
        "page load",
    )
    paid_page = meaning({"type": "page", "anonymousId": "a"}, "impact", page_load_event="base").conversion
    assert paid_page is not None and (paid_page.event_id, paid_page.event_name, paid_page.currency) == (
        None,
        None,
        None,
    )
    assert meaning({"type": "page", "anonymousId": "a"}, "impact").conversion is None


@pytest.mark.parametrize(("properties", "expected"), [
    ({"orderId": "A", "order_id": "B"}, "A"),
    ({"order_id": "B", "transactionID": "C"}, "B"),
    ({"transactionID": "C", "messageId": "D"}, "C"),
    ({"messageId": "D"}, "D"),
    ({}, "mid-1"),
])  # fmt: skip
def test_impact_order_id_fallback_chain(properties: dict[str, Any], expected: str) -> None:
    conversion = meaning(order(**properties), "impact").conversion
    assert conversion is not None and conversion.order_id == expected
    assert meaning(order(**properties), "impact").parameters["OrderId"] == expected


def test_impact_parameters_products_and_custom_mappings() -> None:
    raw = {
        **order(revenue=45, discount=5, coupon="C10", products=[{"sku": "s1", "price": 20, "quantity": 2}]),
        "anonymousId": "anon",
        "context": {"traits": {"email": "a@b.c", "status": "vip"}, "ip": "1.1.1.1", "os": {"name": "iOS"}},
    }
    mapped = meaning(raw, "impact")
    assert mapped.conversion is not None and mapped.conversion.amount == Decimal("40.00")
    assert "OrderSubTotalPostDiscount" not in mapped.parameters
    assert mapped.parameters["CustomerEmail"] == hashlib.sha1(b"a@b.c").hexdigest()
    assert (
        mapped.parameters["CustomProfileId"],
        mapped.parameters["DeviceOs"],
        mapped.parameters["OrderDiscount"],
        mapped.parameters["CustomerStatus"],
    ) == ("anon", "iOS", "5", "vip")
    assert mapped.items == ()  # impact.com's products are parameters, numbered from 1
    assert {k: v for k, v in mapped.parameters.items() if k.startswith("Item")} == {
        "ItemSku1": "s1",
        "ItemPrice1": "20",
        "ItemQuantity1": "2",
    }
    without = meaning(order(revenue=45), "impact")
    assert without.parameters["OrderSubTotalPostDiscount"] == "45"
    custom = meaning(
        {**order(customer_status="new", products=[{"sku": "s", "product_revenue": 3}])},
        "impact",
        parameter_mapping={"CustomerStatus": "properties.customer_status"},
        product_mapping={"ItemPrice": "product_revenue"},
    )
    assert custom.parameters["CustomerStatus"] == "new" and custom.parameters["ItemPrice1"] == "3"
    assert custom.conversion is not None and custom.conversion.amount == Decimal("3.0000")


def test_tractionboard_activity() -> None:
    assert meaning({"type": "track", "event": "signup"}, "tractionboard").activity == "signup"
    assert meaning({"type": "track", "event": "signup"}, "tractionboard").conversion is not None
    payment = meaning({"type": "track", "event": "Payment Made", "properties": {"amount": "9.99"}}, "tractionboard")
    assert (payment.activity, payment.activity_amount, payment.conversion) == ("payment", Decimal("9.99"), None)
    refund = meaning({"type": "track", "event": "Refund Received", "properties": {"revenue": 3}}, "tractionboard")
    assert (refund.activity, refund.activity_amount) == ("refund", 3)
    assert meaning({"type": "track", "event": "cancel"}, "tractionboard").activity == "churn"
    group = meaning({"type": "group", "groupId": "acme", "traits": {"size": 5}}, "tractionboard")
    assert group.group == ("acme", {"size": 5})
    alias = meaning({"type": "alias", "previousId": "old"}, "tractionboard")
    assert alias.alias == ("old", "u1")


def test_audiences() -> None:
    traits = {"order_completed_last_30days": True, "Nice Name": True, "email": "e", "vip": False}
    identify = meaning({"type": "identify", "traits": traits})
    assert identify.audiences == {} and identify.traits == traits  # a boolean trait is a trait
    declared = meaning({"type": "identify", "traits": traits}, audiences=["vip"])
    assert declared.audiences == {"vip": False} and "vip" not in declared.traits
    computed = meaning(
        {
            "type": "identify",
            "traits": {"big_spenders": True, "newsletter": True},
            "context": {"personas": {"computation_class": "audience", "computation_key": "big_spenders"}},
        }
    )
    assert computed.audiences == {"big_spenders": True} and computed.traits == {"newsletter": True}
    entered = meaning({"type": "track", "event": "Audience Exited", "properties": {"audience_key": "a_b"}})
    assert (entered.audiences, entered.conversion) == ({"a_b": False}, None)


def test_settings_are_validated_and_shown() -> None:
    with pytest.raises(InvalidParameter) as error:
        source_settings("segment", {})
    assert error.value.field == "preset"
    for name, value in (
        ("event_mapping", ["x"]),
        ("enable_page_events", "yes"),
        ("color", 1),
        ("conversion_events", [1]),
    ):
        with pytest.raises(InvalidParameter) as error:
            source_settings("default", {name: value})
        assert error.value.field == f"settings.{name}"
    shown = settings_json(source_settings("everflow", {"event_mapping": {"A": 5}}))
    assert shown["event_mapping"] == {"A": "5"} and shown["referrer_types"] == ["everflow"]


def test_customer_metrics() -> None:
    row = customer_metrics(
        {
            "new_customers": 4,
            "payment_amount": Decimal("100"),
            "refund_amount": Decimal("20"),
            "churned": 1,
            "payout": Decimal("30"),
        }
    )
    assert (row["net_revenue"], row["churn_rate"], row["acquisition_cost"], row["revenue_per_customer"]) == (
        Decimal("80"),
        Decimal("0.2500"),
        Decimal("7.50"),
        Decimal("20.00"),
    )
    assert customer_metrics({"new_customers": 0})["churn_rate"] is None


def test_a_money_string_in_a_message_has_the_decimal_text_grammar() -> None:
    assert money("19.99999", "properties.revenue") == Decimal("20.0000")  # any places, rounded
    assert money(" 5 ", "properties.revenue") == Decimal("5.0000")
    for text in ("1_000", "1e3", "١٢", "NaN", "12,50"):
        with pytest.raises(InvalidParameter, match=r"properties\.revenue"):
            money(text, "properties.revenue")
