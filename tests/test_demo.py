"""`tracklane demo --clicks N`: a believable network with months of traffic, recorded by the live code paths,
whose reports agree with its rows, that announces none of its past, and that the same seed draws again."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner
from sqlalchemy import ColumnElement, Connection, Engine, Table, and_, create_engine, func, select

from tests.servers import running_server, secrets_env, sqlite_url
from tracklane.bootstrap import build
from tracklane.cli import main
from tracklane.services.demo import DEMO_ADMIN, create_network
from tracklane.services.demo_traffic import BOTS, DESKTOP, MOBILE, Entry, TrafficPlan, draw_traffic
from tracklane.settings import Settings
from tracklane.storage.engines import normalise_url
from tracklane.storage.schema import (
    advertisers,
    clicks,
    conversions,
    customer_activities,
    customers,
    deliveries,
    offers,
    partners,
    segment_messages,
    traffic_blocks,
    traffic_rules,
    users,
)
from tracklane.web.devices import detect_device

CLICKS = 3000


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    created = create_engine(normalise_url(database_url))
    yield created
    created.dispose()


def demo(database_url: str, *args: str) -> str:
    """Run `tracklane demo ... --no-serve` in this process; its standard output."""
    env = {"TRACKLANE_DATABASE_URL": database_url, "TRACKLANE_LOG_LEVEL": "WARNING", **secrets_env(database_url)}
    result = CliRunner().invoke(main, ["demo", *args, "--no-serve"], env=env)
    assert result.exit_code == 0, result.output
    return result.stdout


def test_demo_records_a_network_with_months_of_traffic(tmp_path: Path) -> None:
    database_url = sqlite_url(tmp_path)
    engine = create_engine(database_url)
    try:
        _check_network(database_url, engine)
    finally:
        engine.dispose()


def _check_network(database_url: str, engine: Engine) -> None:
    started = datetime.now(UTC)
    output = demo(database_url, "--clicks", str(CLICKS), "--days", "90", "--seed", "9")
    assert f"Recorded {CLICKS:,} clicks" in output and "--seed 9 draws the same traffic again" in output
    assert f"Admin user {DEMO_ADMIN}: set its password at http://127.0.0.1:8080/ui/accept?token=" in output
    assert "/r/1/1?sub1=demo" in output  # the small program's links, as `serve --demo` prints them

    with engine.connect() as conn:
        first, last = conn.execute(select(func.min(clicks.c.created_at), func.max(clicks.c.created_at))).one()
        assert count(conn, clicks) == CLICKS
        assert started - timedelta(days=90) <= first and last <= datetime.now(UTC)
        assert last - first > timedelta(days=80)  # spread over the period, not bunched
        assert count(conn, advertisers) == 3
        assert 8 <= count(conn, offers) <= 10
        statuses = tally(conn, partners.c.status)
        assert 12 <= sum(statuses.values()) <= 20 and statuses["pending"] >= 3 and statuses["blocked"] == 1

        converted = count(conn, conversions, conversions.c.event_id.is_(None), conversions.c.status != "rejected")
        assert 0.02 * CLICKS <= converted <= 0.05 * CLICKS
        by_status = tally(conn, conversions.c.status)
        assert by_status["approved"] > by_status["rejected"] > 0 and by_status["pending"] > 0
        assert set(tally(conn, conversions.c.currency)) == {"USD", "EUR", "JPY"}
        assert {"purchase", "signup"} <= set(tally(conn, conversions.c.event_name))
        assert set(tally(conn, conversions.c.origin)) == {"postback", "segment"}

        assert {"partner_blocked", "offer_access_not_approved"} <= set(tally(conn, clicks.c.reject_reason))
        assert count(conn, clicks, clicks.c.is_bot.is_(True)) > 0
        assert {"US", "DE", "JP"} <= set(tally(conn, clicks.c.country))
        assert {"desktop", "mobile", "tablet", "bot"} <= set(tally(conn, clicks.c.device_type))
        assert len(tally(conn, clicks.c.sub1)) > 20

        assert count(conn, customers) > 20
        assert {"signup", "payment", "churn"} <= set(tally(conn, customer_activities.c.kind))
        assert count(conn, segment_messages) > 0
        assert tally(conn, users.c.role) == {"admin": 1}
        assert tally(conn, traffic_rules.c.kind) == {"block": 1, "optimize": 1}, "the console's traffic page has rules"
        evaluated = select(traffic_rules.c.last_evaluated_at).where(traffic_rules.c.kind == "optimize")
        assert conn.execute(evaluated).scalar_one() is not None, "evaluated on the traffic recorded"
        blocks = conn.execute(select(traffic_blocks.c.clicks, traffic_blocks.c.conversions)).all()
        assert all(won * 200 < clicked and clicked >= 30 for clicked, won in blocks), blocks
        assert f"Traffic rules: {len(blocks)} sub ids newly blocked" in output

    assert_reports_equal_the_rows(database_url, engine)


def count(conn: Connection, table: Table, *where: ColumnElement[bool]) -> int:
    found = conn.scalar(select(func.count()).select_from(table).where(*where))
    assert found is not None
    return found


def tally(conn: Connection, column: ColumnElement[Any]) -> dict[Any, int]:
    """How many rows have each value of the column."""
    counted: dict[Any, int] = dict(conn.execute(select(column, func.count()).group_by(column)).all())
    return counted


def assert_reports_equal_the_rows(database_url: str, engine: Engine) -> None:
    """The report's totals per currency are the sums of the clicks' and conversions' rows."""
    with running_server(database_url) as server:
        report = httpx.get(
            f"{server.base_url}/api/v1/reports", params={"group_by": "offer"},
            headers={"Authorization": f"Bearer {server.admin_key}"}, timeout=30,
        ).json()  # fmt: skip
    totals = {t["currency"]: t for t in report["totals_by_currency"]}
    currency = offers.c.currency
    with engine.connect() as conn:
        billable = and_(clicks.c.verdict == "accepted", clicks.c.is_bot.is_(False))
        by_clicks = select(currency, func.count(), func.sum(clicks.c.revenue), func.sum(clicks.c.payout))
        click_rows = {row[0]: row[1:] for row in conn.execute(
            by_clicks.select_from(clicks.join(offers, offers.c.id == clicks.c.offer_id)).where(billable)
            .group_by(currency)
        )}  # fmt: skip
        c = conversions.c
        by_conversions = select(
            c.currency, func.count().filter(and_(c.event_id.is_(None), c.status != "rejected")),
            func.count().filter(and_(c.event_id.is_not(None), c.status != "rejected")),
            func.sum(c.revenue).filter(c.status == "approved"), func.sum(c.payout).filter(c.status == "approved"),
        ).group_by(c.currency)  # fmt: skip
        conversion_rows = {row[0]: row[1:] for row in conn.execute(by_conversions)}
    assert set(totals) == set(conversion_rows) == {"USD", "EUR", "JPY"}
    for name, total in totals.items():
        click_count, click_revenue, click_payout = click_rows[name]
        based, events, revenue, payout = conversion_rows[name]
        assert (total["clicks"], total["conversions"], total["events"]) == (click_count, based, events)
        assert Decimal(total["revenue"]) == (revenue or 0) + (click_revenue or 0)
        assert Decimal(total["payout"]) == (payout or 0) + (click_payout or 0)


