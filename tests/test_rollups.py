"""The report rollups: kept in step with every write (clicks, conversions, events, changes of status, a write
that fails beside good ones), read by the report wherever they can answer it, and giving exactly what the raw
rows give, on SQLite and PostgreSQL, in UTC and in zones on the hour, 30 and 45 minutes off it, with clocks
that change."""

from __future__ import annotations

import os
import random
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from tests import factories
from tests.contract.builders import new_click, new_conversion
from tests.servers import running_server
from tests.test_reports import _database
from tracklane.domain.model import ClickDevice, ConversionStatus
from tracklane.resources.reports import ReportQuery, ZoneOffsets, parse_zone
from tracklane.services.ports import Repository
from tracklane.storage import migrate
from tracklane.storage.database import SqlDatabase
from tracklane.storage.engines import create_admin_engine, create_reader_engine, create_writer_engine
from tracklane.storage.rollups import DAY, HOUR, NO_SHIFT, cover, cover_by_difference, rebuild
from tracklane.storage.schema import click_rollups, clicks, conversion_rollups

START = datetime(2026, 3, 6, 0, 0, tzinfo=UTC)  # New York's clocks go forward on the 8th
DEVICES = (ClickDevice("desktop", "Linux", "Firefox", False), ClickDevice("mobile", "iOS", "Safari", False),
           ClickDevice("desktop", None, None, True))  # fmt: skip
ZONES = ("UTC", "Asia/Kathmandu", "Asia/Kolkata", "America/New_York", "Europe/Berlin", "Australia/Lord_Howe")
GROUPINGS = (("day",), ("hour", "offer"), ("week", "partner", "status"), ("month", "advertiser"), ("day", "sub1"),
             ("date", "country", "currency"), ("device", "event", "origin"), ())  # fmt: skip
BROWSER = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[SqlDatabase, sa.Engine]]:
    for url in _database(request.param, tmp_path):
        engine = create_admin_engine(url)
        migrate.upgrade(engine)
        db = SqlDatabase(create_writer_engine(url), create_reader_engine(url), 0)
        try:
            yield db, engine
        finally:
            db.close()
            engine.dispose()


