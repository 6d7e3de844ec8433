"""Kept report days (`services/report_cache.py`) on SQLite and PostgreSQL: a report made from kept days equals
the report counted in full, after every kind of write that changes a day (new clicks and conversions, a status
change, an offer's currency, a recount), in zones off the hour and across a change of offset, with ranges that
end inside a day, for each role; a day nothing changed is not counted again."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import msgspec
import pytest

from tests.contract.builders import new_click, new_conversion
from tests.servers import POSTGRES_ENV, postgres_database, sqlite_url
from tracklane.bootstrap import Container, build
from tracklane.domain.model import ConversionStatus, PartnerStatus, Role
from tracklane.domain.money import PriceType
from tracklane.domain.tenancy import Scope
from tracklane.resources.advertisers import AdvertiserCreate
from tracklane.resources.fields import Amount
from tracklane.resources.offers import OfferCreate, OfferUpdate, PriceRuleBody
from tracklane.resources.partners import PartnerCreate
from tracklane.resources.reports import ReportQuery, parse_zone
from tracklane.services.ports import Repository
from tracklane.services.reports import ReportService
from tracklane.settings import Settings
from tracklane.storage import rollups

BASE = datetime(2026, 3, 1, tzinfo=UTC)  # New York's clocks go forward on 2026-03-08
ADMIN = Scope(Role.ADMIN)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def container(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Container]:
    if request.param == "sqlite":
        yield from _built(sqlite_url(tmp_path))
        return
    if not os.environ.get(POSTGRES_ENV):
        pytest.skip(f"PostgreSQL tests need {POSTGRES_ENV} (CI sets it)")
    with postgres_database() as url:
        yield from _built(url)


def _built(url: str) -> Iterator[Container]:
    settings = Settings(database_url=url, secrets_key="report-cache-test-key-of-32-chars!")  # type: ignore[arg-type]
    built = build(settings)
    try:
        asyncio.run(_catalogue(built))
        yield built
    finally:
        built.close()


async def _catalogue(container: Container) -> None:
    advertiser = await container.catalog.create_advertiser(AdvertiserCreate(name="Shop"))
    for currency in ("USD", "EUR"):
        await container.catalog.create_offer(OfferCreate(
            advertiser_id=advertiser.id, name=f"Offer {currency}", destination_url="https://shop.example/",
            revenue=PriceRuleBody(type=PriceType.CPA, amount=Amount("12.50")),
            payout=PriceRuleBody(type=PriceType.CPA, amount=Amount("8.00")), currency=currency,
        ))  # fmt: skip
    for n in range(2):
        await container.catalog.create_partner(
            PartnerCreate(name=f"P{n}", email=f"p{n}@x.example"), PartnerStatus.ACTIVE
        )


def _traffic(first: int, count: int) -> Any:
    """`count` clicks every 97 minutes from click `first` on, a third of them converted (pending, approved or
    rejected) ten hours later."""

    def work(repo: Repository) -> list[int]:
        pending = []
        for n in range(first, first + count):
            click = repo.insert_click(new_click(
                offer_id=1 + n % 2, partner_id=1 + n % 3 % 2, subs=(f"s{n % 4}", None, None, None, None),
                ip=f"203.0.113.{n % 7}", created_at=BASE + timedelta(minutes=97 * n),
            ))  # fmt: skip
            if n % 3 == 0:
                status = (ConversionStatus.PENDING, ConversionStatus.APPROVED, ConversionStatus.REJECTED)[n % 9 // 3]
                conversion = repo.insert_conversion(new_conversion(
                    click, currency=("USD", "EUR")[n % 2], status=status, dedup_key=f"{click.id}:base",
                    created_at=BASE + timedelta(minutes=97 * n + 600),
                ))  # fmt: skip
                if status is ConversionStatus.PENDING:
                    pending.append(conversion.id)
        return pending

    return work


QUERIES = [
    ReportQuery(("day", "offer", "partner"), created_from=BASE, created_to=BASE + timedelta(days=12)),
    ReportQuery(
        ("day", "sub1"),
        created_from=BASE + timedelta(hours=7, minutes=10),
        created_to=BASE + timedelta(days=9, hours=3),
        zone=parse_zone("Asia/Kathmandu"),
    ),
    ReportQuery(
        ("day", "hour", "currency"),
        created_from=BASE + timedelta(days=2),
        created_to=BASE + timedelta(days=11),
        zone=parse_zone("America/New_York"),
    ),
    ReportQuery(
        ("day", "partner"), created_from=BASE, created_to=BASE + timedelta(days=12), filters={"status": "approved"}
    ),
]
SCOPES = [ADMIN, Scope(Role.ADVERTISER, advertiser_id=1), Scope(Role.PARTNER, partner_id=2)]


def _same_as_counted_in_full(container: Container) -> None:
    """Every query, for every role, as the cached service makes it equals what a service keeping nothing
    counts."""
    in_full = ReportService(container.db)
    for scope in SCOPES:
        for query in QUERIES:
            kept = asyncio.run(container.reports.run(scope, query))
            counted = asyncio.run(in_full.run(scope, query))
            assert msgspec.to_builtins(kept) == msgspec.to_builtins(counted), (scope, query)
            assert kept.rows, (scope, query)


def test_a_report_of_kept_days_equals_the_report_counted_in_full_after_each_write(container: Container) -> None:
    cache = container.reports.cache
    assert cache.max_rows > 0
    pending = container.db.write_now(_traffic(0, 120))
    _same_as_counted_in_full(container)
    kept_rows = cache.rows
    assert kept_rows > 0

    hits = cache.hits  # nothing written: every whole day comes from what was kept
    _same_as_counted_in_full(container)
    assert cache.hits > hits and cache.rows == kept_rows

    container.db.write_now(_traffic(120, 15))  # new clicks and conversions on the last days
    _same_as_counted_in_full(container)

    container.db.write_now(  # a conversion of an early day approved
        lambda repo: repo.update_conversion_status(pending[0], ConversionStatus.APPROVED, None, [], BASE)
    )
    _same_as_counted_in_full(container)

    asyncio.run(container.catalog.update_offer(2, OfferUpdate(currency="GBP")))  # every day's clicks of offer 2
    _same_as_counted_in_full(container)

    def reverse_by_sql(repo: Repository) -> None:  # a change made by SQL, then recounted
        conn = repo.conn  # type: ignore[attr-defined]
        conn.exec_driver_sql("UPDATE clicks SET verdict = 'rejected' WHERE partner_id = 2 AND offer_id = 1")
        rollups.recount(conn)

    container.db.write_now(reverse_by_sql)
    _same_as_counted_in_full(container)


def test_only_the_day_a_write_changed_is_counted_again(container: Container) -> None:
    pending = container.db.write_now(_traffic(0, 120))
    query = QUERIES[0]
    asyncio.run(container.reports.run(ADMIN, query))
    cache = container.reports.cache
    misses = cache.misses
    asyncio.run(container.reports.run(ADMIN, query))
    assert cache.misses == misses  # all 12 days kept

    container.db.write_now(
        lambda repo: repo.update_conversion_status(pending[0], ConversionStatus.APPROVED, None, [], BASE)
    )
    asyncio.run(container.reports.run(ADMIN, query))
    assert cache.misses == misses + 1


def test_a_write_counts_again_only_the_local_day_its_hour_falls_in(container: Container) -> None:
    """New York's day spans two UTC days: a change early in a UTC day (New York's evening before) counts
    again that one New York day, not the one the rest of the UTC day falls in."""
    pending = container.db.write_now(_traffic(0, 120))
    new_york = parse_zone("America/New_York")
    start = datetime(2026, 3, 2, tzinfo=new_york).astimezone(UTC)
    query = ReportQuery(("day", "offer"), created_from=start, created_to=start + timedelta(days=5), zone=new_york)
    conversions = [container.db.read_now(lambda repo, c=c: repo.get_conversion(c)) for c in pending]  # type: ignore[misc]
    early = next(c for c in conversions if c and start + timedelta(days=1) <= c.created_at < query.created_to
                 and c.created_at.hour < 4)  # fmt: skip
    asyncio.run(container.reports.run(ADMIN, query))
    cache = container.reports.cache
    misses = cache.misses
    container.db.write_now(
        lambda repo: repo.update_conversion_status(early.id, ConversionStatus.APPROVED, None, [], BASE)
    )
    kept = asyncio.run(container.reports.run(ADMIN, query))
    assert cache.misses == misses + 1
    counted = asyncio.run(ReportService(container.db).run(ADMIN, query))
    assert msgspec.to_builtins(kept) == msgspec.to_builtins(counted)


def test_days_written_before_versions_were_kept_are_counted_again_after_a_change_to_every_day(
    container: Container,
) -> None:
    container.db.write_now(_traffic(0, 120))
    container.db.write_now(lambda repo: repo.conn.exec_driver_sql("DELETE FROM report_versions"))  # type: ignore[attr-defined]
    _same_as_counted_in_full(container)  # kept at version 0: no hour has one
    asyncio.run(container.catalog.update_offer(1, OfferUpdate(currency="GBP")))
    _same_as_counted_in_full(container)


def test_each_role_and_tenant_keeps_its_own_days(container: Container) -> None:
    container.db.write_now(_traffic(0, 120))
    query = QUERIES[0]
    partner = asyncio.run(container.reports.run(Scope(Role.PARTNER, partner_id=2), query))
    admin = asyncio.run(container.reports.run(ADMIN, query))
    other_partner = asyncio.run(container.reports.run(Scope(Role.PARTNER, partner_id=1), query))
    assert {row.partner for row in partner.rows} == {2}
    assert {row.partner for row in other_partner.rows} == {1}
    assert {row.partner for row in admin.rows} == {1, 2}
    assert "revenue" not in msgspec.to_builtins(partner.rows[0])
