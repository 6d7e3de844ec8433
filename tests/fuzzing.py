"""What the fuzz tests share: a program seeded through the API (every kind of row, a key of each role), row
counts read straight from the database, and how many examples a run makes.

`FUZZ_SCALE` (default 1) multiplies every example count: the CI run is bounded, `scripts/fuzz` runs the same
tests longer.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
from dataclasses import dataclass, field
from typing import Any

import httpx
import sqlalchemy as sa

from tests import factories as make

BROWSER = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36"
#: The tables a refused request must leave as they were.
COUNTED = (
    "clicks",
    "conversions",
    "cap_counters",
    "segment_messages",
    "customers",
    "customer_activities",
    "deliveries",
    "advertisers",
    "partners",
    "offers",
)


def scale() -> int:
    return max(1, int(os.environ.get("FUZZ_SCALE", "1")))


def examples(base: int) -> int:
    return base * scale()


@dataclass
class Program:
    """A small program with one row of every kind the fuzzers aim at, and a key of each role."""

    base_url: str
    admin_key: str
    advertiser_key: str
    partner_key: str
    advertiser_id: int
    offer_id: int
    event_id: int
    event_name: str
    partner_id: int
    postback_token: str
    transaction_ids: list[str]
    conversion_ids: list[int]
    source_id: int
    write_key: str
    webhook_secret: str
    customer_ids: list[int] = field(default_factory=list)


def seed(base_url: str, admin_key: str) -> Program:
    """Create the program through the API and the public routes, the way users do."""
    headers = {"Authorization": f"Bearer {admin_key}"}
    with (
        httpx.Client(base_url=base_url, headers=headers, timeout=30) as admin,
        httpx.Client(base_url=base_url, headers={"User-Agent": BROWSER}, timeout=30) as web,
    ):
        advertiser = make.advertiser(admin)
        offer = make.offer(
            admin,
            advertiser["id"],
            revenue={"type": "cpa_cps", "amount": "2.00", "percent": "10"},
            caps=[{"metric": "conversions", "period": "day", "limit": 1000}],
        )
        event = make.event(admin, offer["id"], allow_multiple_per_click=True)
        partner = make.partner(admin)
        access = admin.post("/api/v1/offer-access", json={"offer_id": offer["id"], "partner_id": partner["id"]})
        assert access.status_code == 201, access.text
        payout = admin.post(
            f"/api/v1/offers/{offer['id']}/partner-payouts",
            json={"partner_id": partner["id"], "payout": {"type": "cpa", "amount": "7.00"}},
        )
        assert payout.status_code == 201, payout.text
        postback = admin.post(
            "/api/v1/partner-postbacks",
            json={"partner_id": partner["id"], "url": "https://partner.example/pb?tid={transaction_id}"},
        )
        assert postback.status_code == 201, postback.text
        webhook = admin.post("/api/v1/webhooks", json={"url": "https://hooks.example/tracklane"})
        assert webhook.status_code == 201, webhook.text
        token = advertiser["postback_token"]
        transaction_ids = [make.click(web, offer["id"], partner["id"], sub1=f"s{n}") for n in range(4)]
        conversion_ids = []
        for n, tid in enumerate(transaction_ids[:2]):
            done = web.get("/postback", params={"transaction_id": tid, "secure": token, "amount": "12.50",
                                                "order_id": f"O{n}"})  # fmt: skip
            assert done.status_code == 200, done.text
            conversion_ids.append(done.json()["conversion_id"])
        source = admin.post("/api/v1/sources", json={"name": "Shop", "advertiser_id": advertiser["id"]})
        assert source.status_code == 201, source.text
        write_key = source.json()["write_key"]
        page = {"page": {"url": f"https://shop.example/?tl_tid={transaction_ids[2]}"}}
        batch = {"batch": [
            {"type": "page", "anonymousId": "anon-1", "messageId": "seed-1", "context": page},
            {"type": "identify", "userId": "u-1", "anonymousId": "anon-1", "messageId": "seed-2",
             "traits": {"email": "ann@example.com"}},
            {"type": "track", "userId": "u-1", "event": "Order Completed", "messageId": "seed-3",
             "properties": {"order_id": "S1", "revenue": "40.00"}},
        ]}  # fmt: skip
        intake = web.post("/v1/batch", json=batch, auth=(write_key, ""))
        assert intake.status_code == 200, intake.text
        customers = admin.get("/api/v1/customers").json()["data"]
        program = Program(
            base_url=base_url,
            admin_key=admin_key,
            advertiser_key=_key(admin, "advertiser", advertiser_id=advertiser["id"]),
            partner_key=_key(admin, "partner", partner_id=partner["id"]),
            advertiser_id=advertiser["id"],
            offer_id=offer["id"],
            event_id=event["id"],
            event_name=event["name"],
            partner_id=partner["id"],
            postback_token=token,
            transaction_ids=transaction_ids,
            conversion_ids=conversion_ids,
            source_id=source.json()["id"],
            write_key=write_key,
            webhook_secret=source.json()["webhook_secret"],
            customer_ids=[customer["id"] for customer in customers],
        )
    return program


def _key(admin: httpx.Client, role: str, **owner: int) -> str:
    response = admin.post("/api/v1/api-keys", json={"role": role, **owner})
    assert response.status_code == 201, response.text
    return str(response.json()["key"])


def basic(write_key: str) -> str:
    return "Basic " + base64.b64encode(f"{write_key}:".encode()).decode()


def signature(body: bytes, secret: str) -> str:
    """`X-Signature` of Segment's Webhooks (Actions) destination: hex HMAC-SHA1 of the body."""
    return hmac.new(secret.encode(), body, hashlib.sha1).hexdigest()


class RowCounts:
    """Counts rows of `COUNTED` in one query, on SQLite or PostgreSQL."""

    def __init__(self, database_url: str) -> None:
        url = database_url.replace("postgresql://", "postgresql+psycopg://", 1)
        self.engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
        self.query = sa.text(" UNION ALL ".join(f"SELECT '{name}', COUNT(*) FROM {name}" for name in COUNTED))

    def __call__(self) -> dict[str, int]:
        with self.engine.connect() as connection:
            return {str(name): int(count) for name, count in connection.execute(self.query)}

    def close(self) -> None:
        self.engine.dispose()


def compact(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()
