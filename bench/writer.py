"""Throughput of the group-commit writer alone, with and without refused writes in the mix.

Clicks are recorded through the click service straight into `SqlDatabase.write` (no HTTP), CONCURRENCY of
them in flight at once; the other mix puts one refused postback (a wrong postback token for an existing
click) among every REFUSAL_EVERY writes. The two mixes alternate in ROUNDS short phases on one database
for DURATION seconds each in all, so that a noisy machine slows both alike. A refusal must cost the other
writes of its batch nothing, so the two rates should be close and no batch re-run with savepoints.

    .venv/bin/python bench/writer.py [--duration 10] [--rounds 10] [--concurrency 256] [--refusal-every 100]
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from tracklane.bootstrap import Container, build
from tracklane.domain.errors import PostbackRefused
from tracklane.domain.model import ClickDevice, Origin
from tracklane.domain.postback import ConversionRequest
from tracklane.services.clicks import ClickRequest
from tracklane.services.demo import create_demo
from tracklane.settings import Settings


@dataclass
class Totals:
    writes: int = 0
    seconds: float = 0.0
    refusals: int = 0
    batches: int = 0
    rerun: int = 0

    def line(self, label: str) -> str:
        return (
            f"{label:<36} {self.writes / self.seconds:8.0f} writes/s  {self.writes / max(self.batches, 1):6.1f} "
            f"writes/batch  refusals {self.refusals:5d}  batches re-run with savepoints {self.rerun}"
        )


async def measure(container: Container, args: argparse.Namespace) -> dict[int, Totals]:
    """Alternate short phases of both mixes on one database, so that a noisy machine affects both alike."""
    program = await create_demo(container.catalog, "https://shop.example")
    offer, partner = program.offers[1], program.partners[0]
    request = ClickRequest(offer.id, partner.id, (None,) * 5, None, "203.0.113.7", "Mozilla/5.0", ClickDevice(),
                           None, None)  # fmt: skip
    first = await container.clicks.record(request)
    refused = ConversionRequest(first.click.transaction_id, "not-the-token", None, None, None, None, None, (None,) * 5)
    writer = container.db.writer
    totals = {0: Totals(), args.refusal_every: Totals()}

    async def phase(refusal_every: int, seconds: float) -> None:
        counter = itertools.count()
        stop_at = time.perf_counter() + seconds
        total = totals[refusal_every]

        async def client() -> None:
            while time.perf_counter() < stop_at:
                if refusal_every and next(counter) % refusal_every == refusal_every - 1:
                    try:
                        await container.conversions.record(refused, Origin.POSTBACK)
                    except PostbackRefused:
                        total.refusals += 1
                else:
                    await container.clicks.record(request)
                total.writes += 1

        batches, rerun, started = writer.batches, writer.isolated_batches, time.perf_counter()
        await asyncio.gather(*(client() for _ in range(args.concurrency)))
        total.seconds += time.perf_counter() - started
        total.batches += writer.batches - batches
        total.rerun += writer.isolated_batches - rerun

    for _ in range(args.rounds):
        for refusal_every in totals:
            await phase(refusal_every, args.duration / args.rounds)
    return totals


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per mix, in all")
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--concurrency", type=int, default=256)
    parser.add_argument("--refusal-every", type=int, default=100)
    parser.add_argument("--database-url", default=None, help="default: a fresh SQLite file")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        url = args.database_url or f"sqlite:///{Path(tmp) / 'bench.db'}"
        container = build(Settings(database_url=url, catalog_cache_seconds=60))
        try:
            totals = asyncio.run(measure(container, args))
        finally:
            container.close()
    plain, mixed = totals[0], totals[args.refusal_every]
    print(plain.line("clicks only"))
    print(mixed.line(f"1 refused postback per {args.refusal_every} writes"))
    print(f"with refusals: {mixed.writes / mixed.seconds / (plain.writes / plain.seconds):.2f}x the rate without")


if __name__ == "__main__":
    main()
