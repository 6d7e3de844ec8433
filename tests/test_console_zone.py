"""The program's time zone (`TRACKLANE_TIMEZONE`) in the console and the portals: a server in Kathmandu (+05:45)
counts the dashboard's today and yesterday, the charts' days, the portal's stats days and every page's date range
in local days, shows instants in local time and opens its report builder in that zone, while the reports API
keeps UTC; a zone name that does not exist stops start-up naming the setting.

The clicks are placed around the real local midnight (the server reads the real clock): moved there by SQL,
then the report rollups are recounted, as `tracklane reports recount` does.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
import sqlalchemy as sa

from tests import factories
from tests.console import person, signed_in
from tests.servers import RunningServer, running_server, sqlite_url
from tracklane.domain.model import Role
from tracklane.storage.engines import create_admin_engine
from tracklane.storage.rollups import recount
from tracklane.storage.schema import clicks, conversions

KATHMANDU = ZoneInfo("Asia/Kathmandu")
BROWSER = {
    "User-Agent": "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36"
}


@dataclass
class Nepal:
    server: RunningServer
    api: httpx.Client
    partner: dict[str, Any]
    today: date  # the local date in Kathmandu
    midnight: datetime  # the UTC instant local today began at (18:15 UTC of a day)
    conversion_id: int


def _local_midnight() -> tuple[date, datetime]:
    today = datetime.now(KATHMANDU).date()
    return today, datetime.combine(today, time(), KATHMANDU).astimezone(UTC)


@pytest.fixture(scope="module")
def nepal(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Nepal]:
    """A server whose program is in Kathmandu, with one click 5 minutes before local midnight (yesterday) and
    two 5 and 10 minutes after it (today), the first converted 6 minutes after midnight."""
    url = sqlite_url(tmp_path_factory.mktemp("zone"))
    with pytest.MonkeyPatch.context() as env:
        for name in [n for n in os.environ if n.startswith("TRACKLANE_")]:
            env.delenv(name)
        with running_server(url, timezone="Asia/Kathmandu") as server:
            headers = {"Authorization": f"Bearer {server.admin_key}"}
            with httpx.Client(base_url=server.base_url, headers=headers, timeout=30) as api:
                yield _seed(server, api, url)


def _seed(server: RunningServer, api: httpx.Client, url: str) -> Nepal:
    adv, offer, partner = factories.program(api)
    today, midnight = _local_midnight()
    moments = [midnight - timedelta(minutes=5), midnight + timedelta(minutes=5), midnight + timedelta(minutes=10)]
    with httpx.Client(base_url=server.base_url, headers=BROWSER, timeout=30) as web:
        tids = [factories.click(web, offer["id"], partner["id"], sub1=f"s{n}") for n in range(len(moments))]
        answer = web.get("/postback", params={"transaction_id": tids[1], "secure": adv["postback_token"]})
        assert answer.status_code == 200, answer.text
    conversion_id = int(answer.json()["conversion_id"])
    engine = create_admin_engine(url)
    try:
        with engine.begin() as conn:
            for tid, at in zip(tids, moments, strict=True):
                conn.execute(sa.update(clicks).where(clicks.c.transaction_id == tid).values(created_at=at))
            converted = midnight + timedelta(minutes=6)
            conn.execute(sa.update(conversions).where(conversions.c.id == conversion_id).values(created_at=converted))
            recount(conn)
    finally:
        engine.dispose()
    return Nepal(server, api, partner, today, midnight, conversion_id)


def _kpi(html: str, label: str) -> int:
    found = re.search(rf'<div class="label">{label}</div>\s*<div class="value">([\d,]+)</div>', html)
    assert found, f"no {label} card"
    return int(found[1].replace(",", ""))


def _chart(html: str, chart_id: str) -> dict[str, int]:
    """Clicks per day label of the page's chart `chart_id`."""
    found = re.search(rf'<script type="application/json" id="{chart_id}">(.*?)</script>', html, re.S)
    assert found, f"no chart {chart_id}"
    data = json.loads(found[1])
    (clicks_,) = [s["values"] for s in data["series"] if s["name"] == "Clicks"]
    return {label: count for label, count in zip(data["labels"], clicks_, strict=True) if count}


