"""The admin's start page (`/ui/`): today against yesterday, the chosen days as a chart, the top offers, partners
and advertisers of those days, what waits for a decision, and the health of outbound delivery.

Its days are local days of the program's zone (`TRACKLANE_TIMEZONE`): today began at local midnight, and the
chart's days are local dates."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from tracklane.domain.delivery import DeliveryStatus
from tracklane.domain.model import ConversionStatus, PartnerStatus
from tracklane.domain.partner_postbacks import PostbackStatus
from tracklane.domain.webhooks import EndpointStatus
from tracklane.resources.reports import ReportQuery
from tracklane.services.ports import Page
from tracklane.services.registry import Services
from tracklane.web.ui.dates import DateRange, date_range, last_days, program_zone
from tracklane.web.ui.reports import buckets, catalog_names, chart, shown
from tracklane.web.ui.routing import page
from tracklane.web.ui.session import Viewer, services_of

TOP = 5
#: How many waiting rows a count reads at most (more shows as "500+").
COUNT_LIMIT = 500


@dataclass(frozen=True, slots=True)
class Kpi:
    """One card: today's value against yesterday's (money: one line per currency)."""

    label: str
    kind: str  # "count" or "money"
    lines: tuple[tuple[str, Decimal, Decimal], ...]  # (currency, today, yesterday); currency "" for counts

    @staticmethod
    def delta(today: Decimal, yesterday: Decimal) -> Decimal | None:
        """The change in percent (None when yesterday had nothing)."""
        return None if not yesterday else ((today - yesterday) * 100 / abs(yesterday)).quantize(Decimal("0.1"))


@dataclass(frozen=True, slots=True)
class Waiting:
    """How many rows wait, read up to `COUNT_LIMIT`."""

    count: int

    @property
    def text(self) -> str:
        return f"{COUNT_LIMIT}+" if self.count >= COUNT_LIMIT else str(self.count)


async def _totals(services: Services, viewer: Viewer, day: DateRange) -> list[dict[str, Any]]:
    query = ReportQuery(group_by=(), created_from=day.created_from, created_to=day.created_to, zone=day.zone)
    return shown(await services.reports.run(viewer.scope, query), ()).totals


def _kpis(today: Sequence[Mapping[str, Any]], yesterday: Sequence[Mapping[str, Any]]) -> list[Kpi]:
    def count(totals: Sequence[Mapping[str, Any]], name: str) -> Decimal:
        return Decimal(sum(int(t.get(name) or 0) for t in totals))

    def money(totals: Sequence[Mapping[str, Any]], name: str) -> dict[str, Decimal]:
        return {str(t["currency"]): Decimal(t.get(name) or 0) for t in totals}

    kpis = [Kpi(label, "count", (("", count(today, name), count(yesterday, name)),))
            for label, name in (("Clicks", "clicks"), ("Conversions", "conversions"))]  # fmt: skip
    for label, name in (("Revenue", "revenue"), ("Payout", "payout"), ("Profit", "profit")):
        now, before = money(today, name), money(yesterday, name)
        currencies = sorted(set(now) | set(before)) or ["USD"]
        lines = tuple((c, now.get(c, Decimal(0)), before.get(c, Decimal(0))) for c in currencies)
        kpis.append(Kpi(label, "money", lines))
    return kpis


@dataclass(frozen=True, slots=True)
class Top:
    """One offer, partner or advertiser of the days: its counts, and its money per currency."""

    key: object
    clicks: int
    conversions: int
    revenue: tuple[tuple[str, Decimal], ...]
    profit: tuple[tuple[str, Decimal], ...]


async def _top(services: Services, viewer: Viewer, dimension: str, days: DateRange) -> list[Top]:
    """The `TOP` busiest of a dimension (by conversions, then clicks), its currencies' rows taken together."""
    query = ReportQuery(group_by=(dimension,), created_from=days.created_from, created_to=days.created_to,
                        zone=days.zone)  # fmt: skip
    rows = shown(await services.reports.run(viewer.scope, query), (dimension,)).rows
    merged: dict[object, dict[str, Any]] = {}
    for row in rows:
        top = merged.setdefault(row.get(dimension), {"clicks": 0, "conversions": 0, "revenue": {}, "profit": {}})
        top["clicks"] += int(row.get("clicks") or 0)
        top["conversions"] += int(row.get("conversions") or 0)
        for metric in ("revenue", "profit"):
            top[metric][row["currency"]] = top[metric].get(row["currency"], Decimal(0)) + Decimal(row[metric])
    tops = [Top(key, m["clicks"], m["conversions"], tuple(sorted(m["revenue"].items())),
                tuple(sorted(m["profit"].items()))) for key, m in merged.items()]  # fmt: skip
    tops.sort(key=lambda t: (t.conversions, t.clicks), reverse=True)
    return tops[:TOP]


async def show(request: Request, viewer: Viewer) -> Response:
    """The admin's home: `from` and `to` (local dates) choose the chart's days, by default the last 30."""
    params = request.query_params
    zone = program_zone(request)
    days = date_range(params.get("from"), params.get("to"), zone)
    services = services_of(request)
    now = datetime.now(UTC)
    today_range = last_days(1, zone)
    today = await _totals(services, viewer, today_range)
    yesterday = await _totals(services, viewer, today_range.before())
    by_day = ReportQuery(group_by=("day",), created_from=days.created_from, created_to=days.created_to, zone=zone)
    day_rows = shown(await services.reports.run(viewer.scope, by_day), ("day",)).rows

    endpoints = await services.webhooks.list(Page(limit=100))
    failing = [e for e in endpoints if e.status is not EndpointStatus.ACTIVE or e.failing_since is not None]
    pending_deliveries = await services.deliveries.list(
        Page(limit=COUNT_LIMIT, filters={"status": DeliveryStatus.PENDING.value})
    )
    failed_deliveries = await services.deliveries.list(
        Page(limit=COUNT_LIMIT, created_from=now - timedelta(days=1), filters={"status": DeliveryStatus.FAILED.value})
    )
    inactive_postbacks = await services.partner_postbacks.list(
        viewer.scope, Page(limit=COUNT_LIMIT, filters={"status": PostbackStatus.INACTIVE.value})
    )
    pending_conversions = await services.conversions.list(
        viewer.scope, Page(limit=COUNT_LIMIT, filters={"status": ConversionStatus.PENDING.value})
    )
    signups = await services.catalog.list_partners(
        Page(limit=COUNT_LIMIT, filters={"status": PartnerStatus.PENDING.value})
    )
    return page(
        request,
        viewer,
        "admin_dashboard.html",
        days=days,
        today_range=today_range,
        kpis=_kpis(today, yesterday),
        kpi_delta=Kpi.delta,
        chart=chart(day_rows, "day", buckets("day", days)),
        tops=[
            ("Top offers", "offer", await _top(services, viewer, "offer", days)),
            ("Top partners", "partner", await _top(services, viewer, "partner", days)),
            ("Top advertisers", "advertiser", await _top(services, viewer, "advertiser", days)),
        ],
        names=await catalog_names(services),
        failing=failing,
        pending_deliveries=Waiting(len(pending_deliveries)),
        failed_deliveries=Waiting(len(failed_deliveries)),
        inactive_postbacks=Waiting(len(inactive_postbacks)),
        pending_conversions=Waiting(len(pending_conversions)),
        signups=Waiting(len(signups)),
    )
