"""Everflow's webhooks page (the seed), walked top to bottom through a real server and a real receiver on
loopback, every delivery verified with the `standardwebhooks` reference library.

The seed's table, row by row: offers (created, updated; the offer as its admin API shows it, with its
targeting), advertisers and partners (created, updated, signed up; with their users and billing), the
partner sign-up verdict (flat, with who decided), the partner approved for an offer (the full offer and
partner), conversions and events registered (with their offer, advertiser and partner); traffic
optimization has its own scenario (`test_traffic_rules.py`). Then its best practices: every payload names
its resource's id, to deduplicate on. The billing details these payloads carry are set through the API and
shown to the admin alone.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests import factories
from tests.console import csrf_of, parsed, person, signed_in
from tests.receiver import Receiver, poll
from tests.servers import RunningServer
from tracklane.domain.model import Role
from tracklane.domain.webhooks import EventType

DOCS = Path(__file__).resolve().parents[1] / "docs" / "webhooks.md"
BROWSER = {
    "User-Agent": "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36"
}
NO_TARGETING = {"countries": [], "device_types": [], "operating_systems": [], "browsers": [], "rules": []}
ADVERTISER_BILLING = {"billing_frequency": "monthly", "payment_terms_days": 30, "tax_id": "DE123456789"}
PARTNER_BILLING = {"billing_frequency": "bimonthly", "payment_method": "wire", "tax_id": "GB987654321"}


@pytest.fixture
def browser(hub: RunningServer) -> Iterator[httpx.Client]:
    """A visitor with a real browser's User-Agent (tracking flags other clients as bots)."""
    with httpx.Client(base_url=hub.base_url, headers=BROWSER, timeout=30, follow_redirects=False) as client:
        yield client


class Hook:
    """A webhook endpoint on the receiver, and the verified payloads it has received, by type."""

    def __init__(self, admin: httpx.Client, receiver: Receiver, *event_types: str) -> None:
        body = {"url": receiver.url + "/hook", "event_types": list(event_types)}
        self.endpoint = factories.created(admin.post("/api/v1/webhooks", json=body))
        self.receiver = receiver

    def wait(self, count: int) -> list[dict[str, Any]]:
        """The first `count` payloads (verified), once that many arrived."""
        return [r.verified(self.endpoint["secret"]) for r in self.receiver.wait_for(count)]

    def data(self, count: int, event_type: str) -> list[dict[str, Any]]:
        """The `data` of each payload of `event_type` among the first `count`, oldest change first."""
        found = [p for p in self.wait(count) if p["type"] == event_type]
        return [p["data"] for p in sorted(found, key=lambda p: datetime.fromisoformat(p["timestamp"]))]

    def raw(self) -> list[bytes]:
        return [r.body for r in self.receiver.received]


def documented(event_type: str) -> dict[str, Any]:
    text = DOCS.read_text(encoding="utf-8")
    match = re.search(rf"### `{re.escape(event_type)}`.*?```json\n(.*?)```", text, re.S)
    assert match, f"docs/webhooks.md documents no payload for {event_type}"
    example: dict[str, Any] = json.loads(match.group(1))
    return example


def shaped_as_documented(event_type: str, data: dict[str, Any]) -> None:
    """The payload has exactly the documented fields, nested objects included."""

    def keys(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: keys(v) for k, v in value.items()}
        if isinstance(value, list) and value:
            return [keys(value[0])]
        return None

    example = documented(event_type)["data"]
    got, want = keys(data), keys(example)

    def compare(a: Any, b: Any, path: str) -> None:
        if isinstance(b, dict):
            assert isinstance(a, dict) and set(a) == set(b), (event_type, path, sorted(a or {}), sorted(b))
            for name in b:
                compare(a[name], b[name], f"{path}.{name}")
        elif isinstance(b, list) and isinstance(a, list) and a:
            compare(a[0], b[0], f"{path}[0]")

    compare(got, want, "data")


