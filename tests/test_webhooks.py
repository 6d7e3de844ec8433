"""Webhooks through the real server to a real receiver on loopback; every delivery is verified with the
`standardwebhooks` reference library. Retry delays are scaled down so the schedule runs in seconds."""

from __future__ import annotations

import asyncio
import json
import re
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import select

from tests import factories
from tests.receiver import DELIVERY, Receiver, Reply, always, in_turn, poll
from tests.servers import RunningServer, running_server
from tracklane.bootstrap import utc_now
from tracklane.delivery.guard import PinnedResolver, ResolverFailure
from tracklane.delivery.sender import Sender
from tracklane.delivery.worker import DeliveryWorker
from tracklane.domain.destinations import parse_allow_list
from tracklane.storage.schema import webhook_endpoints

DOCS = Path(__file__).resolve().parents[1] / "docs" / "webhooks.md"


def endpoint(admin: httpx.Client, receiver: Receiver, path: str = "/hook", **fields: Any) -> dict[str, Any]:
    return factories.created(admin.post("/api/v1/webhooks", json={"url": receiver.url + path, **fields}))


def deliveries(admin: httpx.Client, **params: Any) -> list[dict[str, Any]]:
    response = admin.get("/api/v1/deliveries", params=params)
    assert response.status_code == 200, response.text
    data: list[dict[str, Any]] = response.json()["data"]
    return data


def documented_example(event_type: str) -> dict[str, Any]:
    """The JSON example that docs/webhooks.md gives for this event type."""
    text = DOCS.read_text(encoding="utf-8")
    match = re.search(rf"### `{re.escape(event_type)}`.*?```json\n(.*?)```", text, re.S)
    assert match, f"docs/webhooks.md documents no payload for {event_type}"
    example: dict[str, Any] = json.loads(match.group(1))
    return example


def test_a_conversion_produces_conversion_registered_exactly_as_documented(
    admin: httpx.Client, visitor: httpx.Client, receiver: Receiver
) -> None:
    hook = endpoint(admin, receiver, event_types=["conversion.registered"])
    assert hook["secret"].startswith("whsec_") and "secret" not in admin.get(f"/api/v1/webhooks/{hook['id']}").json()
    adv, offer, partner = factories.program(admin)
    tid = factories.click(visitor, offer["id"], partner["id"], sub1="spring sale", source_id="news")
    result = visitor.get(
        "/postback",
        params={
            "transaction_id": tid,
            "secure": adv["postback_token"],
            "amount": "120.50",
            "order_id": "A-1",
            "adv1": "x",
        },
    ).json()

    (request,) = receiver.wait_for(1)
    payload = request.verified(hook["secret"])
    assert request.method == "POST" and request.headers["content-type"] == "application/json"
    assert payload["type"] == "conversion.registered"
    data = payload["data"]
    assert set(payload) == set(documented_example("conversion.registered"))
    assert set(data) == set(documented_example("conversion.registered")["data"])
    assert data["id"] == result["conversion_id"] and data["transaction_id"] == tid
    assert (data["offer_id"], data["partner_id"], data["advertiser_id"]) == (offer["id"], partner["id"], adv["id"])
    assert (data["revenue"], data["payout"], data["amount"], data["currency"]) == ("10.00", "6.00", "120.50", "USD")
    assert (data["order_id"], data["adv1"], data["sub1"], data["source_id"]) == ("A-1", "x", "spring sale", "news")
    assert (data["is_event"], data["event_id"], data["status"]) == (False, None, "approved")
    (delivery,) = poll(lambda: [d for d in deliveries(admin, endpoint_id=hook["id"]) if d["status"] == "succeeded"])
    assert delivery["message_id"] == request.headers["webhook-id"] and delivery["attempts"] == 1


def test_a_failing_receiver_gets_the_same_webhook_id_until_it_succeeds(admin: httpx.Client, receiver: Receiver) -> None:
    receiver.script = in_turn(Reply(500, b"boom"), Reply(302, headers={"location": "/elsewhere"}), Reply(200))
    hook = endpoint(admin, receiver)
    factories.advertiser(admin)

    requests = receiver.wait_for(3)
    assert {r.target for r in requests} == {"/hook"}, "a redirect must not be followed"
    assert len({r.headers["webhook-id"] for r in requests}) == 1
    for request in requests:
        assert request.verified(hook["secret"])["type"] == "advertiser.created"
    (delivery,) = poll(lambda: [d for d in deliveries(admin) if d["status"] == "succeeded"])
    detail = admin.get(f"/api/v1/deliveries/{delivery['id']}").json()
    log = [(a["status_code"], a["verdict"]) for a in detail["attempt_log"]]
    assert log == [(500, "failure"), (302, "failure"), (200, "success")]
    assert detail["attempt_log"][0]["response_excerpt"] == "boom"
    assert all(a["latency_ms"] >= 0 for a in detail["attempt_log"])
    assert admin.get(f"/api/v1/webhooks/{hook['id']}").json()["failing_since"] is None
    assert len(receiver.received) == 3


