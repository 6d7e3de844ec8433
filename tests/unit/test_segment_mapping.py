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
    assert (conversion.event_id, conversion.event_name, conversion.currency) == (None, None, "USD")


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
    assert other is not None and (other.event_name, other.skip_if_no_event) == ("Trial Started", True)
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
    paid = meaning(order(total=76, orderId="123", adv1="a", revenue=1), "everflow", event_mapping=mapped).conversion
    assert paid is not None and (paid.event_id, paid.amount, paid.order_id, paid.advs[0]) == (12, 76, "123", "a")
    base = meaning({"type": "track", "event": "Sign Up"}, "everflow", event_mapping=mapped).conversion
    assert base is not None and (base.event_id, base.event_name) == (None, None)
    named = meaning({"type": "track", "event": "Upgrade"}, "everflow", event_mapping=mapped).conversion
    assert named is not None and named.event_name == "upgrade"
    assert meaning({"type": "track", "event": "Unmapped"}, "everflow", event_mapping=mapped).conversion is None


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
    assert action is not None and (action.event_name, action.base_if_no_event, action.amount) == (
        "Order Completed",
        True,
        20,
    )
    install = meaning({"type": "track", "event": "Application Installed"}, "impact").conversion
    assert install is not None and install.base_if_no_event
    typed = meaning(order(), "impact", event_type_id="31").conversion
    assert typed is not None and typed.event_id == 31
    custom = meaning(
        {"type": "track", "event": "User Registered"},
        "impact",
        conversion_events=["Order Completed", "User Registered"],
    ).conversion
    assert custom is not None and custom.base_if_no_event


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
    assert mapped.items == ({"ItemSku": "s1", "ItemPrice": "20", "ItemQuantity": "2"},)
    without = meaning(order(revenue=45), "impact")
    assert without.parameters["OrderSubTotalPostDiscount"] == "45"
    custom = meaning(
        {**order(customer_status="new", products=[{"sku": "s", "product_revenue": 3}])},
        "impact",
        parameter_mapping={"CustomerStatus": "properties.customer_status"},
        product_mapping={"ItemPrice": "product_revenue"},
    )
    assert custom.parameters["CustomerStatus"] == "new" and custom.items[0]["ItemPrice"] == "3"
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
    identify = meaning(
        {
            "type": "identify",
            "traits": {"order_completed_last_30days": True, "Nice Name": True, "email": "e", "vip": False},
        }
    )
    assert identify.audiences == {"order_completed_last_30days": True, "vip": False}
    assert identify.traits == {"Nice Name": True, "email": "e"}
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