def api_key(admin: httpx.Client, role: str, **owner: int) -> httpx.Client:
    key = factories.created(admin.post("/api/v1/api-keys", json={"role": role, **owner}))["key"]
    return httpx.Client(base_url=str(admin.base_url), headers={"Authorization": f"Bearer {key}"}, timeout=30)


def test_every_event_type_of_the_seed_has_its_documented_payload() -> None:
    for event_type in EventType:
        assert documented(event_type.value)["type"] == event_type.value


# Offer: Created, Updated. Matches Find Offer By ID response (with targeting relationship).


def test_offer_created_and_updated_carry_the_offer_as_the_api_shows_it_with_events_and_targeting(
    admin: httpx.Client, receiver: Receiver
) -> None:
    hook = Hook(admin, receiver, "offer.created", "offer.updated")
    adv = factories.advertiser(admin)
    caps = [{"metric": "conversions", "period": "day", "limit": 100}]
    offer = factories.offer(admin, adv["id"], caps=caps)
    (created,) = hook.data(1, "offer.created")
    shown = admin.get(f"/api/v1/offers/{offer['id']}").json()
    assert {k: v for k, v in created.items() if k != "events"} == shown
    assert (created["events"], created["targeting"]) == ([], NO_TARGETING)
    shaped_as_documented("offer.created", created)

    event = factories.event(admin, offer["id"], name="purchase")
    changed = admin.patch(f"/api/v1/offers/{offer['id']}/events/{event['id']}",
                          json={"payout": {"type": "fixed", "amount": "1.50"}})  # fmt: skip
    assert changed.status_code == 200, changed.text
    admin.patch(f"/api/v1/offers/{offer['id']}", json={"caps": [{**caps[0], "limit": 50}]})

    added, repriced, capped = hook.data(4, "offer.updated")
    for data in (added, repriced, capped):
        shaped_as_documented("offer.updated", data)
        assert data["id"] == offer["id"] and data["targeting"] == NO_TARGETING
    assert [(e["id"], e["name"], e["payout"]["amount"]) for e in added["events"]] == [(event["id"], "purchase", "1.00")]
    assert [e["payout"]["amount"] for e in repriced["events"]] == ["1.50"]
    assert [c["limit"] for c in capped["caps"]] == [50] and capped["events"] == repriced["events"]
    assert created["updated_at"] <= added["updated_at"] <= repriced["updated_at"] <= capped["updated_at"]
    latest = admin.get(f"/api/v1/offers/{offer['id']}").json()
    assert {k: v for k, v in capped.items() if k != "events"} == latest
    assert all("postback_url" not in e for e in capped["events"]), "an event's postback URL holds a secret"
    assert not any(adv["postback_token"].encode() in body for body in hook.raw())
    assert len(receiver.received) == 4


# Advertiser: Created, Updated, Signed Up. Matches Find Advertiser By ID (with users and billing relationships).