def test_410_disables_the_endpoint_and_later_events_are_kept_as_skipped_for_replay(
    admin: httpx.Client, receiver: Receiver
) -> None:
    receiver.script = always(410)
    hook = endpoint(admin, receiver)
    factories.advertiser(admin)
    receiver.wait_for(1)
    disabled = poll(lambda: (h := admin.get(f"/api/v1/webhooks/{hook['id']}").json())["status"] == "disabled" and h)
    assert "410" in disabled["disabled_reason"] and disabled["disabled_at"]

    factories.partner(admin)
    skipped = poll(lambda: deliveries(admin, status="skipped"))
    assert [d["event_type"] for d in skipped] == ["partner.created"]
    assert len(receiver.received) == 1

    receiver.script = always(200)
    assert admin.patch(f"/api/v1/webhooks/{hook['id']}", json={"status": "active"}).json()["status"] == "active"
    now = datetime.now(UTC)
    window = {"from": (now - timedelta(hours=1)).isoformat(), "to": (now + timedelta(hours=1)).isoformat()}
    replay = admin.post("/api/v1/deliveries/replay", json=window)
    assert replay.json() == {"replayed": 2}
    requests = receiver.wait_for(3)
    replayed = {r.headers["webhook-id"]: r.verified(hook["secret"])["type"] for r in requests[1:]}
    assert sorted(replayed.values()) == ["advertiser.created", "partner.created"]
    assert requests[0].headers["webhook-id"] in replayed, "a replay keeps the original webhook-id"
    poll(lambda: {d["status"] for d in deliveries(admin)} == {"succeeded"})


def test_retry_after_is_honoured(admin: httpx.Client, receiver: Receiver) -> None:
    receiver.script = in_turn(Reply(503, headers={"retry-after": "2"}), Reply(200))
    hook = endpoint(admin, receiver)
    factories.advertiser(admin)
    first, second = receiver.wait_for(2)
    # The scaled schedule alone would retry after 0.6 s; the receiver asked for 2 s.
    assert second.arrived - first.arrived >= 1.9
    assert first.headers["webhook-id"] == second.headers["webhook-id"]
    second.verified(hook["secret"])


def test_rotation_signs_with_both_secrets_during_the_overlap(admin: httpx.Client, receiver: Receiver) -> None:
    hook = endpoint(admin, receiver)
    rotated = admin.post(f"/api/v1/webhooks/{hook['id']}/rotate-secret", json={"overlap_hours": 1}).json()
    assert rotated["secret"] != hook["secret"] and rotated["previous_secret_expires_at"]
    factories.advertiser(admin)
    (request,) = receiver.wait_for(1)
    assert len(request.headers["webhook-signature"].split(" ")) == 2
    assert request.verified(hook["secret"]) == request.verified(rotated["secret"])

    admin.post(f"/api/v1/webhooks/{hook['id']}/rotate-secret", json={"overlap_hours": 0})
    factories.advertiser(admin)
    latest = receiver.wait_for(2)[1]
    assert len(latest.headers["webhook-signature"].split(" ")) == 1


