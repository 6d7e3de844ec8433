"""Traffic rules through a real server: block lists turning clicks away to the fallback with the reason
recorded, and an optimization scenario from clicks and postbacks to the periodic evaluation, the block, the
`traffic.optimized` webhook verified with `standardwebhooks`, and the lift; refusals naming the field; admin
keys only."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests import factories
from tests.conftest import BROWSER_UA
from tests.console import csrf_of, person, signed_in
from tests.receiver import DELIVERY, Receiver
from tests.servers import RunningServer, running_server
from tracklane.domain.model import Role

FALLBACK = "https://fallback.example/offers"


@pytest.fixture
def optimizing(database_url: str) -> Iterator[RunningServer]:
    """A server whose worker evaluates optimization rules twice a second."""
    with running_server(database_url, traffic_optimize_seconds=0.5, **DELIVERY) as running:
        yield running


@pytest.fixture
def admin(optimizing: RunningServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=optimizing.base_url, headers={"Authorization": f"Bearer {optimizing.admin_key}"}) as c:
        yield c


@pytest.fixture
def visitor(optimizing: RunningServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=optimizing.base_url, headers={"User-Agent": BROWSER_UA}, follow_redirects=False) as c:
        yield c


def clicked(visitor: httpx.Client, offer: dict[str, Any], partner: dict[str, Any], **params: str) -> dict[str, Any]:
    answer = visitor.get("/clk", params={"offer_id": offer["id"], "partner_id": partner["id"], **params})
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


def partner_key(admin: httpx.Client, server: RunningServer, partner: dict[str, Any]) -> httpx.Client:
    key = factories.created(admin.post("/api/v1/api-keys", json={"role": "partner", "partner_id": partner["id"]}))
    return httpx.Client(base_url=server.base_url, headers={"Authorization": f"Bearer {key['key']}"})


def rule(admin: httpx.Client, **body: Any) -> dict[str, Any]:
    return factories.created(admin.post("/api/v1/traffic-rules", json=body))


def test_a_block_rule_sends_matching_clicks_to_the_fallback_with_the_reason_recorded(
    admin: httpx.Client, visitor: httpx.Client
) -> None:
    advertiser = factories.advertiser(admin)
    offer = factories.offer(admin, advertiser["id"], fallback_url=FALLBACK)
    other_offer = factories.offer(admin, advertiser["id"], fallback_url=FALLBACK)
    partner, other_partner = factories.partner(admin), factories.partner(admin)
    placement = rule(admin, kind="block", offer_id=offer["id"], partner_id=partner["id"], variable="sub1",
                     match="contains", values=["Spam", "  "])  # fmt: skip
    assert (placement["values"], placement["status"], placement["min_clicks"]) == (["spam"], "active", None)
    network = rule(admin, kind="block", variable="source_id", values=["scraper-net"], name="Known scraper")

    blocked = visitor.get(f"/r/{offer['id']}/{partner['id']}", params={"sub1": "top-SPAM-list"})
    assert (blocked.status_code, blocked.headers["location"]) == (302, FALLBACK)
    shown = admin.get("/api/v1/clicks", params={"offer_id": offer["id"]}).json()["data"]
    assert [(c["verdict"], c["reject_reason"], c["sub1"]) for c in shown] == [
        ("rejected", "blocked:sub1", "top-SPAM-list")]  # fmt: skip
    head = visitor.head(f"/r/{offer['id']}/{partner['id']}", params={"sub1": "spam"})
    assert (head.status_code, head.headers["location"]) == (302, FALLBACK), "HEAD answers like GET"
    assert len(admin.get("/api/v1/clicks", params={"offer_id": offer["id"]}).json()["data"]) == 1, "HEAD records none"

    assert clicked(visitor, offer, partner, sub1="newsletter")["verdict"] == "accepted"
    assert clicked(visitor, offer, other_partner, sub1="spam")["verdict"] == "accepted", "the rule is one partner's"
    assert clicked(visitor, other_offer, partner, sub1="spam")["verdict"] == "accepted", "and one offer's"
    scraped = clicked(visitor, other_offer, other_partner, source_id="Scraper-Net")
    assert (scraped["verdict"], scraped["reject_reason"]) == ("rejected", "blocked:source_id"), "on every offer"

    paused = admin.patch(f"/api/v1/traffic-rules/{placement['id']}", json={"status": "paused"})
    assert (paused.status_code, paused.json()["status"]) == (200, "paused"), paused.text
    assert clicked(visitor, offer, partner, sub1="spam")["verdict"] == "accepted", "a paused rule blocks nothing"
    assert admin.delete(f"/api/v1/traffic-rules/{network['id']}").status_code == 204
    assert admin.get(f"/api/v1/traffic-rules/{network['id']}").status_code == 404
    assert clicked(visitor, other_offer, other_partner, source_id="scraper-net")["verdict"] == "accepted"
    listed = admin.get("/api/v1/traffic-rules", params={"status": "paused"}).json()["data"]
    assert [r["id"] for r in listed] == [placement["id"]]


def test_an_optimization_rule_blocks_a_weak_sub1_and_emits_traffic_optimized_until_lifted(
    admin: httpx.Client, visitor: httpx.Client, receiver: Receiver, optimizing: RunningServer
) -> None:
    hook = factories.created(admin.post("/api/v1/webhooks", json={
        "url": receiver.url + "/hook", "event_types": ["traffic.optimized"]}))  # fmt: skip
    advertiser = factories.advertiser(admin)
    offer = factories.offer(admin, advertiser["id"], fallback_url=FALLBACK)
    weak, small = factories.partner(admin, name="Weak Media"), factories.partner(admin)
    for _ in range(11):
        clicked(visitor, offer, weak, sub1="popunder")
    for n in range(10):
        good = clicked(visitor, offer, weak, sub1="newsletter")
        if n < 3:
            converted = visitor.get("/postback", params={"transaction_id": good["transaction_id"],
                                                         "secure": advertiser["postback_token"]})  # fmt: skip
            assert converted.json()["result"] == "accepted", converted.text
    for _ in range(3):
        clicked(visitor, offer, small, sub1="popunder")

    optimizer = rule(admin, kind="optimize", name="Weak placements", offer_id=offer["id"], variable="sub1",
                     min_clicks=10, cvr_below_percent="5", window_days=7)  # fmt: skip
    assert (optimizer["cvr_below_percent"], optimizer["window_days"], optimizer["values"]) == ("5.00", 7, None)

    (request,) = receiver.wait_for(1)
    payload = request.verified(hook["secret"])
    assert payload["type"] == "traffic.optimized"
    data = payload["data"]
    assert data["rule"] == {"id": optimizer["id"], "name": "Weak placements", "variable": "sub1", "min_clicks": 10,
                            "cvr_below_percent": "5.00", "window_days": 7}  # fmt: skip
    (blocked,) = data["blocked"]
    assert {k: v for k, v in blocked.items() if k != "block_id"} == {
        "variable": "sub1", "value": "popunder", "offer": {"id": offer["id"], "name": offer["name"]},
        "partner": {"id": weak["id"], "name": "Weak Media"}, "clicks": 11, "conversions": 0, "cvr_percent": "0.00",
    }  # fmt: skip
    (block,) = admin.get("/api/v1/traffic-blocks", params={"rule_id": optimizer["id"]}).json()["data"]
    assert (block["id"], block["status"], block["clicks"]) == (blocked["block_id"], "active", 11)
    assert admin.get(f"/api/v1/traffic-rules/{optimizer['id']}").json()["last_evaluated_at"] is not None

    with partner_key(admin, optimizing, weak) as own, partner_key(admin, optimizing, small) as other:
        assert [b["id"] for b in own.get("/api/v1/traffic-blocks").json()["data"]] == [block["id"]], "its own"
        assert other.get("/api/v1/traffic-blocks").json()["data"] == [], "another partner's are not listed"
        assert other.get(f"/api/v1/traffic-blocks/{block['id']}").status_code == 404, "nor found"
        asked = other.get("/api/v1/traffic-blocks", params={"partner_id": weak["id"]})
        assert asked.status_code == 403, asked.text
        assert own.post(f"/api/v1/traffic-blocks/{block['id']}/lift", json={"reason": "mine"}).status_code == 403
    with signed_in(optimizing, person(optimizing, Role.PARTNER, weak["id"])) as portal:
        home = portal.get("/ui/p/").text
        assert "Traffic turned away (1)" in home and "popunder" in home, "the partner learns what is blocked"

    turned = visitor.get(f"/r/{offer['id']}/{weak['id']}", params={"sub1": "PopUnder"})
    assert (turned.status_code, turned.headers["location"]) == (302, FALLBACK)
    assert clicked(visitor, offer, weak, sub1="popunder")["reject_reason"] == "blocked:sub1"
    assert clicked(visitor, offer, weak, sub1="newsletter")["verdict"] == "accepted", "30 % converts: kept"
    assert clicked(visitor, offer, small, sub1="popunder")["verdict"] == "accepted", "too few clicks to judge"

    with signed_in(optimizing, person(optimizing, Role.ADMIN)) as console:
        token = csrf_of(console.get("/ui/traffic").text)
        too_long = console.post(
            f"/ui/traffic-blocks/{block['id']}/lift", data={"csrf_token": token, "reason": "x" * 501}
        )
        assert too_long.status_code == 400 and "reason" in too_long.text, "refused, never cut to fit"
    assert admin.get(f"/api/v1/traffic-blocks/{block['id']}").json()["status"] == "active"

    lifted = admin.post(f"/api/v1/traffic-blocks/{block['id']}/lift", json={"reason": "placement reviewed"})
    assert lifted.status_code == 200, lifted.text
    assert (lifted.json()["status"], lifted.json()["lift_reason"]) == ("lifted", "placement reviewed")
    assert lifted.json()["lifted_by"].startswith("api key #")
    assert clicked(visitor, offer, weak, sub1="popunder")["verdict"] == "accepted"
    again = admin.post(f"/api/v1/traffic-rules/{optimizer['id']}/evaluate")
    assert (again.status_code, again.json()["blocks"]) == (200, []), "a lifted block stays lifted"
    time.sleep(1.2)  # two more rounds of the worker
    assert clicked(visitor, offer, weak, sub1="popunder")["verdict"] == "accepted"
    assert len(receiver.received) == 1, "nothing new was blocked, so nothing more was emitted"


BAD_RULES = [
        ({"kind": "block", "variable": "sub1"}, "values"),
        ({"kind": "block", "variable": "sub1", "values": [" "]}, "values"),
        ({"kind": "block", "variable": "sub1", "values": ["x"], "min_clicks": 5}, "min_clicks"),
        ({"kind": "block", "variable": "sub9", "values": ["x"]}, "variable"),
        ({"kind": "block", "variable": "sub1", "values": ["x"], "match": "regex"}, "match"),
        ({"kind": "optimize", "variable": "sub1", "cvr_below_percent": 1}, "min_clicks"),
        ({"kind": "optimize", "variable": "sub1", "min_clicks": 10}, "cvr_below_percent"),
        ({"kind": "optimize", "variable": "sub1", "min_clicks": 10, "cvr_below_percent": 0}, "cvr_below_percent"),
        ({"kind": "optimize", "variable": "sub1", "min_clicks": 10, "cvr_below_percent": "100.5"},
         "cvr_below_percent"),
        ({"kind": "optimize", "variable": "sub1", "min_clicks": 10, "cvr_below_percent": "0.125"},
         "cvr_below_percent"),
        ({"kind": "optimize", "variable": "referrer", "min_clicks": 10, "cvr_below_percent": 1}, "variable"),
        ({"kind": "optimize", "variable": "sub1", "min_clicks": 10, "cvr_below_percent": 1, "values": ["x"]},
         "values"),
        ({"kind": "optimize", "variable": "sub1", "min_clicks": 10, "cvr_below_percent": 1, "window_days": 400},
         "window_days"),
        ({"kind": "block", "variable": "sub1", "values": ["x"], "offer_id": 9999}, "offer_id"),
        ({"kind": "block", "variable": "sub1", "values": ["x"], "partner_id": 9999}, "partner_id"),
        ({"kind": "block", "variable": "sub1", "values": ["x"], "colour": "red"}, "colour"),
]  # fmt: skip


def test_a_bad_rule_is_refused_naming_the_field_and_records_nothing(admin: httpx.Client) -> None:
    for body, field in BAD_RULES:
        response = admin.post("/api/v1/traffic-rules", json=body)
        assert response.status_code == 400, (body, response.text)
        assert field in response.json()["message"], (body, response.json())
    assert admin.get("/api/v1/traffic-rules").json()["data"] == []


def test_changes_that_do_not_fit_the_rule_are_refused(admin: httpx.Client) -> None:
    block = rule(admin, kind="block", variable="country", values=["KP"])
    optimize = rule(admin, kind="optimize", variable="source_id", min_clicks=50, cvr_below_percent="0.5")
    for rule_id, change, field in (
        (block["id"], {"min_clicks": 3}, "min_clicks"),
        (optimize["id"], {"values": ["x"]}, "values"),
        (optimize["id"], {"variable": "sub2"}, "variable"),
        (optimize["id"], {"kind": "block"}, "kind"),
    ):
        refused = admin.patch(f"/api/v1/traffic-rules/{rule_id}", json=change)
        assert refused.status_code == 400 and field in refused.json()["message"], refused.text
    evaluated = admin.post(f"/api/v1/traffic-rules/{block['id']}/evaluate")
    assert evaluated.status_code == 400 and "kind" in evaluated.json()["message"], evaluated.text
    changed = admin.patch(f"/api/v1/traffic-rules/{optimize['id']}", json={"cvr_below_percent": 1, "window_days": 3})
    assert (changed.json()["cvr_below_percent"], changed.json()["window_days"]) == ("1.00", 3), changed.text
    assert admin.get(f"/api/v1/traffic-rules/{block['id']}").json()["values"] == ["kp"]
    assert admin.post("/api/v1/traffic-blocks/9999/lift", json={"reason": "x"}).status_code == 404


def test_only_an_admin_manages_traffic(admin: httpx.Client, optimizing: RunningServer) -> None:
    advertiser, _, partner = factories.program(admin)
    rule(admin, kind="block", variable="sub1", values=["x"])
    keys = [
        factories.created(admin.post("/api/v1/api-keys", json={"role": "partner", "partner_id": partner["id"]})),
        factories.created(
            admin.post("/api/v1/api-keys", json={"role": "advertiser", "advertiser_id": advertiser["id"]})
        ),
    ]
    for key, blocks in zip(keys, (200, 403), strict=True):
        headers = {"Authorization": f"Bearer {key['key']}"}
        with httpx.Client(base_url=optimizing.base_url, headers=headers) as client:
            assert client.get("/api/v1/traffic-rules").status_code == 403
            assert client.get("/api/v1/traffic-blocks").status_code == blocks, "a partner reads its own blocks"
            made = client.post("/api/v1/traffic-rules", json={"kind": "block", "variable": "sub1", "values": ["y"]})
            assert made.status_code == 403
    assert httpx.get(optimizing.base_url + "/api/v1/traffic-rules").status_code == 401
    assert len(admin.get("/api/v1/traffic-rules").json()["data"]) == 1