def test_advertiser_created_and_updated_carry_its_billing_and_its_users(
    admin: httpx.Client, receiver: Receiver
) -> None:
    hook = Hook(admin, receiver, "advertiser.created", "advertiser.updated", "advertiser.signed_up")
    adv = factories.advertiser(admin, billing=ADVERTISER_BILLING)
    other = factories.advertiser(admin)
    (created, _) = hook.data(2, "advertiser.created")
    assert (created["id"], created["billing"], created["users"]) == (adv["id"], ADVERTISER_BILLING, [])
    shaped_as_documented("advertiser.created", created)

    contact = factories.created(
        admin.post(
            "/api/v1/users",
            json={
                "email": "billing@acme.example",
                "name": "Ada Lovelace",
                "role": "advertiser",
                "advertiser_id": adv["id"],
            },
        )
    )
    admin.post("/api/v1/users", json={"email": "x@other.example", "role": "advertiser", "advertiser_id": other["id"]})
    changed = admin.patch(
        f"/api/v1/advertisers/{adv['id']}", json={"billing": {"tax_id": None, "payment_terms_days": 45}}
    )
    assert changed.status_code == 200, changed.text  # fmt: skip

    (updated,) = hook.data(3, "advertiser.updated")
    shaped_as_documented("advertiser.updated", updated)
    assert updated["billing"] == {**ADVERTISER_BILLING, "tax_id": None, "payment_terms_days": 45}
    assert [u["id"] for u in updated["users"]] == [contact["id"]]
    assert updated["users"][0] | {"email": "billing@acme.example", "name": "Ada Lovelace"} == updated["users"][0]
    shown = admin.get(f"/api/v1/advertisers/{adv['id']}").json()
    assert {k: v for k, v in updated.items() if k != "users"} == {k: v for k, v in shown.items()
                                                                  if k != "postback_token"}  # fmt: skip
    assert not any(adv["postback_token"].encode() in body for body in hook.raw())
    # Advertiser Signed Up: the public sign-up, pending, with its contact invited.
    signup = {"name": "Acme Two", "email": "growth@acme-two.example", "contact_name": "Grace Hopper",
              "billing": ADVERTISER_BILLING}  # fmt: skip
    answer = factories.created(admin.post("/api/v1/advertiser-signups", json=signup))
    (joined,) = hook.data(4, "advertiser.signed_up")
    shaped_as_documented("advertiser.signed_up", joined)
    assert (joined["id"], joined["status"], joined["billing"]) == (answer["id"], "pending", ADVERTISER_BILLING)
    assert [(u["email"], u["name"], u["status"]) for u in joined["users"]] == [
        ("growth@acme-two.example", "Grace Hopper", "invited")]  # fmt: skip
    poll(lambda: {d["status"] for d in admin.get("/api/v1/deliveries").json()["data"]} == {"succeeded"})
    assert sorted(p["type"] for p in hook.wait(4)) == ["advertiser.created", "advertiser.created",
                                                       "advertiser.signed_up", "advertiser.updated"]  # fmt: skip
    assert len(receiver.received) == 4


# Partner: Created, Updated, Signed Up. Matches Find Affiliate By ID (with users and billing relationships).


def test_partner_created_updated_and_signed_up_carry_its_billing_and_its_users(
    admin: httpx.Client, hub: RunningServer, receiver: Receiver
) -> None:
    hook = Hook(admin, receiver, "partner.created", "partner.updated", "partner.signed_up")
    partner = factories.partner(admin, billing=PARTNER_BILLING)
    assert partner["billing"] == PARTNER_BILLING
    (created,) = hook.data(1, "partner.created")
    assert (created["id"], created["billing"], created["users"]) == (partner["id"], PARTNER_BILLING, [])
    shaped_as_documented("partner.created", created)

    with httpx.Client(base_url=hub.base_url, timeout=30, follow_redirects=True) as visitor:
        form = next(f for f in parsed(visitor.get("/ui/sign-up").text).forms if f["action"] == "/ui/sign-up")
        fields = {**form["fields"], "name": "Coupon Club", "email": "hello@couponclub.example",
                  "password": "correct horse battery"}  # fmt: skip
        assert visitor.post("/ui/sign-up", data=fields).status_code == 200
    public = admin.post("/api/v1/partner-signups", json={"name": "Deal Blog", "email": "team@dealblog.example",
                                                        "billing": {"payment_method": "paypal"}})  # fmt: skip
    assert public.status_code == 201 and "billing" not in public.json(), "a sign-up's answer shows no billing"

    signed_up = hook.data(3, "partner.signed_up")
    for data in signed_up:
        shaped_as_documented("partner.signed_up", data)
        assert data["status"] == "pending"
    by_email = {d["email"]: d for d in signed_up}
    page_signup, api_signup = by_email["hello@couponclub.example"], by_email["team@dealblog.example"]
    assert [(u["email"], u["role"], u["partner_id"]) for u in page_signup["users"]] == [
        ("hello@couponclub.example", "partner", page_signup["id"])
    ], "the sign-up page's first user is the partner's contact"
    assert (api_signup["users"], api_signup["billing"]["payment_method"]) == ([], "paypal")

    renamed = admin.patch(f"/api/v1/partners/{partner['id']}", json={"billing": {"billing_frequency": "monthly"}})
    assert renamed.json()["billing"] == {**PARTNER_BILLING, "billing_frequency": "monthly"}
    (updated,) = hook.data(4, "partner.updated")
    shaped_as_documented("partner.updated", updated)
    assert updated["billing"] == renamed.json()["billing"]
    assert {k: v for k, v in updated.items() if k != "users"} == admin.get(f"/api/v1/partners/{partner['id']}").json()


