"""The role matrix, generated from the OpenAPI document: every operation by each of (admin, advertiser A, advertiser B,
partner A, partner B, no key) against tenant B's rows.

Tenant B (advertiser B with a private offer, partner B running it) is the victim; advertiser A and partner A
try every operation on B's rows, and on ids that do not exist. What must hold:
- a row of another tenant answers exactly like a row that does not exist (404, same error code), or the
  operation is refused to the role as a whole (403); nothing of B appears in any answer, nothing of B changes;
- without a key every operation but the public sign-ups is 401;
- nothing a partner can see (API answers of every GET, partner postbacks by GET and by POST) holds revenue,
  profit, `adv1..adv5`, the trace or the advertiser's URLs; nothing an advertiser can see holds a payout.
The owners' own keys reach their rows (the positive control that makes the refusals meaningful).
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from tests import factories as make
from tests.receiver import Receiver
from tests.servers import RunningServer

BROWSER = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36"
MISSING_ID = 987654321
# Distinctive values: any of them in an answer to the wrong role is a leak.
REVENUE_B, PAYOUT_B, PARTNER_PAYOUT_B = "37.31", "11.17", "13.19"
ADV_VALUE_B = "victim-adv-value"
PARTNER_FORBIDDEN_KEYS = {
    "revenue",
    "revenue_type",
    "profit",
    "margin",
    "trace",
    "destination_url",
    "fallback_url",
    "postback_token",
    "adv1",
    "adv2",
    "adv3",
    "adv4",
    "adv5",
}
ADVERTISER_FORBIDDEN_KEYS = {"payout", "payout_type", "profit", "margin", "epc"}


@dataclass
class Tenant:
    advertiser: dict[str, Any]
    offer: dict[str, Any]
    event: dict[str, Any]
    partner: dict[str, Any]
    transaction_id: str
    conversion: dict[str, Any]
    postback: dict[str, Any]
    advertiser_key: str
    partner_key: str
    source: dict[str, Any] | None = None
    ids: dict[str, Any] = field(default_factory=dict)


@dataclass
class World:
    server: RunningServer
    admin: httpx.Client
    bare: httpx.Client  # no key of its own: each call says which key it uses
    a: Tenant
    b: Tenant
    receiver: Receiver
    markers_b: list[str]


def _key(admin: httpx.Client, role: str, **owner: int) -> str:
    response = admin.post("/api/v1/api-keys", json={"role": role, **owner})
    assert response.status_code == 201, response.text
    return str(response.json()["key"])


def _tenant(
    admin: httpx.Client,
    web: httpx.Client,
    receiver: Receiver,
    tag: str,
    *,
    private: bool,
    revenue: str,
    payout: str,
    partner_payout: str,
    adv_value: str,
    method: str,
) -> Tenant:
    advertiser = make.advertiser(admin, name=f"Advertiser {tag}")
    offer = make.offer(
        admin,
        advertiser["id"],
        name=f"Offer {tag}",
        visibility="private" if private else "public",
        destination_url=f"https://{tag.lower()}.example/land?tid={{transaction_id}}",
        revenue={"type": "cpa", "amount": revenue},
        payout={"type": "cpa", "amount": payout},
    )
    event = make.event(admin, offer["id"], name=f"purchase_{tag.lower()}")
    partner = make.partner(admin, name=f"Partner {tag}", email=f"partner-{tag.lower()}@example.com")
    access = admin.post("/api/v1/offer-access", json={"offer_id": offer["id"], "partner_id": partner["id"]})
    assert access.status_code == 201, access.text
    payout_rule = admin.post(
        f"/api/v1/offers/{offer['id']}/partner-payouts",
        json={"partner_id": partner["id"], "payout": {"type": "cpa", "amount": partner_payout}},
    )
    assert payout_rule.status_code == 201, payout_rule.text
    postback = admin.post(
        "/api/v1/partner-postbacks",
        json={
            "partner_id": partner["id"],
            "method": method,
            "on": "both",
            "url": receiver.url + f"/pb/{tag}?tid={{transaction_id}}&payout={{payout}}&status={{status}}",
        },
    )
    assert postback.status_code == 201, postback.text
    response = web.get(f"/r/{offer['id']}/{partner['id']}", params={"sub1": f"sub-{tag}"})
    assert response.status_code == 302, response.text
    transaction_id = response.cookies[f"tl_{offer['id']}"]
    token = advertiser["postback_token"]
    conversion = web.get(
        "/postback",
        params={
            "transaction_id": transaction_id,
            "secure": token,
            "amount": "50.00",
            "order_id": f"ORDER-{tag}",
            "adv1": adv_value,
        },
    )
    assert conversion.status_code == 200, conversion.text
    event_done = web.get(
        "/postback",
        params={"transaction_id": transaction_id, "secure": token, "event_name": event["name"], "amount": "5.00"},
    )
    assert event_done.status_code == 200, event_done.text
    tenant = Tenant(
        advertiser=advertiser,
        offer=offer,
        event=event,
        partner=partner,
        transaction_id=transaction_id,
        conversion=admin.get(f"/api/v1/conversions/{conversion.json()['conversion_id']}").json(),
        postback=postback.json(),
        advertiser_key=_key(admin, "advertiser", advertiser_id=advertiser["id"]),
        partner_key=_key(admin, "partner", partner_id=partner["id"]),
    )
    source = admin.post("/api/v1/sources", json={"name": f"Source {tag}", "advertiser_id": advertiser["id"]})
    if source.status_code == 201:
        tenant.source = source.json()
    tenant.ids = {
        "advertiser_id": advertiser["id"],
        "offer_id": offer["id"],
        "event_id": event["id"],
        "partner_id": partner["id"],
        "transaction_id": transaction_id,
        "conversion_id": tenant.conversion["id"],
        "postback_id": tenant.postback["id"],
        "access_id": access.json()["id"],
        "payout_id": payout_rule.json()["id"],
        "source_id": tenant.source["id"] if tenant.source else MISSING_ID,
    }
    return tenant


@pytest.fixture
def world(hub: RunningServer, admin: httpx.Client, visitor: httpx.Client, receiver: Receiver) -> Iterator[World]:
    visitor.headers["User-Agent"] = BROWSER
    a = _tenant(
        admin,
        visitor,
        receiver,
        "A",
        private=False,
        revenue="20.00",
        payout="8.00",
        partner_payout="9.00",
        adv_value="adv-value-a",
        method="GET",
    )
    b = _tenant(
        admin,
        visitor,
        receiver,
        "B",
        private=True,
        revenue=REVENUE_B,
        payout=PAYOUT_B,
        partner_payout=PARTNER_PAYOUT_B,
        adv_value=ADV_VALUE_B,
        method="POST",
    )
    webhook = admin.post("/api/v1/webhooks", json={"url": receiver.url + "/hooks"})
    assert webhook.status_code == 201, webhook.text
    shared = {
        "endpoint_id": webhook.json()["id"],
        "key_id": MISSING_ID,
        "customer_id": MISSING_ID,
        "delivery_id": MISSING_ID,
    }
    a.ids.update(shared)
    b.ids.update(shared)
    markers_b = [
        b.transaction_id,
        b.offer["name"],
        b.partner["email"],
        "ORDER-B",
        ADV_VALUE_B,
        "https://b.example",
        b.advertiser["postback_token"],
    ]
    with httpx.Client(base_url=hub.base_url, timeout=30) as bare:
        yield World(hub, admin, bare, a, b, receiver, markers_b)


def _operations(admin: httpx.Client) -> list[tuple[str, str, dict[str, Any]]]:
    document = admin.get("/api/openapi.json").json()
    return [
        (method.upper(), path, operation)
        for path, item in document["paths"].items()
        if path.startswith("/api/v1")
        for method, operation in item.items()
    ]


def _path(path: str, ids: dict[str, Any]) -> str:
    return re.sub(r"\{(\w+)\}", lambda m: str(ids.get(m.group(1), MISSING_ID)), path)


def _example(operation: dict[str, Any]) -> Any:
    media = operation.get("requestBody", {}).get("content", {}).get("application/json", {})
    return media.get("example", {})


def _call(client: httpx.Client, method: str, url: str, body: Any, key: str | None) -> httpx.Response:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    if method in ("GET", "DELETE"):
        return client.request(method, url, headers=headers)
    return client.request(method, url, headers=headers, json=body)


def _snapshot(world: World) -> dict[str, Any]:
    """Tenant B's rows as the admin reads them."""
    admin, b = world.admin, world.b
    urls = [
        f"/api/v1/advertisers/{b.advertiser['id']}",
        f"/api/v1/offers/{b.offer['id']}",
        f"/api/v1/offers/{b.offer['id']}/events",
        f"/api/v1/offers/{b.offer['id']}/partner-payouts",
        f"/api/v1/partners/{b.partner['id']}",
        f"/api/v1/conversions/{b.conversion['id']}",
        f"/api/v1/partner-postbacks/{b.postback['id']}",
        f"/api/v1/clicks/{b.transaction_id}",
        f"/api/v1/partner-postbacks?partner_id={b.partner['id']}",
        f"/api/v1/conversions?advertiser_id={b.advertiser['id']}",
        f"/api/v1/offer-access?partner_id={b.partner['id']}",
    ]
    if b.source:
        urls.append(f"/api/v1/sources/{b.source['id']}")
    snapshot = {}
    for url in urls:
        response = admin.get(url)
        assert response.status_code == 200, (url, response.text)
        snapshot[url] = response.json()
    return snapshot