def _program(db: SqlDatabase) -> None:
    """Four days of clicks at random instants, their conversions and events in EUR and JPY, then changes of status."""
    rng = random.Random(11)
    converted: list[int] = []

    def day_of_traffic(repo: Repository, day: int) -> None:
        for n in range(60):
            at = START + timedelta(days=day, seconds=rng.randrange(86_400), microseconds=rng.randrange(10**6))
            click = repo.insert_click(new_click(
                offer_id=1 + n % 3, partner_id=1 + rng.randrange(3), advertiser_id=None if n % 17 == 0 else 1,
                subs=(rng.choice(("a", "b", None)), None, None, None, None), ip=f"203.0.113.{rng.randrange(6)}",
                device=DEVICES[n % 3], country=rng.choice(("DE", "NP", None)),
                verdict="rejected" if n % 11 == 0 else "accepted", revenue=Decimal("0.05") * (n % 2),
                created_at=at,
            ))  # fmt: skip
            if n % 3 == 0:
                status = (ConversionStatus.APPROVED, ConversionStatus.PENDING, ConversionStatus.REJECTED)[n % 9 // 3]
                conversion = repo.insert_conversion(new_conversion(
                    click, currency=("EUR", "JPY")[n % 2], status=status, dedup_key=f"{click.id}:base",
                    amount=Decimal(rng.randrange(1, 9000)) / 100, created_at=at + timedelta(minutes=rng.randrange(900)),
                ))  # fmt: skip
                converted.append(conversion.id)
            if n % 5 == 0:
                repo.insert_conversion(new_conversion(
                    click, event_id=9, event_name="upsell", dedup_key=None, amount=None, origin="segment",
                    created_at=at + timedelta(minutes=30)))  # fmt: skip

    for day in range(4):
        db.write_now(lambda repo, day=day: day_of_traffic(repo, day))  # type: ignore[misc]

    def review(repo: Repository) -> None:
        for conversion_id in converted[::4]:
            repo.update_conversion_status(conversion_id, ConversionStatus.APPROVED, None, (), START)
        for conversion_id in converted[1::5]:
            repo.update_conversion_status(conversion_id, ConversionStatus.REJECTED, "fraud", (), START)

    db.write_now(review)


def _queries() -> Iterator[ReportQuery]:
    ranges = (
        (None, None),
        (START + timedelta(hours=6, minutes=45), START + timedelta(days=2, hours=18)),
        (START + timedelta(minutes=7, microseconds=5), START + timedelta(days=3, hours=23, seconds=59)),
    )
    for zone in ZONES:
        for group_by in GROUPINGS:
            for created_from, created_to in ranges:
                yield ReportQuery(group_by, created_from=created_from, created_to=created_to, zone=parse_zone(zone))
    yield ReportQuery(("day", "partner"), filters={"sub1": "a", "status": "approved"}, zone=parse_zone("Asia/Kolkata"))
    yield ReportQuery(("offer",), filters={"country": "NP", "currency": "EUR"}, partner_id=2, offer_id=1)
    yield ReportQuery(("hour",), filters={"device": "mobile", "event": "upsell"}, advertiser_id=1)


def test_reports_from_the_cells_equal_the_raw_rows(database: tuple[SqlDatabase, sa.Engine]) -> None:
    db, _ = database
    _program(db)
    for query in _queries():
        planned = db.read_now(lambda repo, q=query: repo._plan(q))  # type: ignore[attr-defined,misc]
        # cells of no shape come by the hour, the others by the UTC day only; no UTC hour is a local hour of a
        # zone 30 or 45 minutes off the hour (Lord Howe is an hour off in March)
        split = {"sub1", "country", "device"} & {*query.group_by, *query.filters}
        by_hour = "hour" in query.group_by or (query.times and query.zone is not UTC)
        off_the_hour = str(query.zone) in ("Asia/Kathmandu", "Asia/Kolkata") and "hour" in query.group_by
        assert (planned is not None) == (not (split and by_hour) and not off_the_hour), query
        cells = db.read_now(lambda repo, q=query: repo.report(q))  # type: ignore[misc]
        raw = db.read_now(lambda repo, q=query: repo.report(q, from_rollups=False))  # type: ignore[misc]
        assert cells == raw, query
        assert cells, query


def test_a_zones_day_is_read_from_its_utc_days_cell_less_the_hours_outside_it() -> None:
    """Three local days of New York in winter (UTC-5): each read as 1 day cell and 10 hour cells, not 24 hour
    cells; the days' cells are labelled 5 hours after their start, which is the local day they stand for.
    Two days of Berlin (UTC+1): 3 cells each."""
    zone = parse_zone("America/New_York")
    start = datetime(2026, 1, 5, 5, tzinfo=UTC)
    end = start + timedelta(days=3)
    offsets = ZoneOffsets.over(zone, start, end)
    five = timedelta(hours=5)
    pieces = cover_by_difference(start, end, "", ("day",), offsets)
    expected = []
    for n in range(3):
        day = datetime(2026, 1, 5 + n, tzinfo=UTC)
        expected += [(DAY, day, day + timedelta(days=1), 1, five), (HOUR, day, day + five, -1, five),
                     (HOUR, day + timedelta(days=1), day + timedelta(days=1) + five, 1, NO_SHIFT)]  # fmt: skip
    assert pieces == expected
    assert all(offsets.label("day", first + shift) == offsets.label("day", start + timedelta(days=n // 3))
               for n, (_, first, _, _, shift) in enumerate(pieces) if shift)  # fmt: skip
    # a day of Berlin (UTC+1) from 23:00 UTC: that hour, then the next UTC day less its last hour (3 cells)
    berlin = parse_zone("Europe/Berlin")
    start = datetime(2026, 1, 4, 23, tzinfo=UTC)
    offsets = ZoneOffsets.over(berlin, start, start + timedelta(days=2))
    hour = timedelta(hours=1)
    expected = []
    for n in range(2):
        day = datetime(2026, 1, 5 + n, tzinfo=UTC)
        expected += [(HOUR, day - hour, day, 1, NO_SHIFT), (DAY, day, day + timedelta(days=1), 1, NO_SHIFT),
                     (HOUR, day + 23 * hour, day + timedelta(days=1), -1, -23 * hour)]  # fmt: skip
    assert cover_by_difference(start, start + timedelta(days=2), "", ("day",), offsets) == expected
    assert offsets.label("day", datetime(2026, 1, 5, 23, tzinfo=UTC) - 23 * hour) == "2026-01-05"
    # where the shape has no hour cells, or an hour is asked, nothing is subtracted
    assert cover_by_difference(start, end, "sub1", ("day",), offsets) == [
        (grain, first, until, 1, NO_SHIFT) for grain, first, until in cover(start, end, "sub1", ("day",), offsets)
    ]
    assert all(sign == 1 for *_, sign, _ in cover_by_difference(start, end, "", ("hour",), offsets))


def test_what_the_cells_cannot_answer_is_counted_from_the_raw_rows(database: tuple[SqlDatabase, sa.Engine]) -> None:
    db, _ = database
    _program(db)
    for query in (
        ReportQuery(("day", "sub2")),  # a dimension no shape splits by
        ReportQuery(("sub1", "country")),  # two click dimensions
        ReportQuery(("day",), date_basis="click"),
        ReportQuery(("hour", "sub1"), zone=parse_zone("Asia/Kolkata")),  # sub1 cells are UTC days
    ):
        assert db.read_now(lambda repo, q=query: repo._plan(q)) is None, query  # type: ignore[attr-defined,misc]
        assert db.read_now(lambda repo, q=query: repo.report(q)), query  # type: ignore[misc]


def _cells(engine: sa.Engine) -> dict[str, set[tuple[Any, ...]]]:
    with engine.connect() as conn:
        return {table.name: {tuple(row) for row in conn.execute(sa.select(table))
                             if any(row[len(row) - len(_metric_columns(table)):])}
                for table in (click_rollups, conversion_rollups)}  # fmt: skip


def _metric_columns(table: sa.Table) -> list[str]:
    return [c.name for c in table.columns if not c.primary_key]


def test_cells_kept_with_each_write_equal_a_recount_of_the_raw_rows(database: tuple[SqlDatabase, sa.Engine]) -> None:
    db, engine = database
    _program(db)
    kept = _cells(engine)
    assert kept["click_rollups"] and kept["conversion_rollups"]
    with engine.begin() as conn:
        rebuild(conn)
    assert _cells(engine) == kept


def test_a_write_that_fails_beside_good_ones_leaves_no_trace_in_the_cells(
    database: tuple[SqlDatabase, sa.Engine],
) -> None:
    db, engine = database

    def good(repo: Repository) -> None:
        repo.insert_click(new_click(created_at=START))

    def bad(repo: Repository) -> None:
        repo.insert_click(new_click(created_at=START + timedelta(hours=1)))
        raise ValueError("a fault after the click was counted")

    futures = [db.writer.submit(work) for work in (good, bad, good)]
    assert [f.exception() is None for f in futures] == [True, False, True]
    with engine.connect() as conn:
        counted = conn.execute(
            sa.select(sa.func.sum(click_rollups.c.gross_clicks)).where(click_rollups.c.shape == "",
                                                                       click_rollups.c.grain == 60)
        ).scalar_one()  # fmt: skip
    assert counted == 2
    assert db.read_now(lambda repo: repo.report(ReportQuery(("hour",))))[0].gross_clicks == 2


def test_a_click_is_unique_once_per_visitor_offer_and_partner_a_day(tmp_path: Path) -> None:
    with (
        running_server(f"sqlite:///{tmp_path / 'unique.db'}") as server,
        httpx.Client(base_url=server.base_url, headers={"Authorization": f"Bearer {server.admin_key}"}) as api,
    ):
        advertiser = factories.advertiser(api)
        offer = factories.offer(api, advertiser["id"])
        first, second = factories.partner(api), factories.partner(api)
        with httpx.Client(base_url=server.base_url, headers={"User-Agent": BROWSER}) as web:
            for partner in (first, first, first, second):
                factories.click(web, offer["id"], partner["id"])
        report = api.get("/api/v1/reports", params={"group_by": "partner"}).json()
        by_partner = {row["partner"]: row for row in report["rows"]}
        assert by_partner[first["id"]]["gross_clicks"] == 3
        assert by_partner[first["id"]]["unique_clicks"] == 1  # the same browser from the same address
        assert by_partner[second["id"]]["unique_clicks"] == 1
        assert report["totals"]["unique_clicks"] == 2  # unique clicks add up across groups


def test_reports_recount_counts_clicks_loaded_by_sql(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'imported.db'}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRACKLANE_")} | {"TRACKLANE_DATABASE_URL": url}
    migrated = subprocess.run([sys.executable, "-m", "tracklane", "migrate"], env=env, capture_output=True, timeout=60)
    assert migrated.returncode == 0, migrated.stderr
    db = SqlDatabase(create_writer_engine(url), create_reader_engine(url), 0)
    engine = create_admin_engine(url)
    try:
        db.write_now(lambda repo: repo.insert_click(new_click(created_at=START, ip="198.51.100.1")))
        with engine.begin() as conn:  # an import by SQL: the rows, without their cells or unique flags
            conn.execute(sa.insert(clicks), [
                {"transaction_id": f"import{n:026x}", "offer_id": 1, "partner_id": 1, "ip": "198.51.100.7",
                 "device_type": "desktop", "is_bot": False, "verdict": "accepted", "revenue": Decimal(0),
                 "payout": Decimal(0), "created_at": START + timedelta(hours=n)} for n in range(3)
            ])  # fmt: skip
        (line,) = db.read_now(lambda repo: repo.report(ReportQuery(())))
        assert line.gross_clicks == 1  # the cells count the click the writer recorded only
        recounted = subprocess.run([sys.executable, "-m", "tracklane", "reports", "recount"], env=env,
                                   capture_output=True, text=True, timeout=60)  # fmt: skip
        assert recounted.returncode == 0, recounted.stderr
        assert "recounted" in recounted.stdout
        (line,) = db.read_now(lambda repo: repo.report(ReportQuery(())))
        assert (line.gross_clicks, line.unique_clicks) == (4, 2)  # the imported visitor is unique once a day
    finally:
        db.close()
        engine.dispose()