def test_a_second_run_extends_the_network_and_announces_none_of_its_past(database_url: str, engine: Engine) -> None:
    demo(database_url, "--clicks", "400", "--seed", "3")
    with (
        running_server(database_url) as server,
        httpx.Client(base_url=server.base_url, headers={"Authorization": f"Bearer {server.admin_key}"}) as api,
    ):
        hook = api.post("/api/v1/webhooks", json={"url": "https://hooks.example.com/tracklane"})
        assert hook.status_code == 201, hook.text
        for partner_id in range(1, 4):
            postback = api.post("/api/v1/partner-postbacks", json={
                    "partner_id": partner_id, "url": "https://partner.example.com/pb?tid={transaction_id}",
                })  # fmt: skip
            assert postback.status_code == 201, postback.text
    with engine.connect() as conn:
        before, converted_before = count(conn, deliveries), count(conn, conversions)

    output = demo(database_url, "--clicks", "400", "--seed", "3")  # the same seed: other clicks, added
    assert "Recorded 400 clicks" in output
    with engine.connect() as conn:
        assert count(conn, clicks) == len(tally(conn, clicks.c.transaction_id)) == 800
        assert count(conn, conversions) > converted_before
        assert count(conn, deliveries) == before
        assert count(conn, advertisers) == 3 and count(conn, users) == 1


def test_the_same_seed_draws_the_same_traffic(tmp_path: Path) -> None:
    container = build(Settings(database_url=f"sqlite:///{tmp_path / 'seed.db'}"))
    try:
        network = asyncio.run(create_network(container.catalog, container.sources, container.settings.base_url))
    finally:
        container.close()
    now = datetime(2026, 5, 20, 14, 30, tzinfo=UTC)
    drawn = draw_traffic(network, TrafficPlan(2000, 30, 5, now))
    assert drawn == draw_traffic(network, TrafficPlan(2000, 30, 5, now))
    assert drawn != draw_traffic(network, TrafficPlan(2000, 30, 6, now))
    assert drawn != draw_traffic(network, TrafficPlan(2000, 30, 5, now), newest_click=2000)  # extending: others
    later = draw_traffic(network, TrafficPlan(2000, 30, 5, now + timedelta(hours=7)))
    assert _clicks(later) == _clicks(drawn)  # the same clicks, at other times
    assert [at for at, _, _ in later] != [at for at, _, _ in drawn]


def _clicks(timeline: list[Entry]) -> list[tuple[object, ...]]:
    """Who clicked what, from where (a newsletter's sub1 names its issue: that depends on the time)."""
    visits: list[Any] = [action for _, _, action in timeline if type(action).__name__ == "_Visit"]
    return sorted((v.transaction_id, v.placement.offer.id, v.placement.partner_id, v.user_agent, v.ip, v.country)
                  for v in visits)  # fmt: skip


def test_the_user_agents_read_as_the_tracking_edge_reads_them() -> None:
    for user_agent, device, _ in (*DESKTOP, *MOBILE, *BOTS):
        assert detect_device(user_agent) == device, user_agent


def test_bad_options_are_named(tmp_path: Path) -> None:
    env = {"TRACKLANE_DATABASE_URL": f"sqlite:///{tmp_path / 'x.db'}"}
    result = CliRunner().invoke(main, ["demo", "--clicks", "10", "--days", "0", "--no-serve"], env=env)
    assert result.exit_code == 2 and "--days" in result.output