# Partner Sign Up Verdict: custom flat payload with verdict details (and who decided).


def test_the_signup_verdict_names_who_decided_and_when(
    admin: httpx.Client, hub: RunningServer, receiver: Receiver
) -> None:
    hook = Hook(admin, receiver, "partner.signup_verdict", "partner.updated")
    applicants = [factories.created(admin.post("/api/v1/partner-signups", json={
        "name": f"Applicant {n}", "email": f"applicant{n}@blog.example"})) for n in (1, 2)]  # fmt: skip
    (key,) = admin.get("/api/v1/api-keys").json()["data"]
    before = datetime.now(UTC) - timedelta(seconds=1)
    by_key = admin.post(f"/api/v1/partners/{applicants[0]['id']}/verdict", json={"verdict": "approved",
                                                                                 "reason": "fits"})  # fmt: skip
    assert by_key.status_code == 200 and by_key.json()["status"] == "active"
    email = person(hub, Role.ADMIN, name="Grace Hopper")
    with signed_in(hub, email) as console:
        csrf = csrf_of(console.get("/ui/partners").text)
        decided = console.post(f"/ui/partners/{applicants[1]['id']}/verdict",
                               data={"csrf_token": csrf, "verdict": "rejected", "reason": "spam site"})  # fmt: skip
        assert decided.status_code == 200 and "is rejected" in decided.text
    grace = next(u for u in admin.get("/api/v1/users").json()["data"] if u["email"] == email)

    verdicts = {d["partner_id"]: d for d in hook.data(4, "partner.signup_verdict")}
    approved, rejected = verdicts[applicants[0]["id"]], verdicts[applicants[1]["id"]]
    for data in (approved, rejected):
        shaped_as_documented("partner.signup_verdict", data)
        decided_at = datetime.fromisoformat(data["decided_at"])
        assert before <= decided_at <= datetime.now(UTC)
        assert data["decided_at"] == data["partner"]["updated_at"]
    assert approved["decided_by"] == {"type": "api_key", "id": key["id"], "name": f"api key #{key['id']} (admin)",
                                      "email": None}  # fmt: skip
    assert (approved["verdict"], approved["new_status"], approved["reason"]) == ("approved", "active", "fits")
    assert rejected["decided_by"] == {"type": "user", "id": grace["id"], "name": "Grace Hopper", "email": email}
    assert (rejected["verdict"], rejected["new_status"], rejected["reason"]) == ("rejected", "rejected", "spam site")
    updated = hook.data(4, "partner.updated")
    assert sorted(d["status"] for d in updated) == ["active", "rejected"], "Partner Updated fires too"


# Partner Approved for Offer: custom envelope with full offer and affiliate objects.


def test_approved_for_offer_carries_the_full_offer_and_the_full_partner(
    admin: httpx.Client, receiver: Receiver
) -> None:
    hook = Hook(admin, receiver, "partner.approved_for_offer", "offer.updated", "partner.created")
    adv = factories.advertiser(admin)
    offer = factories.offer(admin, adv["id"], visibility="approval_required")
    factories.event(admin, offer["id"], name="purchase")
    partner = factories.partner(admin, billing=PARTNER_BILLING)
    factories.created(admin.post("/api/v1/users", json={
        "email": "ops@sunny.example", "role": "partner", "partner_id": partner["id"]}))  # fmt: skip
    access = factories.created(admin.post("/api/v1/offer-access", json={"offer_id": offer["id"],
                                                                         "partner_id": partner["id"]}))  # fmt: skip

    (approved,) = hook.data(3, "partner.approved_for_offer")
    shaped_as_documented("partner.approved_for_offer", approved)
    assert (approved["offer_id"], approved["partner_id"], approved["access_id"]) == (
        offer["id"], partner["id"], access["id"])  # fmt: skip
    (offer_updated,) = hook.data(3, "offer.updated")
    assert approved["offer"] == offer_updated, "the same full offer as offer.updated"
    assert approved["partner"]["billing"] == PARTNER_BILLING
    assert [u["email"] for u in approved["partner"]["users"]] == ["ops@sunny.example"]
    (created,) = hook.data(3, "partner.created")
    assert {k: v for k, v in approved["partner"].items() if k != "users"} == {
        k: v for k, v in created.items() if k != "users"}  # fmt: skip


