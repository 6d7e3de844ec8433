"""Partner postbacks through the real server to a real receiver: macros expanded and percent-encoded,
scope and method honoured, unknown macros refused on save, success rule and auto-deactivation; what a
partner may not see (revenue, the advertiser, adv1..adv5, an unshared amount, another's offer or postback)
never reaches it, whatever the template, the method or the key that saved it. A test sends sample values once
and never counts; a deleted postback is gone and fires no more, its delivery log kept; the partner portal and
the console do both through their forms."""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, unquote

import httpx
import pytest

from tests import factories
from tests.console import csrf_of, parsed, person, signed_in
from tests.receiver import Receiver, Reply, always, poll
from tests.servers import RunningServer
from tracklane.domain.model import Role
from tracklane.resources.partner_postbacks import PostbackConversion, PostbackConversionWithAmount

BROWSER = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36"
VISIBLE = set(PostbackConversion.__struct_fields__)
VISIBLE_WITH_AMOUNT = set(PostbackConversionWithAmount.__struct_fields__)
HIDDEN_KEYS = {"revenue", "revenue_type", "advertiser_id", "adv1", "adv2", "adv3", "adv4", "adv5", "profit"}


@pytest.fixture(autouse=True)
def _browser(visitor: httpx.Client) -> None:
    visitor.headers["User-Agent"] = BROWSER


def postback(admin: httpx.Client, **fields: Any) -> dict[str, Any]:
    return factories.created(admin.post("/api/v1/partner-postbacks", json=fields))


def keyed(hub: RunningServer, admin: httpx.Client, **owner: Any) -> httpx.Client:
    """A client with a new API key of this owner (`role=..., partner_id=...`)."""
    created = admin.post("/api/v1/api-keys", json=owner)
    assert created.status_code == 201, created.text
    return httpx.Client(base_url=hub.base_url, headers={"Authorization": f"Bearer {created.json()['key']}"}, timeout=30)


@pytest.fixture
def partner_key(hub: RunningServer, admin: httpx.Client) -> Iterator[tuple[dict[str, Any], httpx.Client]]:
    partner = factories.partner(admin)
    with keyed(hub, admin, role="partner", partner_id=partner["id"]) as client:
        yield partner, client


def test_a_partner_postback_arrives_with_every_value_correctly_encoded(
    admin: httpx.Client, visitor: httpx.Client, receiver: Receiver
) -> None:
    adv, offer, partner = factories.program(admin, share_amount_with_partners=True)
    template = (
        receiver.url + "/pb/{sub2}/{order_id}?tid={transaction_id}&s1={sub1}&pay={payout}&amt={amount}"
        "&cur={currency}&st={status}&off={offer_id}&conv={conversion_id}&none={sub3}&ts={timestamp}"
    )
    created = postback(admin, partner_id=partner["id"], offer_id=offer["id"], url=template)
    assert (created["method"], created["on"], created["status"]) == ("GET", "conversion", "active")
    subs = {"sub1": "a b&c=d+e%f", "sub2": "x/y?z#w"}
    order = "Ordér #1/2"
    tid = factories.click(visitor, offer["id"], partner["id"], **subs)
    result = visitor.get(
        "/postback",
        params={
            "transaction_id": tid,
            "secure": adv["postback_token"],
            "amount": "120.50",
            "order_id": order,
            "adv1": "ünï&cödé",
        },
    ).json()

    (request,) = receiver.wait_for(1)
    assert request.method == "GET"
    path, _, query = request.target.partition("?")
    assert path == "/pb/x%2Fy%3Fz%23w/Ord%C3%A9r%20%231%2F2"
    assert [unquote(segment) for segment in path.split("/")[2:]] == [subs["sub2"], order]
    values = parse_qs(query, keep_blank_values=True)
    assert {k: v[0] for k, v in values.items()} == {
        "tid": tid,
        "s1": subs["sub1"],
        "pay": "6.00",
        "amt": "120.50",
        "cur": "USD",
        "st": "approved",
        "off": str(offer["id"]),
        "conv": str(result["conversion_id"]),
        "none": "",
        "ts": values["ts"][0],
    }
    assert values["ts"][0].isdigit()
    assert "s1=a%20b%26c%3Dd%2Be%25f" in query, "every reserved character is percent-encoded"
    assert "n%C3%AF" not in request.target and "ünï" not in request.target, "adv1 is never sent to a partner"
    (delivery,) = poll(
        lambda: [d for d in admin.get("/api/v1/deliveries").json()["data"] if d["status"] == "succeeded"]
    )
    assert (delivery["kind"], delivery["postback_id"], delivery["event_type"]) == (
        "postback",
        created["id"],
        "conversion",
    )


