"""The reports API a program can be run on: time buckets in IANA zones (45-minute offsets, clocks changing),
clicks and conversions by either date basis, every dimension and filter, money per currency, each role's
metrics, CSV and JSON Lines downloads, and a 400 naming each bad parameter.

The numbers are checked against direct SQL counts of the clicks and conversions tables, on SQLite and on
PostgreSQL; the in-memory repository of the unit tests is checked against both on the same rows; the zone
arithmetic against the zone database read minute by minute.
"""

from __future__ import annotations

import csv
import io
import json
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from itertools import pairwise
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import msgspec
import pytest
import sqlalchemy as sa

from tests import factories
from tests.contract.builders import new_click, new_conversion
from tests.fakes import FakeDatabase
from tests.servers import POSTGRES_ENV, RunningServer, postgres_database, running_server, sqlite_url
from tracklane.domain.errors import InvalidParameter
from tracklane.domain.model import ClickDevice, ConversionStatus, Role
from tracklane.domain.tenancy import Scope
from tracklane.resources.reports import ReportLine, ReportQuery, ZoneOffsets, parse_zone, report_view_for
from tracklane.services.ports import Repository
from tracklane.storage import migrate
from tracklane.storage.database import SqlDatabase
from tracklane.storage.engines import create_admin_engine, create_reader_engine, create_writer_engine
from tracklane.storage.rollups import recount
from tracklane.storage.schema import clicks, conversions

BROWSER = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36"
IPHONE = ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
          "Version/17.0 Mobile/15E148 Safari/604.1")  # fmt: skip
GOOGLEBOT = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"
KATHMANDU = ZoneInfo("Asia/Kathmandu")
MIDNIGHT = datetime(2026, 2, 28, 18, 15, tzinfo=UTC)  # 2026-03-01T00:00 in Kathmandu (+05:45)
PARTNER_NEVER = {"revenue", "pending_revenue", "profit", "margin", "rpc", "aov", "sale_amount"}
ADVERTISER_NEVER = {"payout", "pending_payout", "profit", "margin", "epc"}


@dataclass
class World:
    server: RunningServer
    api: httpx.Client
    engine: sa.Engine
    adv: dict[str, Any]
    usd: dict[str, Any]
    jpy: dict[str, Any]
    other: dict[str, Any]
    p1: dict[str, Any]
    p2: dict[str, Any]
    advertiser_key: str
    partner_key: str

    def get(self, params: Mapping[str, Any], key: str | None = None, accept: str | None = None) -> httpx.Response:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        return self.api.get("/api/v1/reports", params=params, headers=headers | ({"Accept": accept} if accept else {}))

    def report(self, key: str | None = None, **params: Any) -> dict[str, Any]:
        response = self.get(params, key)
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    def count(self, statement: sa.Select[Any]) -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(statement).scalar_one())