def _refused_alike(victim: httpx.Response, missing: httpx.Response) -> bool:
    if victim.status_code == 403 and missing.status_code == 403:
        return True
    if victim.status_code != missing.status_code or victim.status_code < 400:
        return False
    return bool(victim.json().get("error") == missing.json().get("error"))


@pytest.mark.timeout(600)
def test_no_key_sees_or_changes_another_tenants_rows(world: World) -> None:
    client, b = world.bare, world.b
    before = _snapshot(world)
    attackers = {"advertiser A": world.a.advertiser_key, "partner A": world.a.partner_key}
    failures: list[str] = []
    operations = _operations(world.admin)
    assert len(operations) >= 50
    for method, path, operation in operations:
        body = _example(operation)
        for who, key in attackers.items():
            url = _path(path, b.ids)
            on_victim = _call(client, method, url, body, key)
            name = f"{who}: {method} {path} on B's rows -> {on_victim.status_code}"
            leaked = [m for m in world.markers_b if m in on_victim.text and m not in url]
            if leaked:
                failures.append(f"{name} shows {leaked}")
            if "{" in path:
                on_missing = _call(client, method, _path(path, {}), body, key)
                if not _refused_alike(on_victim, on_missing):
                    failures.append(f"{name}, but {on_missing.status_code} on a missing id: {on_victim.text[:120]}")
            elif on_victim.status_code < 300 and method != "GET" and not path.endswith("-signups"):
                # a creation or action without a path id: allowed only on the caller's own tenant
                failures.append(f"{name}: {on_victim.text[:160]}")
    assert failures == [], "\n".join(failures)
    assert _snapshot(world) == before