def test_scope_event_type_and_post_method(admin: httpx.Client, visitor: httpx.Client, receiver: Receiver) -> None:
    adv, offer, partner = factories.program(admin)
    other_offer = factories.offer(admin, adv["id"])
    factories.event(admin, offer["id"], name="purchase")
    postback(admin, partner_id=partner["id"], url=receiver.url + "/event?e={event_name}", on="event", method="POST")
    postback(admin, partner_id=partner["id"], offer_id=other_offer["id"], url=receiver.url + "/other-offer")
    tid = factories.click(visitor, offer["id"], partner["id"])
    visitor.get("/postback", params={"transaction_id": tid, "secure": adv["postback_token"]})
    visitor.get(
        "/postback",
        params={"transaction_id": tid, "secure": adv["postback_token"], "event_name": "purchase", "amount": "40"},
    )
    (request,) = receiver.wait_for(1)
    assert (request.method, request.target) == ("POST", "/event?e=purchase")
    body = json.loads(request.body)
    assert (body["event_name"], body["transaction_id"], body["payout"]) == ("purchase", tid, "1.00")
    assert set(body) == VISIBLE, "the offer does not share the sale amount: no amount key at all"
    poll(lambda: all(d["status"] == "succeeded" for d in admin.get("/api/v1/deliveries").json()["data"]))
    assert len(receiver.received) == 1, "neither the base conversion nor the other offer fires these postbacks"


