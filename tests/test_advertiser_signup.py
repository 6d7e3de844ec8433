"""The public advertiser sign-up through a real server: a pending advertiser with its contact invited, no
billable traffic until an admin approves it, `advertiser.signed_up` verified with `standardwebhooks`, refusals
naming the field, and the verdict's effect on tracking."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests import factories
from tests.conftest import BROWSER_UA
from tests.receiver import Receiver
from tests.servers import RunningServer

SIGNUP = {"name": "Acme Shop", "email": "growth@acme.example", "contact_name": "Ada Lovelace"}
BILLING = {"billing_frequency": "monthly", "payment_terms_days": 30, "tax_id": "DE123456789"}


@pytest.fixture
def admin(hub: RunningServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=hub.base_url, headers={"Authorization": f"Bearer {hub.admin_key}"}) as client:
        yield client


@pytest.fixture
def public(hub: RunningServer) -> Iterator[httpx.Client]:
    """Anyone on the internet: no API key, a browser's User-Agent."""
    with httpx.Client(base_url=hub.base_url, headers={"User-Agent": BROWSER_UA}, follow_redirects=False) as client:
        yield client


def signed_up(public: httpx.Client, **fields: Any) -> dict[str, Any]:
    return factories.created(public.post("/api/v1/advertiser-signups", json={**SIGNUP, **fields}))


def test_a_sign_up_is_a_pending_advertiser_with_its_contact_invited_and_signed_up_is_emitted(
    admin: httpx.Client, public: httpx.Client, receiver: Receiver
) -> None:
    hook = factories.created(admin.post("/api/v1/webhooks", json={
        "url": receiver.url + "/hook", "event_types": ["advertiser.signed_up", "advertiser.created"]}))  # fmt: skip
    answer = signed_up(public, billing=BILLING)
    assert set(answer) == {"id", "name", "email", "status", "created_at"}, "the public never sees the token"
    assert (answer["name"], answer["email"], answer["status"]) == ("Acme Shop", "growth@acme.example", "pending")

    shown = admin.get(f"/api/v1/advertisers/{answer['id']}").json()
    assert (shown["status"], shown["billing"]) == ("pending", BILLING)
    (contact,) = admin.get("/api/v1/users", params={"advertiser_id": answer["id"]}).json()["data"]
    assert (contact["email"], contact["name"], contact["role"], contact["status"]) == (
        "growth@acme.example", "Ada Lovelace", "advertiser", "invited")  # fmt: skip

    (request,) = receiver.wait_for(1)
    payload = request.verified(hook["secret"])
    assert payload["type"] == "advertiser.signed_up", "a sign-up is not an admin's creation"
    data = payload["data"]
    assert (data["id"], data["status"], data["billing"]) == (answer["id"], "pending", BILLING)
    assert [u["id"] for u in data["users"]] == [contact["id"]]
    assert shown["postback_token"].encode() not in request.body


def test_a_pending_advertiser_takes_no_billable_traffic_until_approved(
    admin: httpx.Client, public: httpx.Client
) -> None:
    advertiser = signed_up(public)
    token = admin.get(f"/api/v1/advertisers/{advertiser['id']}").json()["postback_token"]
    offer = factories.offer(admin, advertiser["id"], fallback_url="https://fallback.example/")
    partner = factories.partner(admin)
    click = public.get("/clk", params={"offer_id": offer["id"], "partner_id": partner["id"]}).json()
    assert (click["verdict"], click["reject_reason"]) == ("rejected", "advertiser_inactive")
    refused = public.get("/postback", params={"transaction_id": click["transaction_id"], "secure": token})
    assert (refused.status_code, refused.json()["error"]) == (403, "advertiser_inactive"), refused.text

    pending = admin.get("/api/v1/advertisers", params={"status": "pending"}).json()["data"]
    assert [a["id"] for a in pending] == [advertiser["id"]]
    approved = admin.post(f"/api/v1/advertisers/{advertiser['id']}/verdict", json={"verdict": "approved"})
    assert (approved.status_code, approved.json()["status"]) == (200, "active"), approved.text
    assert admin.get("/api/v1/advertisers", params={"status": "pending"}).json()["data"] == []

    billable = public.get("/clk", params={"offer_id": offer["id"], "partner_id": partner["id"]}).json()
    assert billable["verdict"] == "accepted", billable
    accepted = public.get("/postback", params={"transaction_id": billable["transaction_id"], "secure": token})
    assert (accepted.status_code, accepted.json()["result"]) == (200, "accepted"), accepted.text

    (contact,) = admin.get("/api/v1/users", params={"advertiser_id": advertiser["id"]}).json()["data"]
    invitation = admin.post(f"/api/v1/users/{contact['id']}/invitation")
    assert invitation.status_code == 201 and "/ui/accept?token=" in invitation.json()["url"], invitation.text