def test_every_existing_change_emits_its_event_type(
    admin: httpx.Client, visitor: httpx.Client, receiver: Receiver
) -> None:
    hook = endpoint(admin, receiver)
    adv = factories.advertiser(admin)
    admin.patch(f"/api/v1/advertisers/{adv['id']}", json={"name": "Renamed"})
    offer = factories.offer(admin, adv["id"])
    admin.patch(f"/api/v1/offers/{offer['id']}", json={"name": "Renamed offer"})
    partner = factories.partner(admin)
    admin.patch(f"/api/v1/partners/{partner['id']}", json={"name": "Renamed partner"})
    signup = factories.created(admin.post("/api/v1/partner-signups", json={"name": "New", "email": "n@example.com"}))
    admin.post(f"/api/v1/partners/{signup['id']}/verdict", json={"verdict": "approved", "reason": "fits"})
    admin.post("/api/v1/offer-access", json={"offer_id": offer["id"], "partner_id": partner["id"]})
    event = factories.event(admin, offer["id"], name="purchase")
    tid = factories.click(visitor, offer["id"], partner["id"])
    base = visitor.get("/postback", params={"transaction_id": tid, "secure": adv["postback_token"]}).json()
    visitor.get("/postback", params={"transaction_id": tid, "secure": adv["postback_token"], "event_name": "purchase"})
    admin.patch(f"/api/v1/conversions/{base['conversion_id']}", json={"status": "rejected", "reason": "fraud"})

    expected = [
        "advertiser.created",
        "advertiser.updated",
        "offer.created",
        "offer.updated",
        "partner.created",
        "partner.updated",
        "partner.signed_up",
        "partner.updated",
        "partner.signup_verdict",
        "partner.approved_for_offer",
        "offer.updated",  # the event added to the offer
        "conversion.registered",
        "event.registered",
        "conversion.updated",
    ]
    requests = receiver.wait_for(len(expected))
    payloads = [r.verified(hook["secret"]) for r in requests]
    assert sorted(p["type"] for p in payloads) == sorted(expected)
    by_type = {p["type"]: p["data"] for p in payloads}
    for event_type, data in by_type.items():
        assert set(data) == set(documented_example(event_type)["data"]), event_type
    assert by_type["event.registered"]["event_id"] == event["id"] and by_type["event.registered"]["is_event"]
    assert (by_type["conversion.updated"]["status"], by_type["conversion.updated"]["previous_status"]) == (
        "rejected",
        "approved",
    )
    assert by_type["partner.signup_verdict"] == by_type["partner.signup_verdict"] | {
        "verdict": "approved",
        "new_status": "active",
        "reason": "fits",
        "partner_id": signup["id"],
    }
    assert "postback_token" not in by_type["advertiser.created"]


def test_bad_endpoint_input_is_a_4xx_naming_the_field(admin: httpx.Client) -> None:
    cases = [
        ({"url": "ftp://x.example/"}, "url"),
        ({"url": "https://x.example/{sub1}"}, "url"),
        ({"url": "https://x.example/", "event_types": ["offer.deleted"]}, "event_types"),
        ({"url": "https://x.example/", "event_types": []}, "event_types"),
        ({"url": "http://10.0.0.1/hook"}, "url"),
        ({"url": "http://[::ffff:169.254.169.254]/"}, "url"),
    ]
    for body, field in cases:
        response = admin.post("/api/v1/webhooks", json=body)
        assert (response.status_code, response.json()["field"]) == (400, field), response.text
    assert admin.get("/api/v1/webhooks").json()["data"] == []
    missing = admin.post("/api/v1/webhooks/999/rotate-secret")
    assert missing.status_code == 404
    replay = admin.post("/api/v1/deliveries/replay", json={"from": "2026-01-02", "to": "2026-01-01"})
    assert (replay.status_code, replay.json()["field"]) == (400, "to")


def test_a_rotation_overlap_must_be_a_finite_number_of_hours(admin: httpx.Client) -> None:
    hook = factories.created(admin.post("/api/v1/webhooks", json={"url": "https://hooks.example.com/t"}))
    rotate = f"/api/v1/webhooks/{hook['id']}/rotate-secret"
    for raw in (
        b'{"overlap_hours": 1e400}',
        b'{"overlap_hours": -1e400}',
        b'{"overlap_hours": 169}',
        b'{"overlap_hours": -1}',
        b'{"overlap_hours": "24"}',
        b'{"overlap_hours": null}',
    ):
        refused = admin.post(rotate, content=raw, headers={"content-type": "application/json"})
        assert (refused.status_code, refused.json()["field"]) == (400, "overlap_hours"), (raw, refused.text)
    assert admin.get(f"/api/v1/webhooks/{hook['id']}").json()["previous_secret_expires_at"] is None
    rotated = admin.post(rotate)
    assert rotated.status_code == 200 and rotated.json()["secret"].startswith("whsec_")
    expires = datetime.fromisoformat(rotated.json()["previous_secret_expires_at"])
    assert abs(expires - datetime.fromisoformat(rotated.json()["updated_at"]) - timedelta(hours=24)) < timedelta(
        seconds=5
    ), "no body: the default overlap of 24 hours"
    assert set(admin.get(f"/api/v1/webhooks/{hook['id']}").json()) == set(rotated.json()) - {"secret"}


