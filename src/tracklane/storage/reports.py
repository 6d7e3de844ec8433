"""SQL for the performance report: clicks and conversions grouped by the asked dimensions, then merged into
one `ReportLine` per group."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import BigInteger, Case, ColumnElement, Connection, Select, Table, and_, case, func, select, type_coerce

from tracklane.resources.reports import ReportLine, ReportQuery
from tracklane.storage.schema import clicks, conversions
from tracklane.storage.types import from_units

CLICK_DIMENSIONS = ("sub1", "sub2", "sub3", "sub4", "sub5", "source_id", "country", "device_type")
OWN_DIMENSIONS = {"offer": "offer_id", "partner": "partner_id", "advertiser": "advertiser_id"}
DIMENSIONS = (*OWN_DIMENSIONS, "day", *CLICK_DIMENSIONS)


class SqlReports:
    conn: Connection

    def report(self, query: ReportQuery) -> list[ReportLine]:
        group_by = query.group_by
        merged: dict[tuple[Any, ...], dict[str, Any]] = {}
        selects = ((self._click_query(group_by), clicks), (self._conversion_query(group_by), conversions))
        for select_, table in selects:
            for row in self.conn.execute(_restrict(select_, table, query)):
                mapping = dict(row._mapping)
                key = tuple(mapping[d] for d in group_by)
                target = merged.setdefault(key, {d: mapping[d] for d in group_by})
                target.update({k: v for k, v in mapping.items() if k not in group_by})
        ordered = sorted(merged.items(), key=lambda item: _sort_key(item[0]))
        return [_line(row, group_by) for _, row in ordered]

    def _dimension(self, name: str, table: Table) -> ColumnElement[Any]:
        if name in OWN_DIMENSIONS:
            return table.c[OWN_DIMENSIONS[name]].label(name)
        if name == "day":
            return self._day(table.c.created_at).label(name)
        return clicks.c[name].label(name)

    def _day(self, column: ColumnElement[Any]) -> ColumnElement[Any]:
        if self.conn.dialect.name == "postgresql":
            return func.to_char(column, "YYYY-MM-DD")
        return func.strftime("%Y-%m-%d", column)

    def _click_query(self, group_by: Sequence[str]) -> Select[Any]:
        billable = and_(clicks.c.verdict == "accepted", clicks.c.is_bot.is_(False))
        dims = [self._dimension(d, clicks) for d in group_by]
        return select(
            *dims,
            func.count().label("gross_clicks"),
            func.sum(_flag(billable)).label("clicks"),
            func.sum(_flag(clicks.c.is_bot.is_(True))).label("bot_clicks"),
            func.sum(_flag(clicks.c.verdict == "rejected")).label("rejected_clicks"),
            _units(clicks.c.revenue).label("click_revenue"),
            _units(clicks.c.payout).label("click_payout"),
        ).group_by(*dims)

    def _conversion_query(self, group_by: Sequence[str]) -> Select[Any]:
        c = conversions.c
        base, approved, pending = c.event_id.is_(None), c.status == "approved", c.status == "pending"
        dims = [self._dimension(d, conversions) for d in group_by]
        return (
            select(
                *dims,
                func.sum(_flag(and_(base, c.status != "rejected"))).label("conversions"),
                func.sum(_flag(and_(c.event_id.is_not(None), c.status != "rejected"))).label("events"),
                func.sum(_flag(pending)).label("pending"),
                func.sum(_flag(c.status == "rejected")).label("rejected"),
                _units(case((approved, c.revenue), else_=0)).label("conversion_revenue"),
                _units(case((approved, c.payout), else_=0)).label("conversion_payout"),
                _units(case((pending, c.revenue), else_=0)).label("pending_revenue"),
                _units(case((pending, c.payout), else_=0)).label("pending_payout"),
                _units(case((c.status != "rejected", c.amount), else_=0)).label("sale_amount"),
            )
            .select_from(conversions.join(clicks, clicks.c.id == c.click_id))
            .group_by(*dims)
        )


def _restrict(select_: Select[Any], table: Table, query: ReportQuery) -> Select[Any]:
    if query.created_from is not None:
        select_ = select_.where(table.c.created_at >= query.created_from)
    if query.created_to is not None:
        select_ = select_.where(table.c.created_at < query.created_to)
    filters = {"offer_id": query.offer_id, "partner_id": query.partner_id, "advertiser_id": query.advertiser_id}
    for column, value in filters.items():
        if value is not None:
            select_ = select_.where(table.c[column] == value)
    return select_


def _units(expression: ColumnElement[Any]) -> ColumnElement[Any]:
    """Sum money as raw integer units (not through the Money type), converted once in `_finish`."""
    return func.sum(type_coerce(expression, BigInteger), type_=BigInteger)


def _flag(condition: ColumnElement[bool]) -> Case[int]:
    return case((condition, 1), else_=0)


_COUNTS = ("gross_clicks", "clicks", "bot_clicks", "rejected_clicks", "conversions", "events", "pending", "rejected")
_MONEY = (
    "click_revenue",
    "click_payout",
    "conversion_revenue",
    "conversion_payout",
    "pending_revenue",
    "pending_payout",
    "sale_amount",
)


def _line(row: dict[str, Any], group_by: Sequence[str]) -> ReportLine:
    """Absent metrics are zero; the money is approved conversions plus CPC clicks."""
    counts = {name: int(row.get(name) or 0) for name in _COUNTS}
    money = {name: from_units(row.get(name) or 0) for name in _MONEY}
    return ReportLine(
        group={d: row[d] for d in group_by}, **counts,
        revenue=money["click_revenue"] + money["conversion_revenue"],
        payout=money["click_payout"] + money["conversion_payout"],
        pending_revenue=money["pending_revenue"], pending_payout=money["pending_payout"],
        sale_amount=money["sale_amount"],
    )  # fmt: skip


def _sort_key(key: tuple[Any, ...]) -> tuple[tuple[bool, str], ...]:
    return tuple((value is None, str(value)) for value in key)