def test_the_dashboard_counts_today_and_yesterday_in_the_programs_zone(nepal: Nepal) -> None:
    """The click 5 minutes after local midnight is today's, the one 5 minutes before it yesterday's: whatever the
    UTC day, a UTC dashboard would put the three clicks on one day."""
    yesterday = nepal.today - timedelta(days=1)
    with signed_in(nepal.server, person(nepal.server, Role.ADMIN)) as admin:
        home = admin.get("/ui/").text
        assert _kpi(home, "Clicks") == 2 and _kpi(home, "Conversions") == 1
        assert "vs yesterday" in home and "▲ 100.00%" in home  # 2 clicks today against 1 yesterday
        assert f"Today ({nepal.today.isoformat()}) and yesterday are days in Asia/Kathmandu" in home
        assert _chart(home, "dashboard-chart") == {yesterday.isoformat(): 1, nepal.today.isoformat(): 2}
        assert "tz=Asia/Kathmandu" in home  # "Open as a report" opens the same days

        one_day = admin.get("/ui/", params={"from": nepal.today.isoformat(), "to": nepal.today.isoformat()}).text
        assert _chart(one_day, "dashboard-chart") == {nepal.today.isoformat(): 2}
        assert f"{nepal.today.isoformat()} to {nepal.today.isoformat()} (days in Asia/Kathmandu)" in one_day

        listed = admin.get("/ui/conversions", params={"from": nepal.today.isoformat()}).text
        assert f"#{nepal.conversion_id}" in listed or f"/ui/conversions/{nepal.conversion_id}" in listed
        assert f"{nepal.today.isoformat()} 00:06" in listed, "the instant in local time"
        before = admin.get("/ui/conversions", params={"to": yesterday.isoformat()}).text
        assert f"/ui/conversions/{nepal.conversion_id}" not in before


def test_the_report_builder_opens_in_the_programs_zone_and_the_api_keeps_utc(nepal: Nepal) -> None:
    yesterday = nepal.today - timedelta(days=1)
    with signed_in(nepal.server, person(nepal.server, Role.ADMIN)) as admin:
        local = admin.get("/ui/reports.json", params={"group_by": "day"}).json()
        assert {r["day"]: r["clicks"] for r in local["rows"]} == {yesterday.isoformat(): 1, nepal.today.isoformat(): 2}
        page = admin.get("/ui/reports", params={"group_by": "day"}).text
        assert "in Asia/Kathmandu" in page and '<option value="Asia/Kathmandu" selected>' in page
        in_utc = admin.get("/ui/reports.json", params={"group_by": "day", "tz": "UTC"}).json()
        assert {r["day"]: r["clicks"] for r in in_utc["rows"]} == {nepal.midnight.date().isoformat(): 3}
        assert "in UTC" in admin.get("/ui/reports", params={"group_by": "day", "tz": "UTC"}).text
    api = nepal.api.get("/api/v1/reports", params={"group_by": "day"}).json()
    assert {r["day"]: r["clicks"] for r in api["rows"]} == {nepal.midnight.date().isoformat(): 3}


def test_the_partner_portal_counts_its_stats_in_local_days(nepal: Nepal) -> None:
    yesterday = nepal.today - timedelta(days=1)
    with signed_in(nepal.server, person(nepal.server, Role.PARTNER, nepal.partner["id"])) as partner:
        home = partner.get("/ui/p/").text
        assert _chart(home, "partner-days") == {yesterday.isoformat(): 1, nepal.today.isoformat(): 2}
        assert "by day in Asia/Kathmandu" in home

        stats = partner.get("/ui/p/stats").text
        assert _chart(stats, "partner-stats") == {yesterday.isoformat(): 1, nepal.today.isoformat(): 2}
        rows = dict(re.findall(r"<tr>\s*<td>(\d{4}-\d\d-\d\d)</td>\s*<td class=\"num\">(\d+)</td>", stats))
        assert rows == {yesterday.isoformat(): "1", nepal.today.isoformat(): "2"}
        assert "in Asia/Kathmandu" in stats

        today_only = partner.get("/ui/p/stats", params={"from": nepal.today.isoformat(),
                                                        "to": nepal.today.isoformat()}).text  # fmt: skip
        assert _chart(today_only, "partner-stats") == {nepal.today.isoformat(): 2}
        by_sub = partner.get("/ui/p/stats", params={"group_by": "sub1", "from": yesterday.isoformat(),
                                                    "to": yesterday.isoformat()}).text  # fmt: skip
        assert ">s0<" in by_sub and ">s1<" not in by_sub and ">s2<" not in by_sub

        conversions_ = partner.get("/ui/p/conversions", params={"from": nepal.today.isoformat()}).text
        assert f"{nepal.today.isoformat()}\u00a000:06".replace("-", "\u2011") in conversions_
        assert "No conversions match" in partner.get("/ui/p/conversions", params={"to": yesterday.isoformat()}).text


def test_a_zone_that_does_not_exist_stops_start_up_naming_the_setting(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRACKLANE_")}
    for name in ("Mars/Olympus", "localtime", "+05:45"):
        result = subprocess.run(
            [sys.executable, "-m", "tracklane", "serve", "--port", "1"],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            env={**env, "TRACKLANE_TIMEZONE": name, "TRACKLANE_DATABASE_URL": f"sqlite:///{tmp_path / 'z.db'}"},
            timeout=60,
        )
        assert result.returncode == 2, (name, result.stderr)
        assert "TRACKLANE_TIMEZONE" in result.stderr and "IANA time zone" in result.stderr, result.stderr
    assert not (tmp_path / "z.db").exists(), "nothing was started"