def test_secrets_are_encrypted_at_rest_and_still_sign(database_url: str, receiver: Receiver) -> None:
    key = "correct horse battery staple, but longer"
    with (
        running_server(database_url, secrets_key=key, **DELIVERY) as hub,
        httpx.Client(base_url=hub.base_url, headers={"Authorization": f"Bearer {hub.admin_key}"}) as admin,
    ):
        hook = endpoint(admin, receiver)
        stored = hub.container.db.read_now(
            lambda repo: repo.conn.execute(select(webhook_endpoints.c.secret)).scalar_one()  # type: ignore[attr-defined]
        )
        assert stored.startswith("fernet:") and hook["secret"] not in stored
        assert hook["secret"][len("whsec_") :] not in stored
        factories.advertiser(admin)
        (request,) = receiver.wait_for(1)
        assert request.verified(hook["secret"])["type"] == "advertiser.created"


def test_an_endpoint_failing_for_the_whole_period_is_disabled_with_the_reason(
    database_url: str, receiver: Receiver
) -> None:
    receiver.script = always(500)
    with (
        running_server(database_url, webhook_disable_after_hours=0.0005, **DELIVERY) as hub,
        httpx.Client(base_url=hub.base_url, headers={"Authorization": f"Bearer {hub.admin_key}"}) as admin,
    ):
        hook = endpoint(admin, receiver)
        factories.advertiser(admin)
        factories.partner(admin)
        disabled = poll(lambda: (h := admin.get(f"/api/v1/webhooks/{hook['id']}").json())["status"] == "disabled" and h)
        assert disabled["disabled_reason"].startswith("every delivery failed for")
        assert len(receiver.received) >= 2, "one failure alone never disables an endpoint"


def test_every_attempt_goes_through_the_ssrf_guard(database_url: str, receiver: Receiver) -> None:
    """An endpoint saved while 127.0.0.1 was allowed is refused at send time once it no longer is: the
    delivery fails at once (sending it again cannot help) and the failure counts against the endpoint."""
    with (
        running_server(database_url, **DELIVERY) as hub,
        httpx.Client(base_url=hub.base_url, headers={"Authorization": f"Bearer {hub.admin_key}"}) as admin,
    ):
        hook = endpoint(admin, receiver)
    strict = {**DELIVERY, "allow_private_destinations": ""}
    with (
        running_server(database_url, **strict) as hub,
        httpx.Client(base_url=hub.base_url, headers={"Authorization": f"Bearer {hub.admin_key}"}) as admin,
    ):
        factories.advertiser(admin)
        (delivery,) = poll(lambda: [d for d in deliveries(admin) if d["status"] == "failed"])
        detail = admin.get(f"/api/v1/deliveries/{delivery['id']}").json()
        assert admin.get(f"/api/v1/webhooks/{hook['id']}").json()["failing_since"] is not None
    assert (detail["attempts"], len(detail["attempt_log"])) == (1, 1), "a refused destination is not retried"
    (first,) = detail["attempt_log"]
    assert (first["error_class"], first["status_code"], first["verdict"]) == ("refused_destination", None, "failure")
    assert "127.0.0.1" in first["error"] and "loopback" in first["error"]
    assert detail["last_error"].startswith("refused_destination: ")
    assert receiver.received == []