def test_a_rejected_sign_up_stays_without_traffic(admin: httpx.Client, public: httpx.Client) -> None:
    advertiser = signed_up(public)
    rejected = admin.post(f"/api/v1/advertisers/{advertiser['id']}/verdict",
                          json={"verdict": "rejected", "reason": "no website"})  # fmt: skip
    assert (rejected.status_code, rejected.json()["status"]) == (200, "rejected"), rejected.text
    assert admin.get(f"/api/v1/advertisers/{advertiser['id']}").json()["status_reason"] == "no website"
    offer = factories.offer(admin, advertiser["id"])
    partner = factories.partner(admin)
    click = public.get("/clk", params={"offer_id": offer["id"], "partner_id": partner["id"]}).json()
    assert (click["verdict"], click["reject_reason"]) == ("rejected", "advertiser_inactive")


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": "Acme"}, "email"),
        ({"email": "a@acme.example"}, "name"),
        ({**SIGNUP, "email": "not an address"}, "email"),
        ({**SIGNUP, "name": "   "}, "name"),
        ({**SIGNUP, "status": "active"}, "status"),
        ({**SIGNUP, "postback_token": "mine"}, "postback_token"),
        ({**SIGNUP, "billing": {"payment_terms_days": -3}}, "billing.payment_terms_days"),
    ],
)
def test_a_bad_sign_up_is_refused_naming_the_field_and_records_nothing(
    admin: httpx.Client, public: httpx.Client, body: dict[str, Any], field: str
) -> None:
    response = public.post("/api/v1/advertiser-signups", json=body)
    assert response.status_code == 400, response.text
    assert field in response.json()["message"], response.json()
    assert admin.get("/api/v1/advertisers").json()["data"] == []
    assert admin.get("/api/v1/users").json()["data"] == []


def test_an_address_a_user_has_is_a_conflict_and_records_no_advertiser(
    admin: httpx.Client, public: httpx.Client
) -> None:
    signed_up(public)
    again = public.post("/api/v1/advertiser-signups", json={**SIGNUP, "name": "Acme Again"})
    assert again.status_code == 409, again.text
    assert (again.json()["error"], again.json().get("field")) == ("conflict", "email"), again.json()
    assert [a["name"] for a in admin.get("/api/v1/advertisers").json()["data"]] == ["Acme Shop"]


def test_only_an_admin_gives_a_verdict(hub: RunningServer, admin: httpx.Client, public: httpx.Client) -> None:
    advertiser = signed_up(public)
    partner = factories.partner(admin)
    key = factories.created(admin.post("/api/v1/api-keys", json={"role": "partner", "partner_id": partner["id"]}))
    verdict = {"verdict": "approved"}
    anonymous = public.post(f"/api/v1/advertisers/{advertiser['id']}/verdict", json=verdict)
    as_partner = public.post(f"/api/v1/advertisers/{advertiser['id']}/verdict", json=verdict,
                             headers={"Authorization": f"Bearer {key['key']}"})  # fmt: skip
    assert (anonymous.status_code, as_partner.status_code) == (401, 403), (anonymous.text, as_partner.text)
    assert admin.get(f"/api/v1/advertisers/{advertiser['id']}").json()["status"] == "pending"