# Conversion Registered and Event Registered: the conversion with its offer, advertiser and affiliate.


def test_conversions_and_events_registered_name_their_offer_advertiser_and_partner(
    admin: httpx.Client, browser: httpx.Client, receiver: Receiver
) -> None:
    hook = Hook(admin, receiver, "conversion.registered", "event.registered")
    adv, offer, partner = factories.program(admin)
    event = factories.event(admin, offer["id"], name="purchase")
    tid = factories.click(browser, offer["id"], partner["id"])
    secure = adv["postback_token"]
    base = browser.get("/postback", params={"transaction_id": tid, "secure": secure, "amount": "20.00"}).json()
    more = browser.get("/postback", params={"transaction_id": tid, "secure": secure, "event_name": "purchase"}).json()

    (conversion,) = hook.data(2, "conversion.registered")
    (registered,) = hook.data(2, "event.registered")
    assert set(conversion) == set(registered), "an event has the structure of a conversion"
    for data, answer in ((conversion, base), (registered, more)):
        assert data["id"] == answer["conversion_id"] and data["transaction_id"] == tid
        assert (data["offer_id"], data["advertiser_id"], data["partner_id"]) == (offer["id"], adv["id"], partner["id"])
    assert (conversion["is_event"], registered["is_event"]) == (False, True)
    assert (registered["event_id"], registered["event_name"]) == (event["id"], "purchase")


# Best practices: handle duplicates with the resource id; the same message keeps its webhook-id.


def test_every_payload_names_its_resource_and_a_resend_keeps_the_webhook_id(
    admin: httpx.Client, receiver: Receiver
) -> None:
    hook = Hook(admin, receiver, "advertiser.created")
    adv = factories.advertiser(admin)
    (first,) = receiver.wait_for(1)
    (delivery,) = poll(
        lambda: [d for d in admin.get("/api/v1/deliveries").json()["data"] if d["status"] == "succeeded"]
    )
    assert admin.post(f"/api/v1/deliveries/{delivery['id']}/resend").status_code in (200, 202)
    again = receiver.wait_for(2)[1]
    assert again.headers["webhook-id"] == first.headers["webhook-id"]
    assert again.verified(hook.endpoint["secret"])["data"]["id"] == first.verified(hook.endpoint["secret"])["data"][
        "id"] == adv["id"]  # fmt: skip


# The billing details the payloads carry: set through the API, shown to the admin only.


