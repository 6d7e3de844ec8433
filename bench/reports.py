"""How long a report takes over a large history: 30 days grouped by day x offer x partner, and by sub1.

Loads CLICKS clicks and CLICKS/10 conversions spread over the last DAYS days straight into a fresh database
(bulk inserts: loading is not what is measured), then runs each report ROUNDS times through the report
service, alternating with the baseline: an indexed count of the same 30 days' clicks, measured in the same
run so that the ratios hold on a noisy machine. Prints the best and median time of each and its ratio to
the baseline.

    .venv/bin/python bench/reports.py [--clicks 10000000] [--days 90] [--rounds 5] [--database-url URL]

Without --database-url it uses a SQLite file in a temporary directory; a PostgreSQL URL must name an empty
database (the run creates the schema in it).
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from sqlalchemy import func, insert, select

from tracklane.bootstrap import Container, build
from tracklane.domain.model import PartnerStatus, Role
from tracklane.domain.money import PriceType
from tracklane.domain.tenancy import Scope
from tracklane.resources.advertisers import AdvertiserCreate
from tracklane.resources.fields import Amount
from tracklane.resources.offers import OfferCreate, PriceRuleBody
from tracklane.resources.partners import PartnerCreate
from tracklane.resources.reports import ReportQuery
from tracklane.settings import Settings
from tracklane.storage.engines import create_admin_engine
from tracklane.storage.schema import clicks, conversions

OFFERS, PARTNERS, CHUNK = 40, 400, 20_000
COUNTRIES = ("US", "DE", "GB", "FR", "IN", "NP", "JP", "BR")
DEVICES = ("desktop", "mobile", "tablet")


async def catalogue(container: Container) -> None:
    """An advertiser, its OFFERS offers (in USD, and one in four in EUR) and PARTNERS partners."""
    advertiser = await container.catalog.create_advertiser(AdvertiserCreate(name="Bench"))
    for n in range(OFFERS):
        await container.catalog.create_offer(OfferCreate(
            advertiser_id=advertiser.id, name=f"Offer {n}", destination_url="https://shop.example/?t={transaction_id}",
            revenue=PriceRuleBody(type=PriceType.CPA, amount=Amount("12.50")),
            payout=PriceRuleBody(type=PriceType.CPA, amount=Amount("8.00")), currency="EUR" if n % 4 == 0 else "USD",
        ))  # fmt: skip
    for n in range(PARTNERS):
        await container.catalog.create_partner(
            PartnerCreate(name=f"Partner {n}", email=f"p{n}@bench.example"), PartnerStatus.ACTIVE
        )


def load(url: str, total: int, days: int, now: datetime) -> None:
    """The traffic, written in bulk with one statement per chunk."""
    engine = create_admin_engine(url)
    rng = random.Random(7)
    start = now - timedelta(days=days)
    span = days * 86_400
    for first in range(0, total, CHUNK):
        rows, sold = [], []
        for n in range(first, min(total, first + CHUNK)):
            at = start + timedelta(seconds=rng.random() * span)
            offer, partner = 1 + n % OFFERS, 1 + rng.randrange(PARTNERS)
            rows.append({
                "id": n + 1, "transaction_id": f"{n:032x}", "offer_id": offer, "partner_id": partner,
                "advertiser_id": 1, "sub1": f"s{rng.randrange(5000)}", "ip": f"10.{n % 250}.{n % 199}.{n % 97}",
                "device_type": DEVICES[n % 3], "country": COUNTRIES[n % 8], "is_bot": n % 50 == 0,
                "verdict": "accepted", "revenue": Decimal(0), "payout": Decimal(0), "created_at": at,
            })  # fmt: skip
            if n % 10 == 3:
                sold.append({
                    "transaction_id": f"{n:032x}", "click_id": n + 1, "offer_id": offer, "partner_id": partner,
                    "advertiser_id": 1, "status": "approved" if n % 7 else "pending", "revenue": Decimal("12.50"),
                    "payout": Decimal("8.00"), "revenue_type": "cpa", "payout_type": "cpa", "amount": Decimal("99.00"),
                    "currency": "EUR" if offer % 4 == 1 else "USD", "origin": "postback", "dedup_key": f"{n + 1}:base",
                    "trace": [],
                    "created_at": at + timedelta(minutes=30), "updated_at": at + timedelta(minutes=30),
                })  # fmt: skip
        with engine.begin() as conn:
            conn.execute(insert(clicks), rows)
            conn.execute(insert(conversions), sold)
        print(f"\rloaded {min(total, first + CHUNK):>11,} clicks", end="", flush=True)
    print()
    engine.dispose()


async def timed(work: Callable[[], Awaitable[Any]], rounds: int) -> list[float]:
    seconds = []
    for _ in range(rounds):
        began = time.perf_counter()
        await work()
        seconds.append(time.perf_counter() - began)
    return seconds


async def measure(container: Container, now: datetime, rounds: int) -> None:
    admin = Scope(Role.ADMIN)
    since = now - timedelta(days=30)
    by_day = ReportQuery(group_by=("day", "offer", "partner"), created_from=since, created_to=now)
    by_sub1 = ReportQuery(group_by=("sub1",), created_from=since, created_to=now)

    async def baseline() -> int:
        count = select(func.count()).select_from(clicks).where(clicks.c.created_at >= since)
        return int(await container.db.read(lambda repo: repo.conn.execute(count).scalar_one()))  # type: ignore[attr-defined]

    results: dict[str, list[float]] = {"baseline": [], "day x offer x partner": [], "sub1": []}
    for _ in range(rounds):
        results["baseline"] += await timed(baseline, 1)
        results["day x offer x partner"] += await timed(lambda: container.reports.run(admin, by_day), 1)
        results["sub1"] += await timed(lambda: container.reports.run(admin, by_sub1), 1)
    rows = len((await container.reports.run(admin, by_day)).rows)
    base = statistics.median(results["baseline"])
    print(f"30-day report rows grouped by day x offer x partner: {rows:,}")
    for label, seconds in results.items():
        print(f"{label:<24} best {min(seconds) * 1000:9.1f} ms  median {statistics.median(seconds) * 1000:9.1f} ms"
              f"  {statistics.median(seconds) / base:7.1f}x the indexed count")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clicks", type=int, default=10_000_000)
    parser.add_argument("--days", type=int, default=90)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--database-url", default=None)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as directory:
        url = args.database_url or f"sqlite:///{Path(directory) / 'bench.db'}"
        settings = Settings(database_url=url, secrets_key="bench-secrets-key-of-32-characters!!")  # type: ignore[arg-type]
        now = datetime.now(UTC).replace(microsecond=0)
        container = build(settings)
        try:
            began = time.perf_counter()
            asyncio.run(catalogue(container))
            load(url, args.clicks, args.days, now)
            print(f"load: {time.perf_counter() - began:.0f} s")
            asyncio.run(measure(container, now, args.rounds))
        finally:
            container.close()


if __name__ == "__main__":
    main()
