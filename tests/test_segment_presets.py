"""One scenario per seed: the Everflow, impact.com and Tractionboard presets map Segment calls the way those
destinations document, and customers are stitched, aliased, grouped and put in audiences."""

from __future__ import annotations

import hashlib
from typing import Any

import httpx

from tests import factories
from tests.segment_support import conversions, customers, messages, source


def send(web: httpx.Client, src: dict[str, Any], *batch: dict[str, Any]) -> None:
    response = web.post("/v1/batch", json={"batch": list(batch), "writeKey": src["write_key"]})
    assert (response.status_code, response.json()) == (200, {"success": True})


def test_everflow_track_with_referrer_is_the_mapped_event(api: httpx.Client, web: httpx.Client) -> None:
    adv, offer, partner = factories.program(api)
    purchase = factories.event(api, offer["id"], name="purchase", revenue={"type": "cps", "percent": "10"})
    tid = factories.click(web, offer["id"], partner["id"])
    src = source(api, adv["id"], "everflow", event_mapping={"Sign Up": "base", "Order Completed": str(purchase["id"])})
    referrer = {"referrer": {"type": "everflow", "id": tid}, "ip": "23.123.123.123"}
    send(web, src,
         {"type": "track", "event": "Sign Up", "userId": "a1b2c3d4", "context": referrer, "messageId": "ef-1"},
         {"type": "track", "event": "Order Completed", "userId": "a1b2c3d4", "context": referrer,
          "properties": {"adv1": "adv1test", "adv3": "adv3test", "total": 76.0, "orderId": "123456789"},
          "messageId": "ef-2"},
         {"type": "track", "event": "Product Viewed", "userId": "a1b2c3d4", "context": referrer,
          "messageId": "ef-3"})  # fmt: skip
    base, event = sorted(conversions(api, transaction_id=tid), key=lambda c: c["id"])
    assert base["event_id"] is None and base["origin"] == "segment"
    assert (event["event_id"], event["amount"], event["order_id"]) == (purchase["id"], "76.00", "123456789")
    assert (event["adv1"], event["adv2"], event["adv3"], event["revenue"]) == ("adv1test", None, "adv3test", "7.60")
    outcomes = {m["message_id"]: m["outcome"] for m in messages(api, src["id"])}
    assert outcomes == {"ef-1": "conversion", "ef-2": "conversion", "ef-3": "customer"}


def test_impact_page_then_server_side_order_with_only_user_id(api: httpx.Client, web: httpx.Client) -> None:
    adv, offer, partner = factories.program(
        api,
        destination_url="https://shop.example/land?im_ref={transaction_id}",
        revenue={"type": "cps", "percent": "10"},
    )
    tid = factories.click(web, offer["id"], partner["id"])
    src = source(api, adv["id"], "impact")
    landing = {
        "page": {"url": f"https://shop.example/land?im_ref={tid}", "referrer": "https://blog.example/"},
        "userAgent": "Mozilla/5.0",
    }
    products = [
        {"sku": "SKU-1", "name": "Shoe", "price": 20, "quantity": 2, "brand": "Acme"},
        {"sku": "SKU-2", "name": "Sock", "price": "10.00", "quantity": 1},
    ]
    send(web, src,
         {"type": "page", "anonymousId": "anon-imp", "context": landing, "messageId": "im-1"},
         {"type": "identify", "anonymousId": "anon-imp", "userId": "cust-1234567", "messageId": "im-2",
          "traits": {"email": "ann@example.com"}})  # fmt: skip
    send(
        web,
        src,
        {
            "type": "track",
            "event": "Order Completed",
            "userId": "cust-1234567",
            "messageId": "im-3",
            "context": {"traits": {"email": "ann@example.com"}},
            "properties": {"order_id": "IMP-1", "revenue": 45, "currency": "USD", "products": products},
        },
    )
    [conversion] = conversions(api, transaction_id=tid)
    assert (conversion["amount"], conversion["order_id"], conversion["revenue"]) == ("50.00", "IMP-1", "5.00")
    order = messages(api, src["id"], message_id="im-3")[0]
    parameters = order["mapped"]["parameters"]
    assert {name: value for name, value in parameters.items() if name.startswith("Item")} == {
        "ItemBrand1": "Acme", "ItemName1": "Shoe", "ItemPrice1": "20", "ItemQuantity1": "2", "ItemSku1": "SKU-1",
        "ItemName2": "Sock", "ItemPrice2": "10.00", "ItemQuantity2": "1", "ItemSku2": "SKU-2",
    }  # fmt: skip
    assert parameters["CustomerEmail"] == hashlib.sha1(b"ann@example.com").hexdigest()
    assert (parameters["CustomerId"], parameters["OrderId"], parameters["EventTypeCode"]) == (
        "cust-1234567",
        "IMP-1",
        "Order Completed",
    )
    assert "OrderSubTotalPostDiscount" not in parameters  # revenue only when there is no products array
    page = messages(api, src["id"], message_id="im-1")[0]
    assert page["mapped"]["parameters"]["PageUrl"].endswith(tid)