def test_without_a_key_every_operation_but_the_sign_ups_is_401(world: World) -> None:
    """Whatever the body: the key is checked before the body is read."""
    wrong = []
    for method, path, operation in _operations(world.admin):
        for body in (_example(operation), ["not", "a", "body"]):
            response = _call(world.bare, method, _path(path, world.b.ids), body, None)
            public = path.endswith("-signups") and method == "POST"
            if (response.status_code == 401) == public:
                wrong.append(f"{method} {path} with {body!r} -> {response.status_code}")
    assert wrong == []


def _own_reads(world: World, tenant: Tenant, key: str) -> dict[str, httpx.Response]:
    reads = {}
    for method, path, _operation in _operations(world.admin):
        if method == "GET":
            url = _path(path, tenant.ids)
            reads[url] = _call(world.bare, method, url, None, key)
    return reads


def _keys(value: Any) -> set[str]:
    if isinstance(value, dict):
        return set(value) | {k for v in value.values() for k in _keys(v)}
    if isinstance(value, list):
        return {k for v in value for k in _keys(v)}
    return set()


def test_a_partner_sees_no_revenue_profit_adv_or_trace_anywhere(world: World) -> None:
    b = world.b
    reads = _own_reads(world, b, b.partner_key)
    reached = {url for url, r in reads.items() if r.status_code == 200}
    must_reach = {
        f"/api/v1/offers/{b.offer['id']}",
        f"/api/v1/conversions/{b.conversion['id']}",
        f"/api/v1/clicks/{b.transaction_id}",
        f"/api/v1/partner-postbacks/{b.postback['id']}",
    }
    assert must_reach <= reached, must_reach - reached
    assert any(url.startswith("/api/v1/reports") for url in reached)
    for url in reached:
        body = reads[url].json()
        assert not _keys(body) & PARTNER_FORBIDDEN_KEYS, (url, _keys(body) & PARTNER_FORBIDDEN_KEYS)
        for value in (REVENUE_B, ADV_VALUE_B, "https://b.example"):
            assert not _shows(reads[url].text, value), (url, value)
    conversions = reads["/api/v1/conversions"].json()["data"]
    assert {c["payout"] for c in conversions} >= {PARTNER_PAYOUT_B}  # the partner's own payout is there


