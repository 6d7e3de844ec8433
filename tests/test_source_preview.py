"""A Segment source's preview: a pasted message is mapped and applied as a real one would be, and undone:
nothing stored, no cap taken, nothing delivered."""

from __future__ import annotations

import json

import httpx
import pytest

from tests import factories
from tests.console import csrf_of, person, signed_in
from tests.servers import RunningServer
from tracklane.domain.model import Role

BROWSER = {"User-Agent": "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0"}


def _order(tid: str) -> str:
    properties = {"order_id": "A1", "revenue": "120.00", "currency": "USD", "transaction_id": tid}
    return json.dumps({"type": "track", "event": "Order Completed", "userId": "u1", "properties": properties})


def test_a_preview_shows_the_conversion_and_keeps_nothing(api: httpx.Client, server: RunningServer) -> None:
    adv = factories.advertiser(api)
    caps = [{"metric": "conversions", "period": "total", "limit": 1}]
    offer = factories.offer(api, adv["id"], revenue={"type": "cps", "percent": "10"}, caps=caps)
    partner = factories.partner(api)
    source = factories.created(api.post("/api/v1/sources", json={"name": "Shop", "advertiser_id": adv["id"]}))
    factories.created(api.post("/api/v1/webhooks", json={"url": "https://hooks.example/t"}))
    with httpx.Client(base_url=server.base_url, headers=BROWSER) as web:
        tid = factories.click(web, offer["id"], partner["id"])
    deliveries_before = api.get("/api/v1/deliveries").json()["data"]
    with signed_in(server, person(server, Role.ADMIN)) as admin:
        token = csrf_of(admin.get(f"/ui/sources/{source['id']}").text)
        for _ in range(2):  # twice: the first did not take the cap of 1, nor its order id
            shown = admin.post(
                f"/ui/sources/{source['id']}/preview", data={"csrf_token": token, "message": _order(tid)}
            )
            assert shown.status_code == 200
            assert 'It would be: <span class="status approved">conversion</span>' in shown.text
            assert "$12.00" in shown.text and "$6.00" in shown.text  # 10 % of 120.00; the payout's flat 6.00
        bad = admin.post(f"/ui/sources/{source['id']}/preview", data={"csrf_token": token, "message": "{oops"})
        assert bad.status_code == 400 and "message: not JSON" in bad.text
        unknown = admin.post(
            f"/ui/sources/{source['id']}/preview", data={"csrf_token": token, "message": _order("f" * 32)}
        )
        assert "unknown_transaction" in unknown.text
        assert admin.post(f"/ui/sources/{source['id']}/preview", data={"message": _order(tid)}).status_code == 403
    assert api.get("/api/v1/conversions").json()["data"] == []
    assert api.get(f"/api/v1/sources/{source['id']}/messages").json()["data"] == []
    assert api.get("/api/v1/deliveries").json()["data"] == deliveries_before
    with httpx.Client(base_url=server.base_url, headers=BROWSER) as web:
        real = web.get("/postback", params={"transaction_id": tid, "secure": adv["postback_token"], "amount": "120"})
    assert real.json()["status"] == "approved", "the previews took the cap"


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_preview_of_another_source_id_is_not_found(server: RunningServer) -> None:
    with signed_in(server, person(server, Role.ADMIN)) as admin:
        token = csrf_of(admin.get("/ui/sources").text)
        answer = admin.post("/ui/sources/999/preview", data={"csrf_token": token, "message": "{}"})
    assert answer.status_code == 404