def test_impact_settings_custom_mappings_and_click_referrer(api: httpx.Client, web: httpx.Client) -> None:
    adv, offer, partner = factories.program(api)
    install = factories.event(api, offer["id"], name="Application Installed")
    tid = factories.click(web, offer["id"], partner["id"])
    src = source(
        api,
        adv["id"],
        "impact",
        product_mapping={"ItemPrice": "product_revenue"},
        parameter_mapping={"CustomerStatus": "properties.customer_status"},
    )
    app = {"referrer": {"type": "impactRadius", "id": tid}, "device": {"advertisingId": "IDFA-1"}}
    send(
        web,
        src,
        {"type": "track", "event": "Application Opened", "anonymousId": "dev-1", "context": app, "messageId": "ap-1"},
        {
            "type": "track",
            "event": "Sign Up Finished",
            "anonymousId": "dev-1",
            "messageId": "ap-2",
            "properties": {"order_id": "S-1", "customer_status": "new"},
        },
        {
            "type": "track",
            "event": "Order Completed",
            "anonymousId": "dev-1",
            "messageId": "ap-3",
            "properties": {"order_id": "A-1", "products": [{"sku": "s", "product_revenue": "7.5", "quantity": 2}]},
        },
        {"type": "track", "event": "Application Installed", "anonymousId": "dev-1", "messageId": "ap-4"},
    )
    base, installed = sorted(conversions(api, transaction_id=tid), key=lambda c: c["id"])
    assert (base["event_id"], base["amount"], base["order_id"]) == (None, "15.00", "A-1")
    assert installed["event_id"] == install["id"]
    stored = {m["message_id"]: m for m in messages(api, src["id"])}
    assert stored["ap-2"]["outcome"] == "customer" and stored["ap-2"]["conversion_id"] is None
    assert stored["ap-2"]["mapped"]["parameters"]["CustomerStatus"] == "new"
    assert stored["ap-1"]["mapped"]["parameters"]["AppleIfa"] == "IDFA-1"
    ordered = stored["ap-3"]["mapped"]["parameters"]
    assert (ordered["ItemPrice1"], ordered["ItemQuantity1"], ordered["ItemSku1"]) == ("7.5", "2", "s")


def _tractionboard_customer(
    web: httpx.Client, src: dict[str, Any], tid: str, user: str, *calls: dict[str, Any]
) -> None:
    """A visit from a partner's link, identify, signup, then the given calls (all with the user's id)."""
    anonymous = f"anon-{user}"
    send(web, src,
         {"type": "page", "anonymousId": anonymous, "messageId": f"{user}-page",
          "context": {"page": {"url": f"https://app.example/?tl_tid={tid}"}}},
         {"type": "identify", "anonymousId": anonymous, "userId": user, "traits": {"plan": "pro"},
          "messageId": f"{user}-identify"},
         {"type": "track", "event": "signup", "userId": user, "messageId": f"{user}-signup"},
         *({"userId": user, "messageId": f"{user}-{n}", **call} for n, call in enumerate(calls)))  # fmt: skip


def test_tractionboard_customer_metrics_per_partner(api: httpx.Client, web: httpx.Client) -> None:
    adv = factories.advertiser(api)
    offer = factories.offer(api, adv["id"], payout={"type": "cpl", "amount": "8.00"})
    first, second = factories.partner(api), factories.partner(api)
    src = source(api, adv["id"], "tractionboard")
    payment = {"type": "track", "event": "Payment Made"}
    _tractionboard_customer(
        web,
        src,
        factories.click(web, offer["id"], first["id"]),
        "ann",
        {**payment, "properties": {"revenue": "100.00", "currency": "USD"}},
        {**payment, "properties": {"revenue": 50}},
        {"type": "track", "event": "Refund Received", "properties": {"revenue": "30"}},
    )
    _tractionboard_customer(
        web,
        src,
        factories.click(web, offer["id"], first["id"]),
        "bob",
        {**payment, "properties": {"amount": "20"}},
        {"type": "track", "event": "cancel"},
    )
    _tractionboard_customer(
        web, src, factories.click(web, offer["id"], second["id"]), "cyd", {**payment, "properties": {"revenue": "10"}}
    )
    response = api.get("/api/v1/reports/customers", params={"group_by": "partner"})
    assert response.status_code == 200, response.text
    rows = {row["partner"]: row for row in response.json()["rows"]}
    a, b = rows[first["id"]], rows[second["id"]]
    assert (a["new_customers"], a["payments"], a["payment_amount"], a["refunds"], a["refund_amount"]) == (
        2,
        3,
        "170.00",
        1,
        "30.00",
    )
    assert (a["net_revenue"], a["churned"], a["churn_rate"], a["acquisition_cost"], a["revenue_per_customer"]) == (
        "140.00",
        1,
        "0.50",
        "8.00",
        "70.00",
    )
    assert (b["new_customers"], b["net_revenue"], b["churned"], b["acquisition_cost"]) == (1, "10.00", 0, "8.00")
    assert response.json()["totals"]["new_customers"] == 3
    [bob] = customers(api, user_id="bob")
    assert (bob["status"], bob["partner_id"], bob["traits"], bob["visits"]) == (
        "churned",
        first["id"],
        {"plan": "pro"},
        1,
    )
    assert bob["churned_at"] is not None and bob["signed_up_at"] is not None