def test_our_own_resolver_failure_spends_none_of_the_receivers_attempts(database_url: str, receiver: Receiver) -> None:
    """A worker whose DNS resolver is down (injected at the resolver port) keeps the delivery, unspent."""
    resolver_up = threading.Event()

    async def resolver(host: str, port: int) -> list[str]:
        assert host == "hooks.partner.example"
        if not resolver_up.is_set():
            raise ResolverFailure("temporary failure in name resolution")
        return ["127.0.0.1"]

    async def run_worker(hub: RunningServer) -> None:
        transport = PinnedResolver(parse_allow_list("127.0.0.1/32"), resolver)
        worker = DeliveryWorker(hub.container.deliveries, lambda: Sender(transport, 5, utc_now), 4, 0.05)
        task = asyncio.create_task(worker.run())
        try:
            await asyncio.to_thread(receiver.wait_for, 1)
        finally:
            worker.stop()
            await task

    with (
        running_server(database_url, delivery_in_serve=False, **DELIVERY) as hub,
        httpx.Client(base_url=hub.base_url, headers={"Authorization": f"Bearer {hub.admin_key}"}) as admin,
    ):
        hook = endpoint(admin, receiver)
        admin.patch(
            f"/api/v1/webhooks/{hook['id']}", json={"url": f"http://hooks.partner.example:{receiver.port}/hook"}
        )
        factories.advertiser(admin)
        thread = threading.Thread(target=asyncio.run, args=(run_worker(hub),))
        thread.start()
        try:
            (delivery,) = poll(lambda: [d for d in deliveries(admin) if d["last_error"]])
            poll(lambda: len(admin.get(f"/api/v1/deliveries/{delivery['id']}").json()["attempt_log"]) >= 3)
            unspent = admin.get(f"/api/v1/deliveries/{delivery['id']}").json()
            assert (unspent["status"], unspent["attempts"]) in {("pending", 0), ("sending", 0)}
            assert {(a["error_class"], a["verdict"]) for a in unspent["attempt_log"]} == {("resolver", "ours")}
            assert admin.get(f"/api/v1/webhooks/{hook['id']}").json()["failing_since"] is None
        finally:
            resolver_up.set()
            thread.join(timeout=60)
        (request,) = receiver.wait_for(1)
        assert request.verified(hook["secret"])["type"] == "advertiser.created"
        done = poll(
            lambda: (d := admin.get(f"/api/v1/deliveries/{delivery['id']}").json())["status"] == "succeeded" and d
        )
        assert done["attempts"] == 1, "only the attempt that reached the receiver counts"


def test_a_timeout_backs_off_like_throttling(database_url: str, receiver: Receiver) -> None:
    receiver.script = in_turn(Reply(200, delay=2.5), Reply(200))
    with (
        running_server(database_url, **{**DELIVERY, "delivery_timeout_seconds": 1}) as hub,
        httpx.Client(base_url=hub.base_url, headers={"Authorization": f"Bearer {hub.admin_key}"}) as admin,
    ):
        hook = endpoint(admin, receiver)
        factories.advertiser(admin)
        slow, quick = receiver.wait_for(2)
        (delivery,) = poll(lambda: [d for d in deliveries(admin) if d["status"] == "succeeded"])
        log = admin.get(f"/api/v1/deliveries/{delivery['id']}").json()["attempt_log"]
    assert [(a["error_class"], a["verdict"]) for a in log] == [("timeout", "throttled"), (None, "success")]
    assert 900 <= log[0]["latency_ms"] < 2500
    assert quick.arrived - slow.arrived >= 1.0 + 0.6, "the time limit, then at least the scaled one-minute minimum"
    assert slow.headers["webhook-id"] == quick.headers["webhook-id"]
    quick.verified(hook["secret"])


def test_a_segment_order_notifies_the_webhook_and_the_partner_like_a_postback(
    admin: httpx.Client, visitor: httpx.Client, receiver: Receiver
) -> None:
    hook = endpoint(admin, receiver, event_types=["conversion.registered"])
    advertiser, offer, partner = factories.program(admin)
    factories.created(
        admin.post(
            "/api/v1/partner-postbacks",
            json={
                "partner_id": partner["id"],
                "url": receiver.url + "/partner?tid={transaction_id}&p={payout}&o={order_id}",
            },
        )
    )
    source = factories.created(admin.post("/api/v1/sources", json={"name": "Shop", "advertiser_id": advertiser["id"]}))
    tid = factories.click(visitor, offer["id"], partner["id"])
    sent = visitor.post(
        "/v1/track",
        json={
            "writeKey": source["write_key"],
            "type": "track",
            "event": "Order Completed",
            "userId": "u1",
            "messageId": "order-1",
            "context": {"referrer": {"type": "tracklane", "id": tid}},
            "properties": {"order_id": "S 1", "revenue": "42.00"},
        },
    )
    assert (sent.status_code, sent.json()) == (200, {"success": True})

    requests = receiver.wait_for(2)
    (webhook,) = [r for r in requests if r.target == "/hook"]
    data = webhook.verified(hook["secret"])["data"]
    assert (data["transaction_id"], data["origin"], data["order_id"]) == (tid, "segment", "S 1")
    (partner_call,) = [r for r in requests if r.target.startswith("/partner")]
    assert partner_call.target == f"/partner?tid={tid}&p=6.00&o=S%201"


def test_a_replay_range_outside_utc_is_a_400_naming_the_field(api: httpx.Client) -> None:
    body = {"from": "0001-01-01T00:00:00+01:00", "to": "2026-01-01"}
    refused = api.post("/api/v1/deliveries/replay", json=body)
    assert (refused.status_code, refused.json()["field"]) == (400, "from"), refused.text
