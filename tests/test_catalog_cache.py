"""The tracking path's in-memory catalogue: never stale within a process, bounded staleness across processes."""

from __future__ import annotations

import time

import httpx

from tests import factories
from tests.servers import running_server


def _verdict(web: httpx.Client, api: httpx.Client, offer_id: int, partner_id: int) -> str | None:
    response = web.get(f"/r/{offer_id}/{partner_id}")
    assert response.status_code == 302, response.text
    click = api.get(f"/api/v1/clicks/{response.cookies[f'tl_{offer_id}']}").json()
    reason: str | None = click["reject_reason"]
    return reason


def test_a_change_through_the_same_process_applies_to_the_next_click(api: httpx.Client, web: httpx.Client) -> None:
    _, offer, partner = factories.program(api, fallback_url="https://fallback.example/")
    assert _verdict(web, api, offer["id"], partner["id"]) is None  # offer and partner are now in memory
    assert api.patch(f"/api/v1/partners/{partner['id']}", json={"status": "blocked"}).status_code == 200
    assert _verdict(web, api, offer["id"], partner["id"]) == "partner_blocked"
    assert api.patch(f"/api/v1/partners/{partner['id']}", json={"status": "active"}).status_code == 200
    assert api.patch(f"/api/v1/offers/{offer['id']}", json={"status": "paused"}).status_code == 200
    assert _verdict(web, api, offer["id"], partner["id"]) == "offer_paused"


def test_a_change_through_another_process_applies_within_the_cache_time(database_url: str) -> None:
    with (
        running_server(database_url, catalog_cache_seconds=1.0) as first,
        running_server(database_url, catalog_cache_seconds=1.0) as second,
    ):
        auth = {"Authorization": f"Bearer {first.admin_key}"}
        with (
            httpx.Client(base_url=first.base_url, headers=auth, timeout=30) as api,
            httpx.Client(base_url=second.base_url, timeout=30) as web,
        ):
            _, offer, partner = factories.program(api, fallback_url="https://fallback.example/")
            assert _verdict(web, api, offer["id"], partner["id"]) is None
            assert api.patch(f"/api/v1/offers/{offer['id']}", json={"status": "paused"}).status_code == 200
            paused_at = time.monotonic()
            while _verdict(web, api, offer["id"], partner["id"]) != "offer_paused":
                assert time.monotonic() - paused_at < 5, "the other process kept the paused offer running"
                time.sleep(0.1)
