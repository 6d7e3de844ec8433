"""Plain functions that create program resources through the API (the way users do)."""

from __future__ import annotations

import itertools
from typing import Any

import httpx

_serial = itertools.count(1)


def created(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def advertiser(api: httpx.Client, **fields: Any) -> dict[str, Any]:
    return created(api.post("/api/v1/advertisers", json={"name": f"Advertiser {next(_serial)}", **fields}))


def partner(api: httpx.Client, **fields: Any) -> dict[str, Any]:
    n = next(_serial)
    return created(api.post("/api/v1/partners", json={"name": f"Partner {n}", "email": f"p{n}@example.com", **fields}))


def offer(api: httpx.Client, advertiser_id: int, **fields: Any) -> dict[str, Any]:
    body = {
        "advertiser_id": advertiser_id,
        "name": f"Offer {next(_serial)}",
        "destination_url": "https://shop.example/land?tid={transaction_id}&s1={sub1}",
        "revenue": {"type": "cpa", "amount": "10.00"},
        "payout": {"type": "cpa", "amount": "6.00"},
        **fields,
    }
    return created(api.post("/api/v1/offers", json=body))


def event(api: httpx.Client, offer_id: int, **fields: Any) -> dict[str, Any]:
    body = {
        "name": f"event{next(_serial)}",
        "revenue": {"type": "fixed", "amount": "3.00"},
        "payout": {"type": "fixed", "amount": "1.00"},
        **fields,
    }
    return created(api.post(f"/api/v1/offers/{offer_id}/events", json=body))


def program(api: httpx.Client, **offer_fields: Any) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """An advertiser, one offer of it and one active partner."""
    adv = advertiser(api)
    return adv, offer(api, adv["id"], **offer_fields), partner(api)


def click(web: httpx.Client, offer_id: int, partner_id: int, **params: str) -> str:
    """Follow a tracking link; return the new transaction_id."""
    response = web.get(f"/r/{offer_id}/{partner_id}", params=params)
    assert response.status_code == 302, response.text
    return response.cookies[f"tl_{offer_id}"]
