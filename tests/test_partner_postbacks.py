"""Partner postbacks through the real server to a real receiver: macros expanded and percent-encoded,
scope and method honoured, unknown macros refused on save, success rule and auto-deactivation."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qs, unquote

import httpx

from tests import factories
from tests.receiver import Receiver, Reply, always, poll


def postback(admin: httpx.Client, **fields: Any) -> dict[str, Any]:
    return factories.created(admin.post("/api/v1/partner-postbacks", json=fields))


def test_a_partner_postback_arrives_with_every_value_correctly_encoded(
    admin: httpx.Client, visitor: httpx.Client, receiver: Receiver
) -> None:
    adv, offer, partner = factories.program(admin)
    template = (receiver.url + "/pb/{sub2}/{order_id}?tid={transaction_id}&s1={sub1}&pay={payout}&amt={amount}"
                "&cur={currency}&st={status}&adv={adv1}&off={offer_id}&conv={conversion_id}&none={sub3}&ts={timestamp}")
    created = postback(admin, partner_id=partner["id"], offer_id=offer["id"], url=template)
    assert (created["method"], created["on"], created["status"]) == ("GET", "conversion", "active")
    subs = {"sub1": "a b&c=d+e%f", "sub2": "x/y?z#w"}
    order = "Ordér #1/2"
    tid = factories.click(visitor, offer["id"], partner["id"], **subs)
    result = visitor.get("/postback", params={"transaction_id": tid, "secure": adv["postback_token"],
                                              "amount": "120.50", "order_id": order, "adv1": "ünï&cödé"}).json()

    (request,) = receiver.wait_for(1)
    assert request.method == "GET"
    path, _, query = request.target.partition("?")
    assert path == "/pb/x%2Fy%3Fz%23w/Ord%C3%A9r%20%231%2F2"
    assert [unquote(segment) for segment in path.split("/")[2:]] == [subs["sub2"], order]
    values = parse_qs(query, keep_blank_values=True)
    assert {k: v[0] for k, v in values.items()} == {
        "tid": tid, "s1": subs["sub1"], "pay": "6.00", "amt": "120.50", "cur": "USD", "st": "approved",
        "adv": "ünï&cödé", "off": str(offer["id"]), "conv": str(result["conversion_id"]), "none": "",
        "ts": values["ts"][0],
    }
    assert values["ts"][0].isdigit()
    assert "s1=a%20b%26c%3Dd%2Be%25f" in query, "every reserved character is percent-encoded"
    (delivery,) = poll(lambda: [d for d in admin.get("/api/v1/deliveries").json()["data"]
                                if d["status"] == "succeeded"])
    assert (delivery["kind"], delivery["postback_id"], delivery["event_type"]) == ("postback", created["id"],
                                                                                   "conversion")


def test_scope_event_type_and_post_method(admin: httpx.Client, visitor: httpx.Client, receiver: Receiver) -> None:
    adv, offer, partner = factories.program(admin)
    other_offer = factories.offer(admin, adv["id"])
    factories.event(admin, offer["id"], name="purchase")
    postback(admin, partner_id=partner["id"], url=receiver.url + "/event?e={event_name}", on="event", method="POST")
    postback(admin, partner_id=partner["id"], offer_id=other_offer["id"], url=receiver.url + "/other-offer")
    tid = factories.click(visitor, offer["id"], partner["id"])
    visitor.get("/postback", params={"transaction_id": tid, "secure": adv["postback_token"]})
    visitor.get("/postback", params={"transaction_id": tid, "secure": adv["postback_token"], "event_name": "purchase",
                                     "amount": "40"})
    (request,) = receiver.wait_for(1)
    assert (request.method, request.target) == ("POST", "/event?e=purchase")
    body = json.loads(request.body)
    assert (body["event_name"], body["transaction_id"], body["amount"]) == ("purchase", tid, "40.00")
    poll(lambda: all(d["status"] == "succeeded" for d in admin.get("/api/v1/deliveries").json()["data"]))
    assert len(receiver.received) == 1, "neither the base conversion nor the other offer fires these postbacks"


def test_unknown_macros_and_bad_fields_are_refused_on_save(admin: httpx.Client) -> None:
    partner = factories.partner(admin)
    cases = [
        ({"url": "https://p.example/pb?c={click_id}"}, "url", "{click_id}"),
        ({"url": "https://{sub1}.p.example/pb"}, "url", "path and the query"),
        ({"url": "https://p.example/pb", "method": "PUT"}, "method", "GET or POST"),
        ({"url": "https://p.example/pb", "on": "click"}, "on", "conversion"),
        ({"url": "https://p.example/pb", "delay_seconds": 301}, "delay_seconds", "300"),
        ({"url": "https://p.example/pb", "offer_id": 999}, "offer_id", "999"),
        ({"url": "http://192.168.1.1/pb?t={transaction_id}"}, "url", "private"),
    ]
    for fields, field, text in cases:
        response = admin.post("/api/v1/partner-postbacks", json={"partner_id": partner["id"], **fields})
        assert (response.status_code, response.json()["field"]) == (400, field), response.text
        assert text in response.json()["message"]
    assert admin.get("/api/v1/partner-postbacks").json()["data"] == []


def test_success_rule_and_deactivation_after_ten_consecutive_failures(
    admin: httpx.Client, visitor: httpx.Client, receiver: Receiver
) -> None:
    receiver.script = always(200, body=b"ERROR: unknown click")
    adv, offer, partner = factories.program(admin)
    created = postback(admin, partner_id=partner["id"], url=receiver.url + "/pb?t={transaction_id}",
                       success_body_contains="SUCCESS")
    for _ in range(10):
        tid = factories.click(visitor, offer["id"], partner["id"])
        visitor.get("/postback", params={"transaction_id": tid, "secure": adv["postback_token"]})

    def deactivated() -> dict[str, Any] | None:
        current: dict[str, Any] = admin.get(f"/api/v1/partner-postbacks/{created['id']}").json()
        return current if current["status"] == "inactive" else None

    inactive = poll(deactivated)
    assert "10 consecutive failures" in inactive["deactivated_reason"]
    log = admin.get("/api/v1/deliveries/1").json()["attempt_log"]
    assert log[0]["verdict"] == "failure" and log[0]["response_excerpt"] == "ERROR: unknown click"

    receiver.script = lambda _request, _index: Reply(200, b"SUCCESS")
    admin.patch(f"/api/v1/partner-postbacks/{created['id']}", json={"status": "active"})
    tid = factories.click(visitor, offer["id"], partner["id"])
    visitor.get("/postback", params={"transaction_id": tid, "secure": adv["postback_token"]})
    poll(lambda: any(r.target == f"/pb?t={tid}" for r in receiver.received))
    poll(lambda: admin.get(f"/api/v1/partner-postbacks/{created['id']}").json()["failure_count"] == 0)