def test_billing_is_set_and_changed_through_the_api_and_only_the_admin_sees_it(
    admin: httpx.Client, hub: RunningServer
) -> None:
    adv = factories.advertiser(admin, billing={"billing_frequency": "quarterly"})
    assert adv["billing"] == {"billing_frequency": "quarterly", "payment_terms_days": None, "tax_id": None}
    plain = factories.advertiser(admin)
    assert plain["billing"] == {"billing_frequency": None, "payment_terms_days": None, "tax_id": None}
    changed = admin.patch(f"/api/v1/advertisers/{adv['id']}", json={"billing": {"tax_id": "  EIN 12-3456789 "}})
    assert changed.json()["billing"] == {"billing_frequency": "quarterly", "payment_terms_days": None,
                                         "tax_id": "EIN 12-3456789"}  # fmt: skip
    listed = {a["id"]: a["billing"] for a in admin.get("/api/v1/advertisers").json()["data"]}
    assert listed[adv["id"]] == changed.json()["billing"]

    partner = factories.partner(admin, billing=PARTNER_BILLING)
    cleared = admin.patch(f"/api/v1/partners/{partner['id']}", json={"billing": {"payment_method": None}})
    assert cleared.json()["billing"] == {**PARTNER_BILLING, "payment_method": None}
    assert {p["id"]: p["billing"] for p in admin.get("/api/v1/partners").json()["data"]}[partner["id"]] == (
        cleared.json()["billing"])  # fmt: skip

    offer = factories.offer(admin, adv["id"])
    with api_key(admin, "advertiser", advertiser_id=adv["id"]) as advertiser_key:
        assert advertiser_key.get(f"/api/v1/advertisers/{adv['id']}").status_code == 403
        assert advertiser_key.get(f"/api/v1/partners/{partner['id']}").status_code == 403
        assert "EIN" not in advertiser_key.get(f"/api/v1/offers/{offer['id']}").text
    with api_key(admin, "partner", partner_id=partner["id"]) as partner_key:
        assert partner_key.get(f"/api/v1/partners/{partner['id']}").status_code == 403
        assert partner_key.get("/api/v1/partners").status_code == 403
    email = person(hub, Role.PARTNER, partner["id"])
    with signed_in(hub, email) as portal:
        home = portal.get("/ui/p/")
        assert home.status_code == 200 and partner["name"] in home.text
        assert PARTNER_BILLING["tax_id"] not in home.text and "bimonthly" not in home.text


def test_bad_billing_is_a_400_naming_the_field(admin: httpx.Client) -> None:
    partner = factories.partner(admin)
    adv = factories.advertiser(admin)
    cases = [
        ("/api/v1/advertisers", {"name": "A", "billing": {"billing_frequency": "yearly"}}, "billing.billing_frequency"),
        ("/api/v1/advertisers", {"name": "A", "billing": {"payment_terms_days": -1}}, "billing.payment_terms_days"),
        ("/api/v1/advertisers", {"name": "A", "billing": {"payment_terms_days": 366}}, "billing.payment_terms_days"),
        ("/api/v1/advertisers", {"name": "A", "billing": {"payment_terms_days": "30"}}, "billing.payment_terms_days"),
        ("/api/v1/advertisers", {"name": "A", "billing": {"tax_id": "x" * 65}}, "billing.tax_id"),
        ("/api/v1/advertisers", {"name": "A", "billing": {"tax_id": "DE\n1"}}, "billing.tax_id"),
        ("/api/v1/advertisers", {"name": "A", "billing": {"payment_method": "wire"}}, "billing.payment_method"),
        ("/api/v1/advertisers", {"name": "A", "billing": None}, "billing"),
        ("/api/v1/partners", {"name": "P", "email": "p@bad.example", "billing": {"payment_method": "cash"}},
         "billing.payment_method"),
        ("/api/v1/partners", {"name": "P", "email": "p@bad.example", "billing": {"tax_id": 12}}, "billing.tax_id"),
        ("/api/v1/partner-signups", {"name": "P", "email": "p@bad.example", "billing": []}, "billing"),
    ]  # fmt: skip
    for path, body, field in cases:
        response = admin.post(path, json=body)
        assert (response.status_code, response.json().get("field")) == (400, field), (path, body, response.text)
    for path, body, field in (
        (f"/api/v1/advertisers/{adv['id']}", {"billing": {"billing_frequency": 3}}, "billing.billing_frequency"),
        (f"/api/v1/partners/{partner['id']}", {"billing": {"payment_terms_days": 30}}, "billing.payment_terms_days"),
    ):
        response = admin.patch(path, json=body)
        assert (response.status_code, response.json().get("field")) == (400, field), (path, body, response.text)
    assert admin.get(f"/api/v1/advertisers/{adv['id']}").json()["billing"]["billing_frequency"] is None
    names = {a["name"] for a in admin.get("/api/v1/advertisers").json()["data"]}
    assert "A" not in names, "a refused body writes nothing"
