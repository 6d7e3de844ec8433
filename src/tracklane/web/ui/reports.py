"""The admin's report builder (`/ui/reports`) and its downloads (`/ui/reports.csv`, `/ui/reports.json`: the same
rows, through the session), and what every admin list reads from its query string: optional ids and choices, and
the names of offers, partners and advertisers to show beside their ids (its days are read by `dates`).

The report is counted in the zone its `tz` picker chooses, by default the program's (`TRACKLANE_TIMEZONE`);
its days `from` and `to` are local days of that zone.

A report adds money only within one currency: each row and each total carries its currency (a report of one
currency has one total), and the chart draws one money line per currency.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta, tzinfo
from decimal import Decimal
from typing import Any

import msgspec
from fastapi import APIRouter
from starlette.datastructures import QueryParams
from starlette.requests import Request
from starlette.responses import Response

from tracklane.domain.errors import InvalidParameter
from tracklane.domain.ids import id_or_none
from tracklane.resources.reports import (
    ID_FILTERS,
    REPORT_CURRENCY,
    TIME_DIMENSIONS,
    ReportQuery,
    ReportRoleView,
    bucket_label,
    csv_lines,
    parse_zone,
    report_query,
)
from tracklane.services.ports import Page
from tracklane.services.registry import Services
from tracklane.services.reports import DIMENSIONS
from tracklane.web.ui.dates import REPORT_MAX_DAYS, DateRange, date_range, program_zone
from tracklane.web.ui.routing import PageRoute, page
from tracklane.web.ui.session import AdminViewer, services_of

router = APIRouter(prefix="/ui", route_class=PageRoute, include_in_schema=False)

#: Lists whose names the pages show beside ids (a program larger than this shows the others by id).
NAMES_LIMIT = 500
ZONES = ("UTC", "Europe/London", "Europe/Berlin", "America/New_York", "America/Chicago", "America/Los_Angeles",
         "America/Sao_Paulo", "Asia/Kolkata", "Asia/Kathmandu", "Asia/Singapore", "Asia/Tokyo",
         "Australia/Sydney")  # fmt: skip
DIMENSION_LABELS = {
    "offer": "Offer", "partner": "Partner", "advertiser": "Advertiser", "hour": "Hour", "day": "Day",
    "week": "Week", "month": "Month", "date": "Date", "source_id": "Source id", "country": "Country",
    "device_type": "Device (old name)", "device": "Device", "os": "OS", "browser": "Browser", "event": "Event",
    "status": "Status", "origin": "Origin", "currency": "Currency",
}  # fmt: skip
#: The metrics the page's table shows, when the report has them: (field, heading, how it is shown).
METRICS = (
    ("gross_clicks", "Gross clicks", "count"),
    ("unique_clicks", "Unique clicks", "count"),
    ("clicks", "Clicks", "count"),
    ("conversions", "Conversions", "count"),
    ("events", "Events", "count"),
    ("pending", "Pending", "count"),
    ("cvr", "CVR", "percent"),
    ("revenue", "Revenue", "money"),
    ("payout", "Payout", "money"),
    ("profit", "Profit", "money"),
    ("margin", "Margin", "percent"),
    ("epc", "EPC", "money"),
    ("aov", "AOV", "money"),
    ("sale_amount", "Sale amount", "money"),
)
METRICS_OF_EMPTY = ("clicks", "conversions")


# the query values of the console's filters


def optional_id(raw: str | None, field_name: str) -> int | None:
    """An id from a filter (empty: no filter); anything but a positive id is refused, naming the field."""
    if raw is None or not raw.strip():
        return None
    found = id_or_none(raw.strip())
    if found is None:
        raise InvalidParameter(field_name, "must be a positive whole number (an id)")
    return found


def optional_choice(raw: str | None, field_name: str, choices: Iterable[str]) -> str | None:
    """One of `choices` (empty: no filter), else refused naming the field."""
    if raw is None or not raw.strip():
        return None
    allowed = list(choices)
    if raw.strip() not in allowed:
        raise InvalidParameter(field_name, f"must be one of {', '.join(allowed)}")
    return raw.strip()


def return_path(target: str, fallback: str) -> str:
    """Where a form goes back to (its `next` field): a page of this console only, never another site."""
    if target.startswith("/ui/") and not target.startswith("//") and "\\" not in target:
        return target
    return fallback


def zone_of(raw: str | None, default: tzinfo) -> tzinfo:
    """An IANA zone by name (empty: `default`, the program's zone); an unknown one is refused, naming `tz`."""
    name = (raw or "").strip()
    return parse_zone(name) if name else default


@dataclass(frozen=True, slots=True)
class Names:
    """Offer, partner and advertiser names by id, to show beside the ids the services return."""

    offers: Mapping[int, str] = field(default_factory=dict)
    partners: Mapping[int, str] = field(default_factory=dict)
    advertisers: Mapping[int, str] = field(default_factory=dict)
    offer_currency: Mapping[int, str] = field(default_factory=dict)

    def of(self, dimension: str, value: object) -> str:
        """How a dimension's value reads: a name and its id, or the value itself."""
        table = {"offer": self.offers, "partner": self.partners, "advertiser": self.advertisers}.get(dimension)
        if value is None or value == "":
            return "—"
        if dimension in TIME_DIMENSIONS and isinstance(value, str):
            return value[:16].replace("T", " ") if dimension == "hour" else value[:10]
        if table is not None and isinstance(value, int):
            name = table.get(value)
            return f"{name} (#{value})" if name else f"#{value}"
        return str(value)


async def catalog_names(services: Services) -> Names:
    everything = Page(limit=NAMES_LIMIT)
    offers = await services.catalog.list_offers(everything)
    partners = await services.catalog.list_partners(everything)
    advertisers = await services.catalog.list_advertisers(everything)
    return Names(
        offers={o.id: o.name for o in offers},
        partners={p.id: p.name for p in partners},
        advertisers={a.id: a.name for a in advertisers},
        offer_currency={o.id: o.currency for o in offers},
    )


# the report as rows for a page


@dataclass(frozen=True, slots=True)
class Shown:
    """A report ready for a table: its rows and per-currency totals as plain values, and the metrics it has."""

    dimensions: tuple[str, ...]
    rows: list[dict[str, Any]]
    totals: list[dict[str, Any]]
    metrics: tuple[tuple[str, str, str], ...]


def shown(view: ReportRoleView, dimensions: Sequence[str]) -> Shown:
    """The report's rows and per-currency totals as mappings; every row and total names its currency."""
    plain = msgspec.to_builtins(view)
    rows = [_with_currency(row) for row in plain["rows"]]
    totals = [_with_currency(t) for t in plain["totals_by_currency"]]
    present = set(totals[0]) if totals else set(METRICS_OF_EMPTY)
    metrics = tuple(m for m in METRICS if m[0] in present)
    return Shown(tuple(dimensions), rows, totals, metrics)


def _with_currency(values: Mapping[str, Any]) -> dict[str, Any]:
    return {**values, "currency": values.get("currency") or REPORT_CURRENCY}


def buckets(dimension: str, days: DateRange) -> list[str]:
    """The labels of every day, week or month bucket of `days` (none for other dimensions)."""
    if dimension not in ("day", "week", "month"):
        return []
    labels = (bucket_label(dimension, datetime.combine(day, time())) for day in days.days())
    return list(dict.fromkeys(labels))


def chart(rows: Sequence[Mapping[str, Any]], dimension: str, every: Sequence[str] = ()) -> dict[str, Any]:
    """A chart of `rows` by a time dimension: clicks and conversions, and revenue, payout and profit per
    currency (rows of other dimensions are added up into their time bucket); `every` lists the buckets to
    show even without traffic."""
    counts: dict[str, dict[str, int]] = {}
    money: dict[tuple[str, str], dict[str, Decimal]] = {}
    for row in rows:
        key = row.get(dimension)
        if key is None:
            continue
        bucket = counts.setdefault(str(key), {"clicks": 0, "conversions": 0})
        bucket["clicks"] += int(row.get("clicks") or 0)
        bucket["conversions"] += int(row.get("conversions") or 0)
        for metric in ("revenue", "payout", "profit"):
            if row.get(metric) is not None:
                line = money.setdefault((metric, str(row["currency"])), {})
                line[str(key)] = line.get(str(key), Decimal(0)) + Decimal(row[metric])
    for label in every:
        counts.setdefault(label, {"clicks": 0, "conversions": 0})
    labels = sorted(counts)
    series: list[dict[str, Any]] = [
        {"name": "Clicks", "axis": "count", "values": [counts[k]["clicks"] for k in labels]},
        {"name": "Conversions", "axis": "count", "values": [counts[k]["conversions"] for k in labels]},
    ]
    for (metric, currency), values in sorted(money.items(), key=lambda item: (item[0][1], item[0][0])):
        series.append({"name": f"{metric.title()} ({currency})", "axis": "money",
                       "values": [str(values.get(k, Decimal(0))) for k in labels]})  # fmt: skip
    return {"labels": labels, "series": series}


# the report builder


#: The report filters the builder's form offers besides the ids (each a text or a choice).
FORM_FILTERS = ("country", "device", "os", "browser", "sub1", "source_id", "event", "status", "origin", "currency")


@dataclass(frozen=True, slots=True)
class Asked:
    """What the builder's form asked for: its days, the values of its fields, and the report query."""

    days: DateRange
    values: Mapping[str, str]
    query: ReportQuery

    @property
    def dimensions(self) -> tuple[str, ...]:
        return self.query.group_by

    @property
    def more_filters(self) -> bool:
        """Whether a filter beyond the ids is set (the form then shows them)."""
        return any(self.values.get(f) for f in FORM_FILTERS) or self.values.get("date_basis") == "click"

    def id_of(self, name: str) -> int | None:
        return {"offer_id": self.query.offer_id, "partner_id": self.query.partner_id,
                "advertiser_id": self.query.advertiser_id}[name]  # fmt: skip


def _asked(params: QueryParams, default_zone: tzinfo) -> Asked:
    """The report the query string asks for: dimensions as checkboxes (`group_by`, repeated or comma-separated;
    none: by day), whole days `from` to `to` (both included) in `tz` (by default the program's zone), and the
    report's filters."""
    dimensions = [d.strip() for raw in params.getlist("group_by") or ["day"] for d in raw.split(",") if d.strip()]
    zone = zone_of(params.get("tz"), default_zone)
    days = date_range(params.get("from"), params.get("to"), zone, max_days=REPORT_MAX_DAYS)
    values = {name: params.get(name, "").strip() for name in (*ID_FILTERS, *FORM_FILTERS, "date_basis")}
    given = {name: value for name, value in values.items() if value}
    span = {"from": days.first.isoformat(), "to": (days.last + timedelta(days=1)).isoformat()}
    query = report_query({**given, **span, "group_by": ",".join(dict.fromkeys(dimensions)), "tz": str(zone)})
    return Asked(days, values, query)


@router.get("/reports")
async def report_page(request: Request, viewer: AdminViewer) -> Response:
    asked = _asked(request.query_params, program_zone(request))
    services = services_of(request)
    report = shown(await services.reports.run(viewer.scope, asked.query), asked.dimensions)
    times = [d for d in asked.dimensions if d in TIME_DIMENSIONS and d != "date"]
    return page(
        request,
        viewer,
        "admin_reports.html",
        asked=asked,
        report=report,
        names=await catalog_names(services),
        dimensions=DIMENSIONS,
        labels=DIMENSION_LABELS,
        filters=FORM_FILTERS,
        zones=ZONES if asked.days.zone_name in ZONES else (asked.days.zone_name, *ZONES),
        chart=chart(report.rows, times[0], buckets(times[0], asked.days)) if times else None,
        query=request.url.query,
    )


@router.get("/reports.json")
async def report_json(request: Request, viewer: AdminViewer) -> Response:
    asked = _asked(request.query_params, program_zone(request))
    view = await services_of(request).reports.run(viewer.scope, asked.query)
    return _download(msgspec.json.encode(view), "application/json", _file_name(asked, "json"))


@router.get("/reports.csv")
async def report_csv(request: Request, viewer: AdminViewer) -> Response:
    asked = _asked(request.query_params, program_zone(request))
    view = await services_of(request).reports.run(viewer.scope, asked.query)
    body = "".join(csv_lines(view, asked.dimensions)).encode()
    return _download(body, "text/csv; charset=utf-8", _file_name(asked, "csv"))


def _file_name(asked: Asked, extension: str) -> str:
    return f"tracklane-report-{asked.days.first.isoformat()}-{asked.days.last.isoformat()}.{extension}"


def _download(body: bytes, media_type: str, name: str) -> Response:
    headers = {"Content-Disposition": f'attachment; filename="{name}"', "Cache-Control": "no-store",
               "X-Content-Type-Options": "nosniff"}  # fmt: skip
    return Response(body, media_type=media_type, headers=headers)