def _database(kind: str, directory: Path) -> Iterator[str]:
    if kind == "sqlite":
        yield sqlite_url(directory)
        return
    if not os.environ.get(POSTGRES_ENV):
        pytest.skip(f"PostgreSQL tests need {POSTGRES_ENV} (CI sets it)")
    with postgres_database() as url:
        yield url


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def world(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """One program, built once per database: two advertisers, a USD and a JPY offer, two partners, clicks placed
    around local midnight in Kathmandu and around the clocks going back in New York, and their conversions."""
    for url in _database(request.param, tmp_path_factory.mktemp("reports")):
        with running_server(url, country_header="X-Country") as server:
            headers = {"Authorization": f"Bearer {server.admin_key}"}
            with httpx.Client(base_url=server.base_url, headers=headers, timeout=30) as api:
                engine = create_admin_engine(url)
                try:
                    yield _seed(server, api, engine)
                finally:
                    engine.dispose()


def _seed(server: RunningServer, api: httpx.Client, engine: sa.Engine) -> World:
    adv = factories.advertiser(api)
    usd = factories.offer(api, adv["id"])
    upsell = factories.event(api, usd["id"], name="upsell")
    jpy = factories.offer(api, adv["id"], currency="JPY", revenue={"type": "cpa", "amount": "1500"},
                          payout={"type": "cpa", "amount": "900"})  # fmt: skip
    other_adv = factories.advertiser(api)
    other = factories.offer(api, other_adv["id"])
    p1, p2 = factories.partner(api), factories.partner(api)
    world = World(
        server, api, engine, adv, usd, jpy, other, p1, p2,
        advertiser_key=factories.created(api.post("/api/v1/api-keys", json={
            "role": "advertiser", "advertiser_id": adv["id"]}))["key"],
        partner_key=factories.created(api.post("/api/v1/api-keys", json={
            "role": "partner", "partner_id": p1["id"]}))["key"],
    )  # fmt: skip
    clicks_ = [  # offer, partner, user agent, country, sub1, when, ip
        (usd, p1, BROWSER, "DE", "=cmd|' /C calc'!A0", MIDNIGHT - timedelta(microseconds=1), "198.51.100.1"),
        (usd, p1, IPHONE, "DE", "-2+3", MIDNIGHT, "198.51.100.1"),
        (usd, p2, BROWSER, "FR", "plain", MIDNIGHT + timedelta(hours=23, minutes=59), "198.51.100.2"),
        (jpy, p1, IPHONE, "JP", "@x", MIDNIGHT + timedelta(days=1, minutes=1), "198.51.100.3"),
        (jpy, p2, GOOGLEBOT, "JP", "bot", MIDNIGHT + timedelta(days=1, hours=5), "198.51.100.2"),
        (other, p2, BROWSER, "US", "theirs", MIDNIGHT + timedelta(days=1, hours=6), "198.51.100.9"),
        (usd, p2, BROWSER, "US", "first", datetime(2026, 11, 1, 5, 30, tzinfo=UTC), "198.51.100.4"),  # 01:30 EDT
        (usd, p2, BROWSER, "US", "second", datetime(2026, 11, 1, 6, 30, tzinfo=UTC), "198.51.100.4"),  # 01:30 EST
    ]
    tids = []
    with httpx.Client(base_url=server.base_url, headers={"user-agent": BROWSER}, timeout=30) as web:
        for offer, partner, *_, sub1, _, _ in clicks_:
            tids.append(factories.click(web, offer["id"], partner["id"], sub1=sub1, source_id="feed"))

        def convert(index: int, at: datetime, **params: str) -> int:
            token = (adv if clicks_[index][0] is not other else other_adv)["postback_token"]
            answer = web.get("/postback", params={"transaction_id": tids[index], "secure": token, **params})
            assert answer.status_code == 200, answer.text
            conversion_id = int(answer.json()["conversion_id"])
            with engine.begin() as conn:
                conn.execute(sa.update(conversions).where(conversions.c.id == conversion_id).values(created_at=at))
            return conversion_id

        convert(1, MIDNIGHT + timedelta(days=2, hours=18), amount="50")  # two days after its click
        convert(1, MIDNIGHT + timedelta(days=2, hours=19), event_name=upsell["name"], amount="20")
        convert(3, MIDNIGHT + timedelta(days=1, minutes=5), amount="3000")
        rejected = convert(2, MIDNIGHT + timedelta(hours=23, minutes=59, seconds=30))
        convert(5, MIDNIGHT + timedelta(days=1, hours=7))
    with engine.begin() as conn:  # the clicks move to their times once converted (within the attribution window)
        for tid, (_, _, agent, country, _, when, ip) in zip(tids, clicks_, strict=True):
            conn.execute(sa.update(clicks).where(clicks.c.transaction_id == tid)
                         .values(created_at=when, ip=ip, user_agent=agent, country=country,
                                 device_type="mobile" if agent == IPHONE else "desktop", is_bot=agent == GOOGLEBOT,
                                 verdict="accepted"))  # fmt: skip
        recount(conn)
    changed = api.patch(f"/api/v1/conversions/{rejected}", json={"status": "rejected", "reason": "fraud"})
    assert changed.status_code == 200, changed.text
    return world


def _rows(report: dict[str, Any], *dimensions: str) -> dict[tuple[Any, ...], dict[str, Any]]:
    return {(*(row[d] for d in dimensions), row["currency"]): row for row in report["rows"]}


def _local_day(day: str, zone: ZoneInfo) -> tuple[datetime, datetime]:
    start = datetime.fromisoformat(day).replace(tzinfo=zone)
    return start.astimezone(UTC), (start + timedelta(days=1)).astimezone(UTC)


def test_days_in_kathmandu_hold_the_clicks_and_conversions_sql_counts(world: World) -> None:
    report = world.report(group_by="day", tz="Asia/Kathmandu", advertiser_id=world.adv["id"])
    days = sorted({row["day"] for row in report["rows"]}, key=datetime.fromisoformat)
    assert days == ["2026-02-28", "2026-03-01", "2026-03-02",
                    "2026-03-03", "2026-11-01"]  # fmt: skip
    for day in days:
        start, end = _local_day(day[:10], KATHMANDU)
        rows = [row for row in report["rows"] if row["day"] == day]
        in_day = clicks.c.created_at >= start, clicks.c.created_at < end, clicks.c.advertiser_id == world.adv["id"]
        assert sum(r["gross_clicks"] for r in rows) == world.count(sa.select(sa.func.count()).where(*in_day))
        assert sum(r["unique_clicks"] for r in rows) == world.count(
            sa.select(sa.func.count()).where(*in_day, clicks.c.is_unique.is_(True)))  # fmt: skip
        converted = (conversions.c.created_at >= start, conversions.c.created_at < end,
                     conversions.c.advertiser_id == world.adv["id"], conversions.c.event_id.is_(None),
                     conversions.c.status != "rejected")  # fmt: skip
        assert sum(r["conversions"] for r in rows) == world.count(sa.select(sa.func.count()).where(*converted))
    by_day = _rows(report, "day")
    # the click a microsecond before local midnight is on the 28th, the one at midnight on the 1st
    assert by_day[("2026-02-28", "USD")]["gross_clicks"] == 1
    assert by_day[("2026-03-01", "USD")]["gross_clicks"] == 2
    dates = world.report(group_by="date", tz="Asia/Kathmandu", advertiser_id=world.adv["id"])
    assert [row["date"] for row in dates["rows"]][:2] == ["2026-02-28", "2026-03-01"]  # the earlier shape of `day`
    utc = _rows(world.report(group_by="day", advertiser_id=world.adv["id"]), "day")
    assert utc[("2026-02-28", "USD")]["gross_clicks"] == 2  # in UTC both are on the 28th


def test_hours_weeks_and_months_start_at_their_local_start(world: World) -> None:
    kolkata = _rows(world.report(group_by="hour", tz="Asia/Kolkata", offer_id=world.usd["id"]), "hour")
    assert kolkata[("2026-02-28T23:00:00+05:30", "USD")]["gross_clicks"] == 2  # 23:44:59.999999 and 23:45
    new_york = _rows(world.report(group_by="hour", tz="America/New_York", sub1="first"), "hour")
    new_york |= _rows(world.report(group_by="hour", tz="America/New_York", sub1="second"), "hour")
    # 01:00 comes twice the night the clocks go back: two buckets
    assert set(new_york) == {("2026-11-01T01:00:00-04:00", "USD"), ("2026-11-01T01:00:00-05:00", "USD")}
    weeks = _rows(world.report(group_by="week", tz="Asia/Kathmandu", offer_id=world.usd["id"]), "week")
    assert {week for week, _ in weeks} == {"2026-02-23", "2026-03-02",
                                           "2026-10-26"}  # fmt: skip
    assert weeks[("2026-02-23", "USD")]["gross_clicks"] == 3  # Saturday 28th and Sunday 1st
    months = _rows(world.report(group_by="month", tz="America/New_York", offer_id=world.usd["id"]), "month")
    assert {m for m, _ in months} == {"2026-02-01", "2026-03-01", "2026-11-01"}
    assert months[("2026-03-01", "USD")]["gross_clicks"] == 1  # 2026-03-01 13:14 in New York


def test_conversions_count_on_their_own_day_or_on_their_clicks(world: World) -> None:
    usd = world.usd["id"]
    own = _rows(world.report(group_by="day", offer_id=usd), "day")
    assert own[("2026-03-03", "USD")]["conversions"] == 1  # the click was on 2026-02-28 (UTC)
    assert own[("2026-03-03", "USD")]["events"] == 1
    assert own[("2026-02-28", "USD")]["conversions"] == 0
    by_click = _rows(world.report(group_by="day", offer_id=usd, date_basis="click"), "day")
    assert by_click[("2026-02-28", "USD")]["conversions"] == 1
    assert ("2026-03-03", "USD") not in by_click
    # `from`/`to` without an offset are local times of `tz`, and follow the date basis
    march = {"offer_id": usd, "from": "2026-03-02", "to": "2026-03-03", "tz": "Asia/Kathmandu"}
    assert world.report(**march)["totals"]["conversions"] == 0  # converted 2026-03-03 18:00 in Kathmandu
    assert world.report(**{**march, "from": "2026-03-03", "to": "2026-03-04"})["totals"]["conversions"] == 1
    assert world.report(**{**march, "from": "2026-03-01", "date_basis": "click"})["totals"]["conversions"] == 1
    ancient = {"from": "0001-01-01T00:00:00+00:00", "to": "0001-01-04", "tz": "America/New_York"}
    assert world.report(group_by="hour,month", **ancient)["rows"] == []


def test_money_is_added_per_currency_and_shown_in_its_minor_unit(world: World) -> None:
    report = world.report(group_by="offer", advertiser_id=world.adv["id"])
    assert report["totals"] is None  # USD and JPY: no total across them
    totals = {t["currency"]: t for t in report["totals_by_currency"]}
    assert set(totals) == {"USD", "JPY"}
    assert (totals["JPY"]["revenue"], totals["JPY"]["payout"], totals["JPY"]["profit"]) == ("1500", "900", "600")
    assert (totals["JPY"]["sale_amount"], totals["JPY"]["aov"], totals["JPY"]["margin"]) == ("3000", "3000", "40.00")
    assert (totals["USD"]["revenue"], totals["USD"]["payout"]) == ("13.00", "7.00")  # conversion and event
    for currency, total in totals.items():
        sql = sa.select(sa.func.sum(conversions.c.revenue)).where(
            conversions.c.currency == currency, conversions.c.status == "approved",
            conversions.c.advertiser_id == world.adv["id"])  # fmt: skip
        with world.engine.connect() as conn:
            assert Decimal(total["revenue"]) == conn.execute(sql).scalar_one()
    rows = _rows(report, "offer")
    assert rows[(world.jpy["id"], "JPY")]["revenue"] == "1500" and (world.jpy["id"], "USD") not in rows
    assert (rows[(world.usd["id"], "USD")]["clicks"], rows[(world.usd["id"], "USD")]["gross_clicks"]) == (5, 5)
    assert rows[(world.usd["id"], "USD")]["unique_clicks"] == 3  # three addresses among five clicks
    one = world.report(group_by="offer", currency="jpy")
    assert one["totals"]["currency"] == "JPY" and one["totals_by_currency"] == [one["totals"]]
    assert [row["offer"] for row in one["rows"]] == [world.jpy["id"]]
    by_currency = world.report(group_by="currency", advertiser_id=world.adv["id"])
    assert [row["currency"] for row in by_currency["rows"]] == ["JPY", "USD"]


def test_each_role_sees_its_own_metrics_of_its_own_rows(world: World) -> None:
    admin = world.report(group_by="offer,partner")
    assert {"revenue", "payout", "profit", "margin", "epc", "rpc", "aov"} <= set(admin["rows"][0])
    advertiser = world.report(world.advertiser_key, group_by="offer,partner")
    assert {row["offer"] for row in advertiser["rows"]} == {world.usd["id"], world.jpy["id"]}
    for row in [*advertiser["rows"], *advertiser["totals_by_currency"]]:
        assert not set(row) & ADVERTISER_NEVER and {"revenue", "rpc", "aov", "sale_amount"} <= set(row)
    partner = world.report(world.partner_key, group_by="offer")
    assert {row["offer"] for row in partner["rows"]} == {world.usd["id"], world.jpy["id"]}
    for row in [*partner["rows"], *partner["totals_by_currency"]]:
        assert not set(row) & PARTNER_NEVER and {"payout", "epc", "pending_payout"} <= set(row)
    jpy = next(row for row in partner["rows"] if row["currency"] == "JPY")
    assert (jpy["payout"], jpy["epc"], jpy["clicks"], jpy["cvr"]) == ("900", "900", 1, "100.00")
    for key in (world.advertiser_key, world.partner_key):
        downloaded = world.get({"format": "csv", "group_by": "offer"}, key).text.splitlines()[0].split(",")
        assert not set(downloaded) & (ADVERTISER_NEVER if key == world.advertiser_key else PARTNER_NEVER)
    refused = world.get({"partner_id": world.p2["id"]}, world.partner_key)
    assert (refused.status_code, refused.json()["error"]) == (403, "forbidden")


def test_dimensions_and_filters_split_and_narrow_the_traffic(world: World) -> None:
    adv = world.adv["id"]
    devices = _rows(world.report(group_by="device,os,browser", advertiser_id=adv), "device")
    assert devices[("mobile", "USD")]["gross_clicks"] == 1 and devices[("mobile", "JPY")]["gross_clicks"] == 1
    legacy = world.report(group_by="device_type", advertiser_id=adv, device_type="mobile")
    assert {row["device_type"] for row in legacy["rows"]} == {"mobile"}
    countries = _rows(world.report(group_by="country,sub1", advertiser_id=adv, country="de"), "country", "sub1")
    assert set(countries) == {("DE", "=cmd|' /C calc'!A0", "USD"), ("DE", "-2+3", "USD")}
    statuses = _rows(world.report(group_by="status", advertiser_id=adv), "status")
    assert statuses[(None, "USD")]["gross_clicks"] == 5 and statuses[("rejected", "USD")]["rejected"] == 1
    assert statuses[("approved", "USD")]["conversions"] == 1 and statuses[("approved", "USD")]["events"] == 1
    approved = world.report(offer_id=world.usd["id"], status="approved")["totals"]
    assert (approved["clicks"], approved["conversions"], approved["rejected"]) == (5, 1, 0)  # clicks: as without it
    events = _rows(world.report(group_by="event", offer_id=world.usd["id"]), "event")
    assert events[("upsell", "USD")]["events"] == 1 and events[(None, "USD")]["conversions"] == 1
    assert world.report(offer_id=world.usd["id"], event="upsell")["totals"]["revenue"] == "3.00"
    assert [t["conversions"] for t in world.report(origin="api")["totals_by_currency"]] == [0, 0]
    assert world.report(origin="postback", advertiser_id=adv)["totals"] is None  # two currencies still
    assert [r["source_id"] for r in world.report(group_by="source_id", offer_id=world.usd["id"])["rows"]] == ["feed"]
    for dimension in ("sub2", "sub3", "sub4", "sub5", "advertiser", "origin"):
        assert world.report(group_by=dimension)["rows"], dimension
    unknown = world.report(group_by="offer", offer_id=987654321)
    assert unknown["rows"] == [] and unknown["totals_by_currency"] == []
    assert (unknown["totals"]["gross_clicks"], unknown["totals"]["revenue"], unknown["totals"]["currency"]) == (
        0, "0.00", None)  # fmt: skip


def test_csv_and_json_lines_are_streamed_downloads_of_every_row(world: World) -> None:
    params = {"group_by": "sub1,offer", "advertiser_id": world.adv["id"]}
    rows = world.report(**params)["rows"]
    download = world.get({"format": "csv", **params})
    assert download.status_code == 200 and download.headers["content-type"].startswith("text/csv")
    assert download.headers["content-disposition"] == 'attachment; filename="tracklane-report.csv"'
    table = list(csv.reader(io.StringIO(download.text)))
    assert table[0][:4] == ["sub1", "offer", "currency", "gross_clicks"] and len(table) == len(rows) + 1
    sub1s = {line[0] for line in table[1:]}
    assert {"'=cmd|' /C calc'!A0", "'-2+3", "'@x", "plain"} <= sub1s  # formulas neutralised, text kept
    assert all(not cell.startswith(("=", "+", "-", "@")) for line in table[1:] for cell in line[:2])
    assert world.get(params, accept="text/csv").text == download.text
    for lines in (world.get({"format": "jsonl", **params}),
                  world.get(params, accept="application/x-ndjson, application/json;q=0.5")):  # fmt: skip
        assert lines.headers["content-type"].startswith("application/x-ndjson")
        assert [json.loads(line) for line in lines.text.splitlines()] == rows
    assert world.get(params, accept="text/csv;q=0.2, application/json").json()["rows"] == rows


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"group_by": "colour"}, "group_by"),
        ({"group_by": "day,day"}, "group_by"),
        ({"group_by": "device,device_type"}, "group_by"),
        ({"tz": "Mars/Olympus_Mons"}, "tz"),
        ({"tz": "../../etc/passwd"}, "tz"),
        ({"date_basis": "postback"}, "date_basis"),
        ({"format": "xml"}, "format"),
        ({"colour": "red"}, "colour"),
        ({"status": "paid"}, "status"),
        ({"origin": "fax"}, "origin"),
        ({"currency": "dollars"}, "currency"),
        ({"offer_id": "1_0"}, "offer_id"),
        ({"from": "yesterday"}, "from"),
        ({"to": "0001-01-01T00:00:00", "tz": "Asia/Tokyo"}, "to"),
        ({"sub1": "x" * 256}, "sub1"),
        ({"device": "mobile", "device_type": "mobile"}, "device_type"),
    ],
)
def test_a_bad_parameter_is_a_400_naming_it(world: World, params: dict[str, str], field: str) -> None:
    answer = world.get(params)
    assert (answer.status_code, answer.json()["field"]) == (400, field), answer.text