def test_unknown_macros_and_bad_fields_are_refused_on_save(admin: httpx.Client) -> None:
    partner = factories.partner(admin)
    cases = [
        ({"url": "https://p.example/pb?c={click_id}"}, "url", "{click_id}"),
        ({"url": "https://{sub1}.p.example/pb"}, "url", "path and the query"),
        ({"url": "https://p.example/pb", "method": "PUT"}, "method", "GET or POST"),
        ({"url": "https://p.example/pb", "on": "click"}, "on", "'click'"),
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
    created = postback(
        admin, partner_id=partner["id"], url=receiver.url + "/pb?t={transaction_id}", success_body_contains="SUCCESS"
    )
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


def test_no_delivery_ever_carries_revenue_adv_values_or_the_advertiser(
    admin: httpx.Client, visitor: httpx.Client, receiver: Receiver, partner_key: tuple[dict[str, Any], httpx.Client]
) -> None:
    """10 conversions, each fired by GET (a template of every macro a partner may see) and by POST."""
    partner, client = partner_key
    adv = factories.advertiser(admin)
    offer = factories.offer(
        admin, adv["id"], revenue={"type": "cpa", "amount": "37.31"}, payout={"type": "cpa", "amount": "11.17"}
    )
    every = "&".join(f"{name}={{{name}}}" for name in sorted(VISIBLE))
    factories.created(client.post("/api/v1/partner-postbacks", json={"url": f"{receiver.url}/get?{every}"}))
    postback(admin, partner_id=partner["id"], offer_id=offer["id"], method="post", url=receiver.url + "/post")
    advs = {f"adv{i}": f"secret-adv-{i}" for i in range(1, 6)}
    for n in range(10):
        tid = factories.click(visitor, offer["id"], partner["id"], sub1=f"s{n}")
        answer = visitor.get(
            "/postback",
            params={
                "transaction_id": tid,
                "secure": adv["postback_token"],
                "amount": "777.77",
                "order_id": f"O-{n}",
                **advs,
            },
        )
        assert answer.json()["result"] == "accepted", answer.text

    received = receiver.wait_for(20)
    assert sorted(r.method for r in received) == ["GET"] * 10 + ["POST"] * 10
    for request in received:
        sent = request.target + request.body.decode()
        for value in ("37.31", "777.77", *advs.values()):
            assert value not in sent, (value, sent)
        if request.method == "GET":
            query = {k: v[0] for k, v in parse_qs(request.target.partition("?")[2], keep_blank_values=True).items()}
            assert set(query) == VISIBLE and query["payout"] == "11.17" and query["partner_id"] == str(partner["id"])
        else:
            body = json.loads(request.body)
            assert set(body) == VISIBLE and not set(body) & HIDDEN_KEYS, body
            assert body["payout"] == "11.17" and body["order_id"].startswith("O-")
    detail = admin.get("/api/v1/deliveries", params={"kind": "postback"}).json()["data"]
    assert len(detail) == 20


def test_macros_a_partner_may_not_see_are_refused_on_save_whoever_saves(
    admin: httpx.Client, partner_key: tuple[dict[str, Any], httpx.Client]
) -> None:
    partner, client = partner_key
    adv = factories.advertiser(admin)
    sharing = factories.offer(admin, adv["id"], share_amount_with_partners=True)
    unshared = factories.offer(admin, adv["id"])
    base = "https://p.example/pb?t={transaction_id}"
    for who, api, owner in (("admin", admin, {"partner_id": partner["id"]}), ("partner key", client, {})):
        for macro in ("{revenue}", "{adv1}", "{advertiser_id}", "{adv5}"):
            refused = api.post("/api/v1/partner-postbacks", json={**owner, "url": f"{base}&x={macro}"})
            assert (refused.status_code, refused.json()["field"]) == (400, "url"), (who, refused.text)
            assert macro in refused.json()["message"], (who, refused.text)
        global_amount = api.post("/api/v1/partner-postbacks", json={**owner, "url": base + "&a={amount}"})
        assert (global_amount.status_code, global_amount.json()["field"]) == (400, "url"), global_amount.text
        assert "{amount}" in global_amount.json()["message"] and "offer_id" in global_amount.json()["message"]
        not_shared = api.post(
            "/api/v1/partner-postbacks", json={**owner, "offer_id": unshared["id"], "url": base + "&a={amount}"}
        )
        assert (not_shared.status_code, not_shared.json()["field"]) == (400, "url"), not_shared.text
        assert "{amount}" in not_shared.json()["message"] and "does not share" in not_shared.json()["message"]

        mine = factories.created(
            api.post(
                "/api/v1/partner-postbacks", json={**owner, "offer_id": sharing["id"], "url": base + "&a={amount}"}
            )
        )
        changes = [
            ({"url": base + "&r={revenue}"}, "{revenue}"),
            ({"url": base + "&a={adv1}"}, "{adv1}"),
            ({"offer_id": unshared["id"]}, "{amount}"),
            ({"offer_id": None}, "{amount}"),
        ]
        for change, macro in changes:
            refused = api.patch(f"/api/v1/partner-postbacks/{mine['id']}", json=change)
            assert (refused.status_code, refused.json()["field"]) == (400, "url"), (who, change, refused.text)
            assert macro in refused.json()["message"]
        moved = api.patch(f"/api/v1/partner-postbacks/{mine['id']}", json={"url": base + "&amt={amount}&p={payout}"})
        assert moved.status_code == 200 and moved.json()["url"].endswith("&amt={amount}&p={payout}")
        cannot = api.patch(f"/api/v1/partner-postbacks/{mine['id']}", json={"partner_id": partner["id"]})
        assert (cannot.status_code, cannot.json()["field"]) == (400, "partner_id")
        assert "cannot be changed" in cannot.json()["message"]
    missing_owner = admin.post("/api/v1/partner-postbacks", json={"url": base})
    assert (missing_owner.status_code, missing_owner.json()["field"]) == (400, "partner_id")
    assert len(admin.get("/api/v1/partner-postbacks").json()["data"]) == 2


def test_the_amount_is_delivered_only_where_the_offer_shares_it(
    admin: httpx.Client, visitor: httpx.Client, receiver: Receiver
) -> None:
    adv = factories.advertiser(admin)
    sharing = factories.offer(admin, adv["id"], share_amount_with_partners=True)
    unshared = factories.offer(admin, adv["id"])
    partner = factories.partner(admin)
    postback(admin, partner_id=partner["id"], offer_id=sharing["id"], url=receiver.url + "/get?amt={amount}")
    postback(admin, partner_id=partner["id"], method="POST", url=receiver.url + "/post")
    for offer, amount in ((sharing, "120.50"), (unshared, "99.99")):
        tid = factories.click(visitor, offer["id"], partner["id"])
        answer = visitor.get(
            "/postback", params={"transaction_id": tid, "secure": adv["postback_token"], "amount": amount}
        )
        assert answer.json()["result"] == "accepted", answer.text
    received = receiver.wait_for(3)
    (get,) = [r for r in received if r.method == "GET"]
    assert get.target == "/get?amt=120.50"
    bodies = {json.loads(r.body)["offer_id"]: json.loads(r.body) for r in received if r.method == "POST"}
    assert set(bodies[str(sharing["id"])]) == VISIBLE_WITH_AMOUNT and bodies[str(sharing["id"])]["amount"] == "120.50"
    assert set(bodies[str(unshared["id"])]) == VISIBLE and "99.99" not in json.dumps(bodies)


def _shape(response: httpx.Response, offer_id: int) -> tuple[int, str, str | None, str]:
    body = response.json()
    return response.status_code, body["error"], body.get("field"), re.sub(rf"\b{offer_id}\b", "N", body["message"])


def test_an_offer_a_partner_may_not_see_is_answered_like_one_that_does_not_exist(
    hub: RunningServer, admin: httpx.Client, partner_key: tuple[dict[str, Any], httpx.Client]
) -> None:
    partner, client = partner_key
    other_adv = factories.advertiser(admin)
    private = factories.offer(admin, other_adv["id"], visibility="private")
    public = factories.offer(admin, other_adv["id"])
    missing = 987654
    url = "https://p.example/pb?t={transaction_id}"
    mine = factories.created(client.post("/api/v1/partner-postbacks", json={"url": url}))

    answers = []
    for offer_id in (private["id"], missing):
        created = client.post("/api/v1/partner-postbacks", json={"url": url, "offer_id": offer_id})
        changed = client.patch(f"/api/v1/partner-postbacks/{mine['id']}", json={"offer_id": offer_id})
        answers += [_shape(created, offer_id), _shape(changed, offer_id)]
    assert len(set(answers)) == 1, answers
    assert answers[0] == (400, "invalid_parameter", "offer_id", "offer_id: offer N does not exist")
    assert client.get(f"/api/v1/partner-postbacks/{mine['id']}").json()["offer_id"] is None, "nothing changed"

    assert client.patch(f"/api/v1/partner-postbacks/{mine['id']}", json={"offer_id": public["id"]}).status_code == 200
    access = admin.post("/api/v1/offer-access", json={"offer_id": private["id"], "partner_id": partner["id"]})
    assert access.status_code == 201, access.text
    approved = client.patch(f"/api/v1/partner-postbacks/{mine['id']}", json={"offer_id": private["id"]})
    assert (approved.status_code, approved.json()["offer_id"]) == (200, private["id"])

    other = factories.partner(admin)
    theirs = postback(admin, partner_id=other["id"], url=url)
    for method, body in (("GET", None), ("PATCH", {"method": "POST"}), ("PATCH", {"offer_id": missing})):
        on_theirs = client.request(method, f"/api/v1/partner-postbacks/{theirs['id']}", json=body)
        on_missing = client.request(method, f"/api/v1/partner-postbacks/{missing}", json=body)
        assert on_theirs.status_code == on_missing.status_code == 404, on_theirs.text
        assert on_theirs.json()["error"] == on_missing.json()["error"] == "not_found"
    assert admin.get(f"/api/v1/partner-postbacks/{theirs['id']}").json() == theirs, "another's postback unchanged"
    assert [p["id"] for p in client.get("/api/v1/partner-postbacks").json()["data"]] == [mine["id"]]
    for_other = client.post("/api/v1/partner-postbacks", json={"url": url, "partner_id": other["id"]})
    assert for_other.status_code == 403

    with keyed(hub, admin, role="advertiser", advertiser_id=other_adv["id"]) as advertiser:
        calls = [
            ("POST", "/api/v1/partner-postbacks", {"url": url, "partner_id": other["id"]}),
            ("GET", "/api/v1/partner-postbacks", None),
            ("GET", f"/api/v1/partner-postbacks/{theirs['id']}", None),
            ("PATCH", f"/api/v1/partner-postbacks/{theirs['id']}", {"method": "POST"}),
        ]
        for method, path, body in calls:
            assert advertiser.request(method, path, json=body).status_code == 403, (method, path)


def _delivery(admin: httpx.Client, delivery_id: int, *statuses: str) -> dict[str, Any]:
    """The delivery once it has one of `statuses`."""

    def ended() -> dict[str, Any] | None:
        delivery: dict[str, Any] = admin.get(f"/api/v1/deliveries/{delivery_id}").json()
        return delivery if delivery["status"] in statuses else None

    found: dict[str, Any] = poll(ended)
    return found


def test_a_test_carries_sample_values_to_the_partners_url_once_and_never_counts(
    hub: RunningServer, admin: httpx.Client, receiver: Receiver, partner_key: tuple[dict[str, Any], httpx.Client]
) -> None:
    partner, client = partner_key
    adv = factories.advertiser(admin)
    sharing = factories.offer(admin, adv["id"], currency="EUR", share_amount_with_partners=True)
    every = "&".join(f"{name}={{{name}}}" for name in sorted(VISIBLE_WITH_AMOUNT))
    get_url = f"{receiver.url}/get?{every}"
    by_get = factories.created(
        client.post("/api/v1/partner-postbacks", json={"url": get_url, "offer_id": sharing["id"]})
    )
    by_post = factories.created(
        client.post("/api/v1/partner-postbacks", json={"url": receiver.url + "/post", "method": "POST", "on": "event"})
    )

    queued = client.post(f"/api/v1/partner-postbacks/{by_get['id']}/test")
    assert queued.status_code == 202, queued.text
    assert (queued.json()["event_type"], queued.json()["postback_id"], queued.json()["kind"]) == (
        "test", by_get["id"], "postback")  # fmt: skip
    (request,) = receiver.wait_for(1)
    query = {k: v[0] for k, v in parse_qs(request.target.partition("?")[2], keep_blank_values=True).items()}
    assert set(query) == VISIBLE_WITH_AMOUNT
    assert query | {"timestamp": "-"} == {
        "transaction_id": "0" * 32, "offer_id": str(sharing["id"]), "partner_id": str(partner["id"]),
        "sub1": "test_sub1", "sub2": "test_sub2", "sub3": "test_sub3", "sub4": "test_sub4", "sub5": "test_sub5",
        "source_id": "test_source", "event_id": "", "event_name": "", "conversion_id": "0", "payout": "1.00",
        "amount": "10.00", "currency": "EUR", "order_id": "TEST-ORDER", "status": "approved", "timestamp": "-",
    }  # fmt: skip
    assert query["timestamp"].isdigit()
    done = _delivery(admin, queued.json()["id"], "succeeded")
    assert done["event_type"] == "test" and done["attempts"] == 1

    assert client.post(f"/api/v1/partner-postbacks/{by_post['id']}/test").status_code == 202
    posted = receiver.wait_for(2)[1]
    body = json.loads(posted.body)
    assert posted.method == "POST" and set(body) == VISIBLE, "a postback of every offer: no amount"
    assert (body["event_name"], body["currency"], body["payout"]) == ("test_event", "USD", "1.00")

    # A failing test is not retried and never counts: neither a 500 nor a 410 turns the postback off, and
    # a postback that is off is tested too.
    receiver.script = lambda request, _index: Reply(500 if request.target.startswith("/get") else 410)
    client.patch(f"/api/v1/partner-postbacks/{by_get['id']}", json={"status": "inactive"})
    failed = client.post(f"/api/v1/partner-postbacks/{by_get['id']}/test").json()
    gone = client.post(f"/api/v1/partner-postbacks/{by_post['id']}/test").json()
    for delivery, code in ((failed, 500), (gone, 410)):
        ended = _delivery(admin, delivery["id"], "failed")
        assert (ended["attempts"], ended["last_status_code"]) == (1, code)
    assert len(receiver.wait_for(4)) == 4
    for mine, status in ((by_get, "inactive"), (by_post, "active")):
        current = client.get(f"/api/v1/partner-postbacks/{mine['id']}").json()
        assert (current["status"], current["failure_count"], current["deactivated_reason"]) == (status, 0, None)

    # One test at a time: while one waits for the partner's answer, another is refused.
    answer = threading.Event()
    receiver.script = lambda _request, _index: Reply(200, hold=answer)
    sending = client.post(f"/api/v1/partner-postbacks/{by_post['id']}/test").json()
    receiver.wait_for(5)
    refused = client.post(f"/api/v1/partner-postbacks/{by_post['id']}/test")
    assert (refused.status_code, refused.json()["error"]) == (409, "conflict"), refused.text
    answer.set()
    _delivery(admin, sending["id"], "succeeded")
    assert client.post(f"/api/v1/partner-postbacks/{by_post['id']}/test").status_code == 202
    tests = admin.get("/api/v1/deliveries", params={"event_type": "test", "limit": 100}).json()["data"]
    assert len(tests) == 6 and {d["postback_id"] for d in tests} == {by_get["id"], by_post["id"]}

    theirs = postback(admin, partner_id=factories.partner(admin)["id"], url=receiver.url + "/theirs")
    assert client.post(f"/api/v1/partner-postbacks/{theirs['id']}/test").status_code == 404
    assert client.post("/api/v1/partner-postbacks/987654/test").status_code == 404
    assert admin.post(f"/api/v1/partner-postbacks/{theirs['id']}/test").status_code == 202
    with keyed(hub, admin, role="advertiser", advertiser_id=adv["id"]) as advertiser:
        assert advertiser.post(f"/api/v1/partner-postbacks/{theirs['id']}/test").status_code == 403


def test_a_deleted_postback_is_gone_and_fires_no_more_but_its_log_is_kept(
    hub: RunningServer,
    admin: httpx.Client,
    visitor: httpx.Client,
    receiver: Receiver,
    partner_key: tuple[dict[str, Any], httpx.Client],
) -> None:
    partner, client = partner_key
    adv = factories.advertiser(admin)
    offer = factories.offer(admin, adv["id"])
    doomed = factories.created(client.post("/api/v1/partner-postbacks", json={"url": receiver.url + "/doomed"}))
    kept = factories.created(client.post("/api/v1/partner-postbacks", json={"url": receiver.url + "/kept"}))

    def convert() -> None:
        tid = factories.click(visitor, offer["id"], partner["id"])
        answer = visitor.get("/postback", params={"transaction_id": tid, "secure": adv["postback_token"]})
        assert answer.json()["result"] == "accepted", answer.text

    convert()
    assert sorted(r.target for r in receiver.wait_for(2)) == ["/doomed", "/kept"]
    (logged,) = poll(lambda: [d for d in admin.get("/api/v1/deliveries", params={"postback_id": doomed["id"]})
                              .json()["data"] if d["status"] == "succeeded"])  # fmt: skip

    other = factories.partner(admin)
    with keyed(hub, admin, role="partner", partner_id=other["id"]) as stranger:
        assert stranger.delete(f"/api/v1/partner-postbacks/{doomed['id']}").status_code == 404
    with keyed(hub, admin, role="advertiser", advertiser_id=adv["id"]) as advertiser:
        assert advertiser.delete(f"/api/v1/partner-postbacks/{doomed['id']}").status_code == 403
    assert client.get(f"/api/v1/partner-postbacks/{doomed['id']}").status_code == 200, "the others changed nothing"

    deleted = client.delete(f"/api/v1/partner-postbacks/{doomed['id']}")
    assert (deleted.status_code, deleted.content) == (204, b"")
    for api in (client, admin):
        assert api.get(f"/api/v1/partner-postbacks/{doomed['id']}").status_code == 404
        assert [p["id"] for p in api.get("/api/v1/partner-postbacks").json()["data"]] == [kept["id"]]
    for method, path, body in (
        ("PATCH", f"/api/v1/partner-postbacks/{doomed['id']}", {"status": "active"}),
        ("POST", f"/api/v1/partner-postbacks/{doomed['id']}/test", None),
        ("DELETE", f"/api/v1/partner-postbacks/{doomed['id']}", None),
    ):
        answer = client.request(method, path, json=body)
        assert (answer.status_code, answer.json()["error"]) == (404, "not_found"), (method, path, answer.text)

    convert()
    poll(lambda: [r for r in receiver.received if r.target == "/kept"][1:])
    poll(lambda: all(d["status"] == "succeeded" for d in admin.get("/api/v1/deliveries").json()["data"]))
    assert [r.target for r in receiver.received].count("/doomed") == 1, "a deleted postback fires no more"
    log = admin.get("/api/v1/deliveries", params={"postback_id": doomed["id"]}).json()["data"]
    assert [d["id"] for d in log] == [logged["id"]], "its delivery log is kept"
    assert admin.get(f"/api/v1/deliveries/{logged['id']}").json()["attempt_log"][0]["verdict"] == "success"

    assert admin.delete(f"/api/v1/partner-postbacks/{kept['id']}").status_code == 204
    assert client.get("/api/v1/partner-postbacks").json()["data"] == []


def test_the_partner_portal_and_the_console_test_and_delete_postbacks(
    hub: RunningServer, admin: httpx.Client, receiver: Receiver
) -> None:
    partner = factories.partner(admin)
    mine = postback(admin, partner_id=partner["id"], url=receiver.url + "/portal?t={transaction_id}&p={payout}")
    with signed_in(hub, person(hub, Role.PARTNER, partner["id"])) as portal:
        listing = portal.get("/ui/p/postbacks").text
        actions = {f["action"] for f in parsed(listing).forms if f["method"] == "post"}
        assert {f"/ui/p/postbacks/{mine['id']}/test", f"/ui/p/postbacks/{mine['id']}/delete"} <= actions
        for action in ("test", "delete"):
            refused = portal.post(f"/ui/p/postbacks/{mine['id']}/{action}", data={}, follow_redirects=False)
            assert refused.status_code == 403, action
        tested = portal.post(f"/ui/p/postbacks/{mine['id']}/test", data={"csrf_token": csrf_of(listing)})
        assert tested.url.path == f"/ui/p/postbacks/{mine['id']}" and "Test sent to your URL" in tested.text
        (request,) = receiver.wait_for(1)
        assert request.target == f"/portal?t={'0' * 32}&p=1.00"

        def log_once_sent() -> str:
            text = portal.get(f"/ui/p/postbacks/{mine['id']}").text
            return text if "succeeded" in text else ""

        log: str = poll(log_once_sent)
        assert ' <span class="status">test</span></td>' in log and f"t={'0' * 32}&amp;p=1.00" in log
        deleted = portal.post(f"/ui/p/postbacks/{mine['id']}/delete", data={"csrf_token": csrf_of(log)})
        assert deleted.url.path == "/ui/p/postbacks" and f"Postback #{mine['id']} deleted" in deleted.text
        assert "No postbacks yet" in deleted.text
        assert portal.get(f"/ui/p/postbacks/{mine['id']}").status_code == 404
    assert admin.get(f"/api/v1/partner-postbacks/{mine['id']}").status_code == 404

    theirs = postback(admin, partner_id=partner["id"], url=receiver.url + "/console", method="POST")
    with signed_in(hub, person(hub, Role.ADMIN)) as console:
        page = console.get("/ui/partner-postbacks").text
        actions = {f["action"] for f in parsed(page).forms if f["method"] == "post"}
        assert {f"/ui/partner-postbacks/{theirs['id']}/test", f"/ui/partner-postbacks/{theirs['id']}/delete"} <= actions
        for action in ("test", "delete"):
            refused = console.post(f"/ui/partner-postbacks/{theirs['id']}/{action}", data={}, follow_redirects=False)
            assert refused.status_code == 403, action
        tested = console.post(f"/ui/partner-postbacks/{theirs['id']}/test", data={"csrf_token": csrf_of(page)})
        assert tested.url.path.startswith("/ui/deliveries/") and "queued with sample values" in tested.text
        assert '<span class="status">test</span>' in tested.text
        posted = receiver.wait_for(2)[1]
        assert posted.method == "POST" and json.loads(posted.body)["transaction_id"] == "0" * 32
        deleted = console.post(f"/ui/partner-postbacks/{theirs['id']}/delete", data={"csrf_token": csrf_of(page)})
        assert deleted.url.path == "/ui/partner-postbacks" and "deleted; its delivery log is kept" in deleted.text
        assert f"/ui/partner-postbacks/{theirs['id']}/test" not in deleted.text
        kept = console.get("/ui/deliveries", params={"postback_id": theirs["id"]}).text
        assert '<td><span class="status">test</span></td>' in kept
    assert admin.get(f"/api/v1/partner-postbacks/{theirs['id']}").status_code == 404


def test_a_postback_fires_at_the_status_its_partner_asked_for_and_on_status_changes(
    admin: httpx.Client, visitor: httpx.Client, receiver: Receiver
) -> None:
    adv, offer, partner = factories.program(admin, caps=[{"metric": "conversions", "period": "day", "limit": 1}])
    for status in ("approved", "rejected", "any"):
        made = postback(admin, partner_id=partner["id"], fire_status=status,
                        url=receiver.url + f"/{status}?tid={{transaction_id}}&status={{status}}")  # fmt: skip
        assert made["fire_status"] == status
    assert (
        postback(admin, partner_id=partner["id"], url=receiver.url + "/x?status={status}")["fire_status"] == "approved"
    )
    refused = admin.post("/api/v1/partner-postbacks", json={"partner_id": partner["id"], "url": receiver.url,
                                                            "fire_status": "pending"})  # fmt: skip
    assert refused.status_code == 400 and "fire_status" in refused.json()["message"], refused.text

    def fired(count: int) -> list[str]:
        return sorted(r.target.split("?")[0] + " " + r.target.split("status=")[1] for r in receiver.wait_for(count))

    first, second = (
        factories.click(visitor, offer["id"], partner["id"]),
        factories.click(visitor, offer["id"], partner["id"]),
    )
    approved = visitor.get("/postback", params={"transaction_id": first, "secure": adv["postback_token"]}).json()
    assert fired(3) == ["/any approved", "/approved approved", "/x approved"]
    pending = visitor.get("/postback", params={"transaction_id": second, "secure": adv["postback_token"]}).json()
    assert pending["status"] == "pending", "over the cap"
    assert fired(4) == ["/any approved", "/any pending", "/approved approved", "/x approved"], "only `any` hears"

    reversed_ = {"status": "rejected", "reason": "ITEM_RETURNED"}
    assert admin.patch(f"/api/v1/conversions/{approved['conversion_id']}", json=reversed_).status_code == 200
    assert fired(6).count("/rejected rejected") == 1 and fired(6).count("/any rejected") == 1
    assert admin.patch(f"/api/v1/conversions/{pending['conversion_id']}",
                       json={"status": "approved"}).status_code == 200  # fmt: skip
    shown = fired(9)
    assert (
        shown.count("/approved approved") == 2 and shown.count("/x approved") == 2 and shown.count("/any approved") == 2
    )
    poll(lambda: all(d["status"] == "succeeded" for d in admin.get("/api/v1/deliveries").json()["data"]))
    assert len(receiver.received) == 9, "each postback fired once per moment it asked for, never twice"