def _shows(text: str, value: str) -> bool:
    """Whether `text` holds `value` as itself: a money value not as the digits of a longer number (a time's
    seconds, `...:11.170412Z`, hold "11.17" a few times in a thousand responses)."""
    return re.search(rf"(?<![\d.]){re.escape(value)}(?![\d])", text) is not None


def test_partner_postbacks_by_get_and_by_post_carry_no_revenue_or_adv(world: World) -> None:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        deliveries = [r for r in world.receiver.received if r.target.startswith("/pb/")]
        if {r.method for r in deliveries} >= {"GET", "POST"} and len(deliveries) >= 4:
            break
        time.sleep(0.05)
    assert {r.method for r in deliveries} == {"GET", "POST"}
    assert len(deliveries) >= 4  # a conversion and an event for each partner
    for received in deliveries:
        text = received.target + received.body.decode()
        for value in (REVENUE_B, "20.00", ADV_VALUE_B, "adv-value-a"):
            assert not _shows(text, value), (received.target, value)
        if received.method == "POST":
            payload = json.loads(received.body)
            assert not set(payload) & (PARTNER_FORBIDDEN_KEYS | {"advertiser_id", "amount"}), payload
            assert payload["payout"] in (PARTNER_PAYOUT_B, "1.00")


def test_an_advertiser_sees_no_payout_anywhere_traces_included(world: World) -> None:
    b = world.b
    reads = _own_reads(world, b, b.advertiser_key)
    reached = {url for url, r in reads.items() if r.status_code == 200}
    must_reach = {
        f"/api/v1/offers/{b.offer['id']}",
        f"/api/v1/conversions/{b.conversion['id']}",
        f"/api/v1/clicks/{b.transaction_id}",
    }
    assert must_reach <= reached, must_reach - reached
    for url in reached:
        body = reads[url].json()
        assert not _keys(body) & ADVERTISER_FORBIDDEN_KEYS, (url, _keys(body) & ADVERTISER_FORBIDDEN_KEYS)
        for value in (PAYOUT_B, PARTNER_PAYOUT_B, "partner payout"):
            assert not _shows(reads[url].text, value), (url, value)
    conversion = reads[f"/api/v1/conversions/{b.conversion['id']}"].json()
    assert conversion["revenue"] == REVENUE_B
    assert conversion["trace"] and all(step["step"] != "payout" for step in conversion["trace"])


def test_the_admin_sees_both_sides(world: World) -> None:
    conversion = world.admin.get(f"/api/v1/conversions/{world.b.conversion['id']}").json()
    assert (conversion["revenue"], conversion["payout"]) == (REVENUE_B, PARTNER_PAYOUT_B)
    assert any(step["step"] == "payout" for step in conversion["trace"])