def test_a_repeated_parameter_is_a_400_naming_it(world: World) -> None:
    answer = world.api.get("/api/v1/reports?group_by=offer&group_by=day")
    assert (answer.status_code, answer.json()["field"]) == (400, "group_by")


def test_the_document_describes_the_parameters_and_formats(world: World) -> None:
    operation = world.api.get("/api/openapi.json").json()["paths"]["/api/v1/reports"]["get"]
    names = {p["name"] for p in operation["parameters"]}
    assert {"group_by", "tz", "date_basis", "format", "from", "to", "offer_id", "sub1", "device", "event",
            "status", "origin", "currency", "country", "os", "browser", "source_id"} <= names  # fmt: skip
    assert {"application/json", "text/csv", "application/x-ndjson"} <= set(operation["responses"]["200"]["content"])


# --- the in-memory repository against SQL, on the same rows ------------------------------------------------------


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def sql_database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SqlDatabase]:
    for url in _database(request.param, tmp_path):
        engine = create_admin_engine(url)
        try:
            migrate.upgrade(engine)
        finally:
            engine.dispose()
        db = SqlDatabase(create_writer_engine(url), create_reader_engine(url), 0)
        try:
            yield db
        finally:
            db.close()


def test_the_in_memory_report_counts_what_sql_counts(sql_database: SqlDatabase) -> None:
    fake = FakeDatabase()
    base = datetime(2026, 3, 7, 20, 0, tzinfo=UTC)
    devices = (ClickDevice("desktop", "Linux", "Firefox", False), ClickDevice("mobile", "iOS", "Safari", False),
               ClickDevice("desktop", None, None, True))  # fmt: skip

    def program(repo: Repository) -> None:
        for n in range(40):
            click = repo.insert_click(
                new_click(
                    offer_id=1 + n % 2,
                    partner_id=1 + n % 3,
                    subs=(f"s{n % 4}", None, None, None, None),
                    ip=f"203.0.113.{n % 7}",
                    device=devices[n % 3],
                    country=("DE", "NP", None)[n % 3],
                    verdict="rejected" if n % 11 == 0 else "accepted",
                    created_at=base + timedelta(minutes=97 * n),
                )
            )
            if n % 3 == 0:
                status = (ConversionStatus.APPROVED, ConversionStatus.PENDING, ConversionStatus.REJECTED)[n % 9 // 3]
                repo.insert_conversion(
                    new_conversion(
                        click,
                        currency=("EUR", "JPY")[n % 2],
                        status=status,
                        dedup_key=f"{click.id}:base",
                        created_at=base + timedelta(minutes=97 * n + 600),
                    )
                )
            if n % 5 == 0:
                repo.insert_conversion(new_conversion(
                    click, event_id=9, event_name="upsell", dedup_key=None, amount=None, origin="segment",
                    created_at=base + timedelta(minutes=97 * n + 30)))  # fmt: skip

    fake.write_now(program)
    sql_database.write_now(program)
    queries = [
        ReportQuery(("partner",)),
        ReportQuery(()),
        ReportQuery(("day", "sub1"), zone=parse_zone("Asia/Kathmandu")),
        ReportQuery(("hour",), zone=parse_zone("America/New_York"), date_basis="click"),
        ReportQuery(("week", "month", "date"), zone=parse_zone("Australia/Lord_Howe")),
        ReportQuery(("event", "status", "origin", "currency"), filters={"country": "DE"}),
        ReportQuery(("device", "os", "browser"), filters={"status": "approved", "currency": "EUR"}),
        ReportQuery(("offer", "advertiser"), created_from=base + timedelta(hours=5),
                    created_to=base + timedelta(days=1), partner_id=2, filters={"event": "upsell"}),
    ]  # fmt: skip
    for query in queries:
        expected = sql_database.read_now(lambda repo, query=query: repo.report(query))  # type: ignore[misc]
        assert expected, query
        raw = sql_database.read_now(lambda repo, query=query: repo.report(query, from_rollups=False))  # type: ignore[misc]
        assert raw == expected, query
        assert fake.read_now(lambda repo, query=query: repo.report(query)) == expected, query  # type: ignore[misc]
    clocks_change = ReportQuery(("hour",), zone=parse_zone("America/New_York"))
    hours = [line.group["hour"] for line in sql_database.read_now(lambda repo: repo.report(clocks_change))]
    assert "2026-03-08T01:00:00-05:00" in hours and "2026-03-08T03:00:00-04:00" in hours  # 02:00 never was
    assert not any(str(hour).startswith("2026-03-08T02") for hour in hours)


# --- the zone arithmetic against the zone database ---------------------------------------------------------------


@pytest.mark.parametrize("name", ["Asia/Kathmandu", "America/New_York", "Australia/Lord_Howe", "America/Santiago",
                                  "Europe/London", "Asia/Kolkata"])  # fmt: skip
def test_every_bucket_starts_at_the_first_instant_the_zone_shows_in_it(name: str) -> None:
    """Around each change of the zone's offset in 2026, every 5 minutes: the bucket an instant is put in starts
    at the first of those instants with the same local hour (and offset) or date."""
    zone = ZoneInfo(name)
    year = [datetime(2026, 1, 1, tzinfo=UTC) + timedelta(hours=h) for h in range(366 * 24)]
    changes = [t for t, u in pairwise(year) if t.astimezone(zone).utcoffset() != u.astimezone(zone).utcoffset()]
    changes = changes or [datetime(2026, 6, 1, tzinfo=UTC)]
    offsets = ZoneOffsets.over(zone, year[0], year[-1])
    for change in changes:
        moments = [change - timedelta(hours=30) + timedelta(minutes=5 * i) for i in range(12 * 60)]
        for dimension in ("hour", "day"):
            first: dict[tuple[str, Any], datetime] = {}
            for moment in moments:
                local = moment.astimezone(zone)
                label = local.strftime("%Y-%m-%dT%H" if dimension == "hour" else "%Y-%m-%d")
                first.setdefault((label, local.utcoffset() if dimension == "hour" else None), moment)
            for moment in moments[12 * 12 : -12 * 12]:  # a whole day either side
                local = moment.astimezone(zone)
                label = local.strftime("%Y-%m-%dT%H" if dimension == "hour" else "%Y-%m-%d")
                start = first[(label, local.utcoffset() if dimension == "hour" else None)]
                key = offsets.key(dimension, offsets.label(dimension, moment), offsets.at(moment))
                expected = start.astimezone(zone).isoformat() if dimension == "hour" else label  # a day is its date
                assert key == expected, (name, dimension, moment)


def test_a_zone_name_is_one_of_the_database() -> None:
    assert parse_zone("UTC") is UTC and parse_zone("Asia/Kathmandu") == KATHMANDU
    assert replace(ReportQuery(()), zone=KATHMANDU).zone is KATHMANDU
    for name in ("localtime", "Asia/Kathmandu/..", "asia/kathmandu", "x" * 65, ""):
        with pytest.raises(InvalidParameter) as refused:
            parse_zone(name)
        assert refused.value.field == "tz"


MINOR_UNITS = [("JPY", ("1234", "617")), ("USD", ("1234.00", "617.00")), ("KWD", ("1234.000", "617.000")),
               ("CLF", ("1234.0000", "617.0000"))]  # fmt: skip


@pytest.mark.parametrize(("currency", "shown"), MINOR_UNITS)
def test_money_is_shown_in_its_currencys_minor_unit(currency: str, shown: tuple[str, str]) -> None:
    line = ReportLine(currency=currency, clicks=2, conversions=2, orders=2, revenue=1234_0000, sale_amount=1234_0000,
                      payout=617_0000)  # money in storage units  # fmt: skip
    view = msgspec.to_builtins(report_view_for(Scope(Role.ADMIN), [line], [line]))
    assert (view["totals"]["revenue"], view["totals"]["aov"]) == (shown[0], shown[1])
    assert (view["rows"][0]["payout"], view["rows"][0]["currency"]) == (shown[1], currency)