def test_customers_alias_group_and_audiences(api: httpx.Client, web: httpx.Client) -> None:
    adv, offer, partner = factories.program(api)
    tid = factories.click(web, offer["id"], partner["id"])
    src = source(api, adv["id"], "tractionboard")
    send(web, src,
         {"type": "page", "anonymousId": "a-9", "context": {"page": {"url": f"https://x.example/?tl_tid={tid}"}},
          "messageId": "c-1"},
         {"type": "identify", "anonymousId": "a-9", "userId": "old-id", "messageId": "c-2",
          "traits": {"email": "d@example.com", "first_time_shopper": True, "vip_buyers": True},
          "context": {"personas": {"computation_class": "audience", "computation_key": "first_time_shopper"}}},
         {"type": "alias", "previousId": "old-id", "userId": "new-id", "messageId": "c-3"},
         {"type": "group", "userId": "new-id", "groupId": "acme", "traits": {"plan": "enterprise"},
          "messageId": "c-4"},
         {"type": "identify", "userId": "new-id", "traits": {"vip_buyers": False}, "messageId": "c-5",
          "context": {"personas": {"computation_class": "audience", "computation_key": "vip_buyers"}}},
         {"type": "track", "event": "Audience Entered", "userId": "new-id", "messageId": "c-6",
          "properties": {"audience_key": "cart_abandoners", "cart_abandoners": True}})  # fmt: skip
    [person] = customers(api, source_id=src["id"])
    assert (person["user_id"], person["previous_ids"], person["anonymous_ids"]) == ("new-id", ["old-id"], ["a-9"])
    assert (person["group_id"], person["group_traits"]) == ("acme", {"plan": "enterprise"})
    assert person["audiences"] == ["cart_abandoners", "first_time_shopper"]
    assert person["traits"] == {"email": "d@example.com", "vip_buyers": True}  # only Engage's key is an audience
    assert (person["transaction_id"], person["partner_id"]) == (tid, partner["id"])
    assert customers(api, user_id="old-id") == []
    assert [c["id"] for c in customers(api, anonymous_id="a-9")] == [person["id"]]
    later = {
        "type": "track",
        "event": "Payment Made",
        "userId": "old-id",
        "messageId": "c-7",
        "properties": {"revenue": "5"},
    }
    send(web, src, later)
    assert [c["id"] for c in customers(api, source_id=src["id"])] == [person["id"]]


def test_default_e_commerce_order_and_refund(api: httpx.Client, web: httpx.Client) -> None:
    adv, offer, partner = factories.program(
        api, revenue={"type": "cps", "percent": "20"}, payout={"type": "cps", "percent": "10"}
    )
    upsell = factories.event(api, offer["id"], name="Subscription Renewed")
    tid = factories.click(web, offer["id"], partner["id"])
    src = source(api, adv["id"])
    send(web, src,
         {"type": "track", "event": "Product Added", "anonymousId": "shopper", "messageId": "d-1",
          "context": {"referrer": {"type": "tracklane", "id": tid}}},
         {"type": "track", "event": "Order Completed", "anonymousId": "shopper", "messageId": "d-2",
          "properties": {"order_id": "D-1", "total": "80.00", "subtotal": "70", "currency": "USD"}},
         {"type": "track", "event": "Subscription Renewed", "anonymousId": "shopper", "messageId": "d-3",
          "properties": {"revenue": "15"}},
         {"type": "track", "event": "Order Completed", "anonymousId": "shopper", "messageId": "d-4",
          "properties": {"order_id": "D-2", "revenue": "5", "currency": "EUR"}})  # fmt: skip
    base, renewal = sorted(conversions(api, transaction_id=tid), key=lambda c: c["id"])
    assert (base["amount"], base["revenue"], base["payout"], base["status"]) == ("80.00", "16.00", "8.00", "approved")
    assert (renewal["event_id"], renewal["amount"]) == (upsell["id"], "15.00")
    refused = messages(api, src["id"], message_id="d-4")[0]
    assert refused["outcome"] == "refused" and "currency" in refused["detail"]
    send(
        web,
        src,
        {
            "type": "track",
            "event": "Order Refunded",
            "userId": "late-user",
            "anonymousId": "shopper",
            "messageId": "d-5",
            "properties": {"order_id": "D-1", "total": "80.00"},
        },
    )
    refunded = api.get(f"/api/v1/conversions/{base['id']}").json()
    assert (refunded["status"], refunded["status_reason"]) == ("rejected", "refunded")
    assert refunded["trace"][-1]["step"] == "status_change"
    report = api.get("/api/v1/reports/customers", params={"group_by": "partner"}).json()
    [row] = report["rows"]
    assert (row["partner"], row["payments"], row["payment_amount"], row["refund_amount"], row["net_revenue"]) == (
        partner["id"],
        1,
        "80.00",
        "80.00",
        "0.00",
    )
