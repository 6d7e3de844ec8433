"""The README's tour, through a real server: click, postback, duplicate, refusals."""

from __future__ import annotations

import re

import httpx

from tests import factories


def test_click_then_postback_then_duplicate(api: httpx.Client, web: httpx.Client) -> None:
    adv, offer, partner = factories.program(api)
    response = web.get(f"/r/{offer['id']}/{partner['id']}", params={"sub1": "a b&c"})
    assert response.status_code == 302
    location = response.headers["location"]
    tid = re.search(r"tid=([0-9a-f]{32})", location)
    assert tid is not None
    assert "s1=a%20b%26c" in location
    transaction_id = tid.group(1)

    first = web.get("/postback", params={"transaction_id": transaction_id, "secure": adv["postback_token"]})
    assert first.status_code == 200
    body = first.json()
    assert body["result"] == "accepted"
    assert (body["revenue"], body["payout"], body["status"]) == ("10.00", "6.00", "approved")

    again = web.get("/postback", params={"transaction_id": transaction_id, "secure": adv["postback_token"]})
    assert again.json()["result"] == "duplicate"
    assert again.json()["conversion_id"] == body["conversion_id"]
