"""The Tractionboard destination page, walked top to bottom through the real server: a `tractionboard` source
takes page, identify, track, group, alias and screen; `page` and `screen` are visits; `identify` sets the
external user id and traits; `Payment Made` and `Refund Received` make the revenue, `cancel` churns, `signup`
is a new customer (each counted once per customer or payment); every other track is a custom event counted
per customer and partner; `group` saves an attribute; `alias` re-keys the customer for good; Engage audiences
arrive as identify traits; and the customer metrics are right under every grouping and filter."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests import factories
from tests.segment_support import customers, messages, source
from tests.servers import RunningServer

BROWSER = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36"
METRICS = ("new_customers", "paying_customers", "payments", "payment_amount", "refunds", "refund_amount",
           "net_revenue", "churned", "churn_rate", "payout", "acquisition_cost", "revenue_per_customer")  # fmt: skip


@pytest.fixture
def browser(server: RunningServer) -> Iterator[httpx.Client]:
    """A visitor's browser: tracking links and the site's Segment calls (a real browser's User-Agent)."""
    with httpx.Client(base_url=server.base_url, headers={"User-Agent": BROWSER}, timeout=30) as client:
        yield client


def click(browser: httpx.Client, offer: dict[str, Any], partner: dict[str, Any]) -> str:
    response = browser.get(f"/r/{offer['id']}/{partner['id']}")
    assert response.status_code == 302, response.text
    return response.cookies[f"tl_{offer['id']}"]


def send(browser: httpx.Client, src: dict[str, Any], *batch: dict[str, Any]) -> None:
    response = browser.post("/v1/batch", json={"batch": list(batch)}, auth=(src["write_key"], ""))
    assert (response.status_code, response.json()) == (200, {"success": True}), response.text


def landing(tid: str) -> dict[str, Any]:
    return {"page": {"url": f"https://app.example/welcome?tl_tid={tid}"}}


def customer_of(api: httpx.Client, user_id: str) -> dict[str, Any]:
    [found] = customers(api, user_id=user_id)
    return found


def report(api: httpx.Client, group_by: str, **filters: Any) -> dict[str, Any]:
    response = api.get("/api/v1/reports/customers", params={"group_by": group_by, **filters})
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def metrics(row: dict[str, Any]) -> tuple[Any, ...]:
    return tuple(row[name] for name in METRICS)


def events_report(api: httpx.Client, **params: Any) -> dict[str, Any]:
    response = api.get("/api/v1/reports/customers/events", params=params)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def signed_up(browser: httpx.Client, src: dict[str, Any], tid: str, user: str, *calls: dict[str, Any]) -> None:
    """A visit from a partner's link, the login (identify), the signup, then the given calls as the user."""
    send(browser, src,
         {"type": "page", "anonymousId": f"anon-{user}", "context": landing(tid), "messageId": f"{user}-page"},
         {"type": "identify", "anonymousId": f"anon-{user}", "userId": user, "messageId": f"{user}-identify"},
         {"type": "track", "event": "signup", "userId": user, "messageId": f"{user}-signup"},
         *({"userId": user, "messageId": f"{user}-{n}", **call} for n, call in enumerate(calls)))  # fmt: skip


def test_getting_started_a_source_takes_every_method_the_destination_supports(
    api: httpx.Client, browser: httpx.Client
) -> None:
    """ "Tractionboard supports the page, identify, track, group, alias and screen methods": each one sent
    alone to its route is stored and applied to the one customer, with only the host changed."""
    adv, offer, partner = factories.program(api)
    src = source(api, adv["id"], "tractionboard")
    effective = src["effective_settings"]
    assert (effective["signup_events"], effective["payment_events"], effective["customer_refund_events"],
            effective["churn_events"]) == (["signup"], ["Payment Made"], ["Refund Received"], ["cancel"])  # fmt: skip
    tid = click(browser, offer, partner)
    calls = [
        ("page", {"anonymousId": "a-1", "context": landing(tid), "name": "Welcome"}),
        ("identify", {"anonymousId": "a-1", "userId": "u-1", "traits": {"email": "ann@example.com"}}),
        ("track", {"userId": "u-1", "event": "Feature Used"}),
        ("group", {"userId": "u-1", "groupId": "acme", "traits": {"name": "Acme"}}),
        ("alias", {"previousId": "u-1", "userId": "u-2"}),
        ("screen", {"userId": "u-2", "name": "Dashboard"}),
    ]
    for n, (method, call) in enumerate(calls):
        response = browser.post(f"/v1/{method}", json={**call, "messageId": f"m-{n}"}, auth=(src["write_key"], ""))
        assert (response.status_code, response.json()) == (200, {"success": True}), (method, response.text)
    stored = {m["type"]: m for m in messages(api, src["id"])}
    assert sorted(stored) == sorted(method for method, _ in calls)
    [person] = customers(api, source_id=src["id"])
    assert {m["outcome"] for m in stored.values()} == {"customer"}
    assert {m["customer_id"] for m in stored.values()} == {person["id"]}
    assert (person["user_id"], person["previous_ids"], person["visits"], person["group_id"]) == (
        "u-2",
        ["u-1"],
        2,
        "acme",
    )
    assert (person["transaction_id"], person["partner_id"]) == (tid, partner["id"])
    assert person["events"] == {"Feature Used": 1}


def test_page_and_screen_are_visits(api: httpx.Client, browser: httpx.Client) -> None:
    """ "The Page method is equivalent to our visit event"; "Screen: it's the same that the page method"."""
    adv, offer, partner = factories.program(api)
    src = source(api, adv["id"], "tractionboard")
    tid = click(browser, offer, partner)
    send(browser, src,
         {"type": "page", "anonymousId": "v-1", "context": landing(tid), "messageId": "v-page-1"},
         {"type": "page", "anonymousId": "v-1", "name": "Pricing", "messageId": "v-page-2"},
         {"type": "screen", "anonymousId": "v-1", "name": "Home", "messageId": "v-screen"},
         {"type": "page", "anonymousId": "v-1", "name": "Pricing", "messageId": "v-page-2"})  # fmt: skip
    [visitor] = customers(api, anonymous_id="v-1")  # the retried page counted once
    assert (visitor["visits"], visitor["transaction_id"], visitor["offer_id"], visitor["partner_id"]) == (
        3,
        tid,
        offer["id"],
        partner["id"],
    )
    assert visitor["user_id"] is None and visitor["signed_up_at"] is None and visitor["events"] == {}
    assert {m["message_id"]: m["outcome"] for m in messages(api, src["id"])} == {
        "v-page-1": "customer",
        "v-page-2": "customer",
        "v-screen": "customer",
    }


def test_identify_sets_the_external_user_id_and_the_traits_as_attributes(
    api: httpx.Client, browser: httpx.Client
) -> None:
    """ "userId as Tractionboard's External User ID, as if it were our login event. Segment's special traits
    will be recognized as Tractionboard's attributes, and you can use as many as you want"."""
    adv, offer, partner = factories.program(api)
    src = source(api, adv["id"], "tractionboard")
    tid = click(browser, offer, partner)
    send(browser, src,
         {"type": "page", "anonymousId": "anon-7", "context": landing(tid), "messageId": "i-1"},
         {"type": "identify", "anonymousId": "anon-7", "userId": "ext-7", "messageId": "i-2",
          "traits": {"email": "ann@example.com", "firstName": "Ann", "plan": "pro", "seats": 3}},
         {"type": "identify", "userId": "ext-7", "traits": {"plan": "business", "company": {"name": "Acme"}},
          "messageId": "i-3"})  # fmt: skip
    person = customer_of(api, "ext-7")
    assert person["anonymous_ids"] == ["anon-7"] and person["transaction_id"] == tid
    assert person["traits"] == {"email": "ann@example.com", "firstName": "Ann", "plan": "business", "seats": 3,
                                "company": {"name": "Acme"}}  # fmt: skip
    assert [c["id"] for c in customers(api, anonymous_id="anon-7")] == [person["id"]]


def test_payment_made_and_refund_received_count_once_per_payment(api: httpx.Client, browser: httpx.Client) -> None:
    """ "Payment Made ... used to get the earnings of certain user"; "Refund Received ... used to subtract this
    amount to the revenue". A payment counts once per its own id, else once per messageId."""
    adv = factories.advertiser(api)
    offer = factories.offer(api, adv["id"], payout={"type": "cpl", "amount": "8.00"})
    partner = factories.partner(api)
    src = source(api, adv["id"], "tractionboard")
    paid = {"type": "track", "event": "Payment Made"}
    signed_up(browser, src, click(browser, offer, partner), "ann",
              {**paid, "properties": {"payment_id": "pay-1", "revenue": "100.00", "currency": "USD"}},
              {**paid, "properties": {"payment_id": "pay-1", "revenue": "100.00"}, "messageId": "ann-resent"},
              {**paid, "properties": {"amount": 50}},
              {"type": "track", "event": "Refund Received", "properties": {"revenue": "30"}})  # fmt: skip
    send(browser, src, {**paid, "userId": "ann", "messageId": "ann-2", "properties": {"amount": 50}})  # a retry
    [row] = report(api, "partner")["rows"]
    assert row["partner"] == partner["id"]
    assert metrics(row) == (1, 1, 2, "150.00", 1, "30.00", "120.00", 0, "0.00", "8.00", "8.00", "120.00")
    resent = messages(api, src["id"], message_id="ann-resent")[0]
    assert resent["outcome"] == "customer" and "payment already counted" in resent["detail"], resent
    assert len(messages(api, src["id"], message_id="ann-2")) == 1
    ann = customer_of(api, "ann")
    assert ann["status"] == "active" and ann["events"] == {}


def test_signup_and_cancel_count_once_per_customer(api: httpx.Client, browser: httpx.Client) -> None:
    """ "cancel ... will update the user status to canceled, and it will count in the churn rate metric";
    "Signup events are used to compose the UAC metric". A second signup or cancel of a customer counts
    nothing more (and its signup conversion is a duplicate, so the acquisition cost stays)."""
    adv = factories.advertiser(api)
    offer = factories.offer(api, adv["id"], payout={"type": "cpl", "amount": "9.00"})
    partner = factories.partner(api)
    src = source(api, adv["id"], "tractionboard")
    cancel = {"type": "track", "event": "cancel"}
    signed_up(browser, src, click(browser, offer, partner), "u1", cancel)
    signed_up(browser, src, click(browser, offer, partner), "u2")
    signed_up(browser, src, click(browser, offer, partner), "u3")
    before = customer_of(api, "u1")
    assert (before["status"], report(api, "partner")["totals"]["churn_rate"]) == ("churned", "0.3333")
    send(browser, src,
         {"type": "track", "event": "signup", "userId": "u1", "messageId": "u1-signup-again"},
         {**cancel, "userId": "u1", "messageId": "u1-cancel-again"},
         {"type": "track", "event": "signup", "userId": "u2", "messageId": "u2-signup-again"},
         {"type": "track", "event": "signup", "userId": "u2", "messageId": "u2-signup-third"})  # fmt: skip
    [row] = report(api, "partner")["rows"]
    assert (row["new_customers"], row["churned"], row["churn_rate"], row["payout"], row["acquisition_cost"]) == (
        3,
        1,
        "0.3333",
        "27.00",
        "9.00",
    )
    after = customer_of(api, "u1")
    assert (after["status"], after["signed_up_at"], after["churned_at"]) == (
        "churned",
        before["signed_up_at"],
        before["churned_at"],
    )
    again = messages(api, src["id"], message_id="u1-cancel-again")[0]
    assert "churn already counted" in again["detail"], again
    signup_again = messages(api, src["id"], message_id="u2-signup-again")[0]
    assert "signup already counted" in signup_again["detail"] and "duplicate" in signup_again["detail"]


def test_custom_events_are_counted_per_customer_and_partner_and_reportable(
    api: httpx.Client, browser: httpx.Client
) -> None:
    """ "When you track an event, we will send that event to Tractionboard as a custom event": each counts per
    customer and partner, once per message, and the report filters by partner, offer, source, customer,
    event and time."""
    adv, offer, first = factories.program(api)
    second = factories.partner(api)
    src = source(api, adv["id"], "tractionboard")
    used, exported = {"type": "track", "event": "Feature Used"}, {"type": "track", "event": "Report Exported"}
    signed_up(browser, src, click(browser, offer, first), "ann", used, used, exported)
    signed_up(browser, src, click(browser, offer, second), "bob", used)
    send(browser, src, {**used, "userId": "ann", "messageId": "ann-0"})  # a retry counts once
    # An event sent before the person's click is known counts for that click's partner once it is linked.
    send(browser, src,
         {"type": "identify", "anonymousId": "anon-cyd", "userId": "cyd", "messageId": "cyd-identify",
          "traits": {"plan": "free"}},
         {**exported, "userId": "cyd", "messageId": "cyd-export"},
         {"type": "page", "anonymousId": "anon-cyd", "context": landing(click(browser, offer, second)),
          "messageId": "cyd-page"})  # fmt: skip
    ann, bob, cyd = customer_of(api, "ann"), customer_of(api, "bob"), customer_of(api, "cyd")
    assert ann["events"] == {"Feature Used": 2, "Report Exported": 1}
    assert (bob["events"], cyd["events"], cyd["partner_id"]) == ({"Feature Used": 1}, {"Report Exported": 1},
                                                                 second["id"])  # fmt: skip
    assert sorted(c["id"] for c in customers(api, event="Report Exported")) == sorted([ann["id"], cyd["id"]])
    assert customers(api, event="Feature Used", partner_id=second["id"]) == [bob]
    assert customers(api, event="Never Sent") == []

    by_partner = events_report(api, group_by="partner")
    assert by_partner["rows"] == [
        {"partner": first["id"], "event": "Feature Used", "count": 2, "customers": 1},
        {"partner": first["id"], "event": "Report Exported", "count": 1, "customers": 1},
        {"partner": second["id"], "event": "Feature Used", "count": 1, "customers": 1},
        {"partner": second["id"], "event": "Report Exported", "count": 1, "customers": 1},
    ]
    assert by_partner["totals"] == [
        {"event": "Feature Used", "count": 3, "customers": 2},
        {"event": "Report Exported", "count": 2, "customers": 2},
    ]
    exports = events_report(api, group_by="partner", event="Report Exported", partner_id=second["id"])
    assert exports["rows"] == [{"partner": second["id"], "event": "Report Exported", "count": 1, "customers": 1}]
    per_customer = events_report(api, group_by="customer", customer_id=ann["id"])["rows"]
    assert [(r["customer"], r["event"], r["count"]) for r in per_customer] == [
        (ann["id"], "Feature Used", 2),
        (ann["id"], "Report Exported", 1),
    ]
    by_offer = events_report(api, group_by="offer", source_id=src["id"])["rows"]
    assert [(r["offer"], r["event"], r["count"]) for r in by_offer] == [
        (offer["id"], "Feature Used", 3),
        (offer["id"], "Report Exported", 2),
    ]
    assert events_report(api, group_by="partner", **{"from": "2999-01-01"})["rows"] == []
    bad = api.get("/api/v1/reports/customers/events", params={"group_by": "country"})
    assert (bad.status_code, bad.json()["field"]) == (400, "group_by"), bad.text
    assert report(api, "partner")["totals"]["payments"] == 0  # custom events are no payments


def test_group_saves_the_account_as_a_customer_attribute(api: httpx.Client, browser: httpx.Client) -> None:
    """ "The information provided by this method will be saved as a user's attribute"."""
    adv, offer, partner = factories.program(api)
    src = source(api, adv["id"], "tractionboard")
    signed_up(browser, src, click(browser, offer, partner), "gus",
              {"type": "group", "groupId": "acme", "traits": {"name": "Acme", "plan": "team"}},
              {"type": "group", "groupId": "acme", "traits": {"employees": 40}})  # fmt: skip
    gus = customer_of(api, "gus")
    assert (gus["group_id"], gus["group_traits"]) == ("acme", {"name": "Acme", "plan": "team", "employees": 40})


def test_alias_changes_the_id_for_good_keeping_the_old_one(api: httpx.Client, browser: httpx.Client) -> None:
    """ "With this method we will change the id to a certain user saving the old one as a attribute of the new
    one": later calls under either id reach the same customer, which keeps the new id."""
    adv = factories.advertiser(api)
    offer = factories.offer(api, adv["id"], payout={"type": "cpl", "amount": "8.00"})
    partner = factories.partner(api)
    src = source(api, adv["id"], "tractionboard")
    signed_up(browser, src, click(browser, offer, partner), "u3",
              {"type": "alias", "previousId": "u3", "userId": "u3-new"},
              {"type": "track", "event": "Payment Made", "properties": {"revenue": "12"}},  # under the old id
              {"type": "identify", "traits": {"plan": "pro"}},
              {"type": "track", "event": "Feature Used"})  # fmt: skip
    send(browser, src, {"type": "track", "event": "Payment Made", "userId": "u3-new", "messageId": "new-pay",
                        "properties": {"revenue": "8"}})  # fmt: skip
    [person] = customers(api, source_id=src["id"])
    assert (person["user_id"], person["previous_ids"], person["anonymous_ids"]) == ("u3-new", ["u3"], ["anon-u3"])
    assert (person["traits"], person["events"], person["partner_id"]) == ({"plan": "pro"}, {"Feature Used": 1},
                                                                          partner["id"])  # fmt: skip
    assert customers(api, user_id="u3") == [] and customer_of(api, "u3-new")["id"] == person["id"]
    assert {m["customer_id"] for m in messages(api, src["id"])} == {person["id"]}
    [row] = report(api, "partner")["rows"]
    assert (row["new_customers"], row["payments"], row["payment_amount"]) == (1, 2, "20.00")

    # An alias of an id never seen before: the old id still reaches the customer afterwards.
    send(browser, src,
         {"type": "alias", "previousId": "guest-9", "userId": "member-9", "messageId": "a-9"},
         {"type": "identify", "userId": "guest-9", "traits": {"plan": "free"}, "messageId": "a-10"},
         {"type": "track", "event": "Feature Used", "userId": "guest-9", "messageId": "a-11"})  # fmt: skip
    member = customer_of(api, "member-9")
    assert (member["previous_ids"], member["traits"], member["events"]) == (["guest-9"], {"plan": "free"},
                                                                           {"Feature Used": 1})  # fmt: skip
    assert len(customers(api, source_id=src["id"])) == 2


def test_engage_audiences_arrive_as_user_properties(api: httpx.Client, browser: httpx.Client) -> None:
    """ "The property name is the snake_cased version of the audience name, with a true/false value to
    indicate membership": Engage's identify sets the membership, and clears it with false."""
    adv, offer, partner = factories.program(api)
    src = source(api, adv["id"], "tractionboard")
    engage = {"personas": {"computation_class": "audience", "computation_key": "order_completed_last_30days"}}
    signed_up(browser, src, click(browser, offer, partner), "eva",
              {"type": "identify", "traits": {"order_completed_last_30days": True}, "context": engage})  # fmt: skip
    assert customer_of(api, "eva")["audiences"] == ["order_completed_last_30days"]
    send(browser, src, {"type": "identify", "userId": "eva", "traits": {"order_completed_last_30days": False},
                        "context": engage, "messageId": "eva-left"})  # fmt: skip
    eva = customer_of(api, "eva")
    assert eva["audiences"] == [] and "order_completed_last_30days" not in eva["traits"]


def test_customer_metrics_are_right_under_every_grouping_and_filter(api: httpx.Client, browser: httpx.Client) -> None:
    """New and paying customers, payments, refunds, net revenue, churn, acquisition cost (the payout of the
    group's signups ÷ its new customers) and revenue per customer, per partner, offer and source, each
    narrowed by the others; a conversion's payout counts for the source whose message recorded it."""
    adv = factories.advertiser(api)
    premium = factories.offer(api, adv["id"], payout={"type": "cpl", "amount": "8.00"})
    basic = factories.offer(api, adv["id"], payout={"type": "cpl", "amount": "4.00"})
    p1, p2 = factories.partner(api), factories.partner(api)
    web_app, mobile = source(api, adv["id"], "tractionboard"), source(api, adv["id"], "tractionboard")
    paid, refund = {"type": "track", "event": "Payment Made"}, {"type": "track", "event": "Refund Received"}
    cancel = {"type": "track", "event": "cancel"}
    signed_up(browser, web_app, click(browser, premium, p1), "ann",
              {**paid, "properties": {"revenue": "100"}}, {**refund, "properties": {"revenue": "30"}})  # fmt: skip
    signed_up(browser, mobile, click(browser, basic, p1), "bob", {**paid, "properties": {"revenue": "20"}}, cancel)
    signed_up(browser, mobile, click(browser, premium, p2), "cyd", {**paid, "properties": {"revenue": "10"}})
    signed_up(browser, web_app, click(browser, basic, p2), "dan", cancel)
    signed_up(browser, web_app, click(browser, premium, p1), "eve", {**paid, "properties": {"revenue": "50"}})

    by_partner = report(api, "partner")
    assert [(r["partner"], *metrics(r)) for r in by_partner["rows"]] == [
        (p1["id"], 3, 3, 3, "170.00", 1, "30.00", "140.00", 1, "0.3333", "20.00", "6.67", "46.67"),
        (p2["id"], 2, 1, 1, "10.00", 0, "0.00", "10.00", 1, "0.50", "12.00", "6.00", "5.00"),
    ]
    assert metrics(by_partner["totals"]) == (5, 4, 4, "180.00", 1, "30.00", "150.00", 2, "0.40", "32.00", "6.40",
                                             "30.00")  # fmt: skip
    assert [(r["offer"], *metrics(r)) for r in report(api, "offer")["rows"]] == [
        (premium["id"], 3, 3, 3, "160.00", 1, "30.00", "130.00", 0, "0.00", "24.00", "8.00", "43.33"),
        (basic["id"], 2, 1, 1, "20.00", 0, "0.00", "20.00", 2, "1.00", "8.00", "4.00", "10.00"),
    ]
    by_source = report(api, "source")
    assert [(r["source"], *metrics(r)) for r in by_source["rows"]] == [
        (web_app["id"], 3, 2, 2, "150.00", 1, "30.00", "120.00", 1, "0.3333", "20.00", "6.67", "40.00"),
        (mobile["id"], 2, 2, 2, "30.00", 0, "0.00", "30.00", 1, "0.50", "12.00", "6.00", "15.00"),
    ]
    assert metrics(by_source["totals"]) == metrics(by_partner["totals"])

    narrowed = report(api, "partner", source_id=web_app["id"])["rows"]
    assert [(r["partner"], *metrics(r)) for r in narrowed] == [
        (p1["id"], 2, 2, 2, "150.00", 1, "30.00", "120.00", 0, "0.00", "16.00", "8.00", "60.00"),
        (p2["id"], 1, 0, 0, "0.00", 0, "0.00", "0.00", 1, "1.00", "4.00", "4.00", "0.00"),
    ]
    per_source = report(api, "source", partner_id=p2["id"])["rows"]
    assert [(r["source"], r["new_customers"], r["net_revenue"], r["payout"]) for r in per_source] == [
        (web_app["id"], 1, "0.00", "4.00"),
        (mobile["id"], 1, "10.00", "8.00"),
    ]
    [bob] = report(api, "offer", source_id=mobile["id"], partner_id=p1["id"])["rows"]
    assert (bob["offer"], *metrics(bob)) == (basic["id"], 1, 1, 1, "20.00", 0, "0.00", "20.00", 1, "1.00", "4.00",
                                             "4.00", "20.00")  # fmt: skip
    [premium_only] = report(api, "source", offer_id=premium["id"], source_id=mobile["id"])["rows"]
    assert (premium_only["source"], premium_only["new_customers"], premium_only["payout"]) == (mobile["id"], 1, "8.00")
    assert report(api, "partner", **{"from": "2999-01-01"})["rows"] == []
    assert report(api, "partner", to="2000-01-01")["rows"] == []
