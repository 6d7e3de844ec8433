"""How long a report takes over a large history: 30 days grouped by day x offer x partner (in UTC and in New
York), and by sub1; and what one round of a traffic optimization rule over every offer reads (the clicks and
base conversions of 7 days by offer, partner and sub1).

Loads CLICKS clicks and about CLICKS/10 conversions spread over the last DAYS days straight into a fresh
database, in time order, with their unique-click flags and their rollup cells counted by the code the writer
uses (bulk inserts: loading is not what is measured). The program is shaped like a network's: OFFERS offers
(one in four in EUR), PARTNERS partners, each promoting one to five offers with a few dozen sub ids at most,
their traffic spread unevenly (a few partners bring most of it), visitors coming back. Then it runs each
report ROUNDS times through the report service (rows and totals per currency, each role's view built),
alternating with the baseline: an indexed count of the same 30 days' clicks, measured in the same run so
that the ratios hold on a noisy machine. Prints the best and median time of each and its ratio to the
baseline.

    .venv/bin/python bench/reports.py [--clicks 10000000] [--days 90] [--rounds 5] [--database-url URL [--reuse]]

Without --database-url it uses a SQLite file in a temporary directory; a PostgreSQL URL must name an empty
database (the run creates the schema in it).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Table, func, select

from tracklane.bootstrap import Container, build
from tracklane.domain.model import ConversionStatus, PartnerStatus, Role
from tracklane.domain.money import PriceType
from tracklane.domain.targeting import MatchKind
from tracklane.domain.tenancy import Scope
from tracklane.domain.traffic import RuleKind, RuleStatus, TrafficRule, TrafficVariable
from tracklane.resources.advertisers import AdvertiserCreate
from tracklane.resources.conversions import ConversionChange
from tracklane.resources.fields import Amount
from tracklane.resources.offers import OfferCreate, PriceRuleBody
from tracklane.resources.partners import PartnerCreate
from tracklane.resources.reports import ReportQuery, parse_zone
from tracklane.settings import Settings
from tracklane.storage.engines import create_admin_engine
from tracklane.storage.rollups import RollupDeltas
from tracklane.storage.schema import click_rollups, clicks, conversion_rollups, conversions

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


@dataclass(slots=True)
class _Click:
    """A generated click with the columns the rollups read."""

    offer_id: int
    partner_id: int
    advertiser_id: int
    sub1: str
    country: str
    device_type: str
    is_bot: bool
    is_unique: bool
    created_at: datetime
    verdict: str = "accepted"
    revenue: Decimal = Decimal(0)
    payout: Decimal = Decimal(0)


@dataclass(slots=True)
class _Conversion:
    offer_id: int
    partner_id: int
    advertiser_id: int
    currency: str
    status: str
    created_at: datetime
    event_id: None = None
    event_name: None = None
    origin: str = "postback"
    revenue: Decimal = Decimal("12.50")
    payout: Decimal = Decimal("8.00")
    amount: Decimal = Decimal("99.00")


def _program(rng: random.Random) -> tuple[list[tuple[int, int, list[str]]], list[float]]:
    """Each partner's offers and sub ids (as (partner, offer, subs) pairs), and each pair's share of traffic."""
    pairs, weights = [], []
    for rank, partner in enumerate(rng.sample(range(1, PARTNERS + 1), PARTNERS), start=1):
        subs = [f"{partner}-{n}" for n in range(rng.choice((1, 3, 8, 20, 40)))]
        for offer in rng.sample(range(1, OFFERS + 1), rng.randint(1, 5)):
            pairs.append((partner, offer, subs))
            weights.append(rng.random() / rank**1.1)
    return pairs, weights


def load(url: str, total: int, days: int, now: datetime) -> None:
    """The traffic in time order, written in bulk with one statement per chunk, with its rollup cells."""
    engine = create_admin_engine(url)
    rng = random.Random(7)
    pairs, weights = _program(rng)
    start = now - timedelta(days=days)
    span = days * 86_400
    last_seen: dict[tuple[int, int, int], float] = {}
    visitors = max(1000, total // 5)
    deltas = RollupDeltas()
    for first in range(0, total, CHUNK):
        rows, sold = [], []
        chosen = rng.choices(pairs, weights, k=min(total, first + CHUNK) - first)
        for n, (partner, offer, subs) in enumerate(chosen, start=first):
            seconds = span * n / total
            at = start + timedelta(seconds=seconds)
            visitor = rng.randrange(visitors)
            seen = last_seen.get((offer, partner, visitor))
            last_seen[(offer, partner, visitor)] = seconds
            click = _Click(offer, partner, 1, rng.choice(subs), COUNTRIES[visitor % 8], DEVICES[visitor % 3],
                           n % 50 == 0, seen is None or seconds - seen >= 86_400, at)  # fmt: skip
            deltas.add_click(click)
            rows.append({
                "id": n + 1, "transaction_id": f"{n:032x}", "offer_id": offer, "partner_id": partner,
                "advertiser_id": 1, "sub1": click.sub1,
                "ip": f"10.{visitor >> 16}.{visitor >> 8 & 255}.{visitor & 255}",
                "device_type": click.device_type, "country": click.country, "is_bot": click.is_bot,
                "is_unique": click.is_unique, "verdict": "accepted", "revenue": Decimal(0), "payout": Decimal(0),
                "created_at": at,
            })  # fmt: skip
            converted_at = at + timedelta(minutes=30)
            if n % 10 == 3 and converted_at < now:
                conversion = _Conversion(offer, partner, 1, "EUR" if offer % 4 == 1 else "USD",
                                         "approved" if n % 7 else "pending", converted_at)  # fmt: skip
                deltas.add_conversion(conversion, click)
                sold.append({
                    "transaction_id": f"{n:032x}", "click_id": n + 1, "offer_id": offer, "partner_id": partner,
                    "advertiser_id": 1, "status": conversion.status, "revenue": conversion.revenue,
                    "payout": conversion.payout, "revenue_type": "cpa", "payout_type": "cpa",
                    "amount": conversion.amount, "currency": conversion.currency, "origin": "postback",
                    "dedup_key": f"{n + 1}:base", "trace": [], "created_at": converted_at, "updated_at": converted_at,
                })  # fmt: skip
        with engine.begin() as conn:
            _insert(conn, clicks, rows)
            _insert(conn, conversions, sold)
            if conn.dialect.name == "sqlite" and ((first // CHUNK) % 25 == 24 or first + CHUNK >= total):
                deltas.flush(conn)
        print(f"\rloaded {min(total, first + CHUNK):>11,} clicks", end="", flush=True)
    print()
    if engine.dialect.name == "postgresql":  # the cells at once, into empty tables: COPY, not one upsert each
        with engine.begin() as conn:
            click_cells, conversion_cells = deltas.cells()
            for table, cells in ((click_rollups, click_cells), (conversion_rollups, conversion_cells)):
                _copy(conn, table, [(*key, *metrics) for key, metrics in cells.items()])
        print(f"cells: {len(click_cells):,} of clicks, {len(conversion_cells):,} of conversions")
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.exec_driver_sql("ANALYZE")  # what autovacuum would do soon after a load
    engine.dispose()


def _insert(conn: Connection, table: Table, rows: list[dict[str, Any]]) -> None:
    """Insert rows through the driver, each value in its stored form (money in units, times naive UTC)."""
    if not rows:
        return
    names = list(rows[0])
    sqlite = conn.dialect.name == "sqlite"

    def stored(value: Any) -> Any:
        if isinstance(value, Decimal):
            return int(value * 10_000)
        if isinstance(value, datetime):
            naive = value.astimezone(UTC).replace(tzinfo=None)
            return naive.isoformat(" ", "microseconds") if sqlite else naive
        if isinstance(value, list):
            return json.dumps(value)
        return value

    values = [tuple(stored(row[name]) for name in names) for row in rows]
    if not sqlite:
        _copy(conn, table, values, names)
        return
    markers = ", ".join(["?"] * len(names))
    conn.exec_driver_sql(f"INSERT INTO {table.name} ({', '.join(names)}) VALUES ({markers})", values)


def _copy(conn: Connection, table: Table, rows: list[tuple[Any, ...]], names: list[str] | None = None) -> None:
    """PostgreSQL's COPY of rows in `names` order (by default the primary key's columns, then the others)."""
    if names is None:
        keys = [c.name for c in table.primary_key.columns]
        names = keys + [c.name for c in table.columns if c.name not in keys]
    cursor = conn.connection.driver_connection.cursor()  # type: ignore[union-attr]
    with cursor.copy(f"COPY {table.name} ({', '.join(names)}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row(row)


async def timed(work: Callable[[], Awaitable[Any]], rounds: int) -> list[float]:
    seconds = []
    for _ in range(rounds):
        began = time.perf_counter()
        await work()
        seconds.append(time.perf_counter() - began)
    return seconds


async def measure(container: Container, now: datetime, rounds: int) -> None:
    admin = Scope(Role.ADMIN)
    today = now.replace(hour=0, minute=0, second=0, microsecond=0)  # 30 whole days, as the console asks
    since = today - timedelta(days=30)
    by_day = ReportQuery(group_by=("day", "offer", "partner"), created_from=since, created_to=today)
    new_york = parse_zone("America/New_York")
    in_new_york = datetime.combine(since.date(), datetime.min.time(), new_york).astimezone(UTC)
    by_day_ny = ReportQuery(group_by=("day", "offer", "partner"), created_from=in_new_york,
                            created_to=in_new_york + timedelta(days=30), zone=new_york)  # fmt: skip
    by_sub1 = ReportQuery(group_by=("sub1",), created_from=since, created_to=today)

    async def baseline() -> int:
        count = select(func.count()).select_from(clicks).where(clicks.c.created_at >= since)
        return int(await container.db.read(lambda repo: repo.conn.execute(count).scalar_one()))  # type: ignore[attr-defined]

    reports = {"day x offer x partner": by_day, "the same in New York": by_day_ny, "sub1": by_sub1}
    optimizing = TrafficRule(
        id=0, kind=RuleKind.OPTIMIZE, name=None, offer_id=None, partner_id=None, variable=TrafficVariable.SUB1,
        match=MatchKind.EXACT, values=(), min_clicks=100, cvr_below_percent=Decimal("0.5"), window_days=7,
        status=RuleStatus.ACTIVE, last_evaluated_at=None, created_at=now, updated_at=now,
    )  # fmt: skip

    async def optimization() -> int:
        stats = await container.db.read(lambda repo: repo.traffic_stats(optimizing, now - timedelta(days=7)))
        return len(stats)

    pending = await container.db.read(lambda repo: list(repo.conn.execute(  # type: ignore[attr-defined]
        # from the middle of the range: a day of every report's range (New York's starts 5 hours later)
        select(conversions.c.id).where(conversions.c.status == "pending",
                                       conversions.c.created_at >= since + timedelta(days=15, hours=12),
                                       conversions.c.created_at < today).order_by(conversions.c.id).limit(rounds)
    ).scalars()))  # fmt: skip

    async def approve_one(round_: int) -> None:
        """A write inside the range: one pending conversion of one of its days approved."""
        change = ConversionChange(status=ConversionStatus.APPROVED)
        await container.conversions.change(admin, pending[round_ % len(pending)], change, "bench")

    labels = ["baseline", *(f"{label}{kind}" for label in reports for kind in KINDS), "optimization round"]
    results: dict[str, list[float]] = {label: [] for label in labels}
    for round_ in range(rounds):
        results["baseline"] += await timed(baseline, 1)
        for label, query in reports.items():
            run = lambda query=query: container.reports.run(admin, query)  # noqa: E731
            container.reports.cache.clear()  # nothing kept: counted in full
            results[f"{label}{KINDS[0]}"] += await timed(run, 1)
            results[f"{label}{KINDS[1]}"] += await timed(run, 1)
            await approve_one(round_)
            results[f"{label}{KINDS[2]}"] += await timed(run, 1)
        results["optimization round"] += await timed(optimization, 1)
    base = statistics.median(results["baseline"])
    counted = await container.db.read(lambda repo: repo.conn.execute(  # type: ignore[attr-defined]
        select(func.count()).select_from(clicks).where(clicks.c.created_at >= since, clicks.c.created_at < today)
    ).scalar_one())  # fmt: skip
    print(f"30 days: {counted:,} clicks")
    for label, query in reports.items():
        print(f"{label}: {len((await container.reports.run(admin, query)).rows):,} rows")
    print(f"optimization round: {await optimization():,} offer x partner x sub1 values judged")
    for label, seconds in results.items():
        print(f"{label:<52} best {min(seconds) * 1000:9.1f} ms  median {statistics.median(seconds) * 1000:9.1f} ms"
              f"  {statistics.median(seconds) / base:7.1f}x the indexed count")  # fmt: skip


#: How each report is timed: counted in full (nothing kept), again with nothing written since (every day
#: kept), and after a write to one of its days (that day counted again, the others kept).
KINDS = (", counted in full", ", again, nothing written since", ", after one of its days changed")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clicks", type=int, default=10_000_000)
    parser.add_argument("--days", type=int, default=90)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--database-url", default=None)
    parser.add_argument("--reuse", action="store_true", help="measure again what an earlier run loaded")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as directory:
        url = args.database_url or f"sqlite:///{Path(directory) / 'bench.db'}"
        settings = Settings(database_url=url, secrets_key="bench-secrets-key-of-32-characters!!")  # type: ignore[arg-type]
        now = datetime.now(UTC).replace(microsecond=0)
        container = build(settings)
        try:
            latest = select(func.max(clicks.c.created_at))
            last = container.db.read_now(lambda repo: repo.conn.execute(latest).scalar())  # type: ignore[attr-defined]
            if args.reuse and last is not None:
                now = last.replace(microsecond=0) + timedelta(seconds=1)
            else:
                began = time.perf_counter()
                asyncio.run(catalogue(container))
                load(url, args.clicks, args.days, now)
                print(f"load: {time.perf_counter() - began:.0f} s")
            asyncio.run(measure(container, now, args.rounds))
        finally:
            container.close()


if __name__ == "__main__":
    main()
