"""The performance report and click lookups: read-only use cases, answered as the caller's role sees them.

Every read is narrowed to the caller's tenant here (`tracklane.domain.tenancy`): a click of another tenant
is `NotFound`, exactly like one that does not exist; a filter naming another tenant is `Forbidden`. The report
(`tracklane.resources.reports`: its query, lines and views) is its rows and its totals per currency, both
counted by the storage in one read; a report grouped first by day is made of its days, those nothing changed
since they were counted taken from what was kept (`tracklane.services.report_cache`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace

from tracklane.domain.errors import NotFound
from tracklane.domain.model import Click, Role
from tracklane.domain.tenancy import Scope, narrow, owns
from tracklane.resources.clicks import ClickRoleView, click_view_for
from tracklane.resources.reports import (
    DIMENSIONS,
    REPORT_CURRENCY,
    ReportLine,
    ReportQuery,
    ReportRoleView,
    report_rows_for,
    report_view_for,
    report_view_of,
    summed_totals,
)
from tracklane.services.ports import EVERY_HOUR, Database, Page, Repository
from tracklane.services.report_cache import Day, KeptDay, ReportCache, day_key, kept_by_day, whole_days

__all__ = ["DIMENSIONS", "ReportService"]


class ReportService:
    def __init__(self, db: Database, cache: ReportCache | None = None) -> None:
        self._db = db
        self.cache = cache or ReportCache(0)

    async def run(self, scope: Scope, query: ReportQuery) -> ReportRoleView:
        """Rows per group and currency with clicks, conversions, events, money and their ratios, and the totals
        of each currency (the query's dimensions were checked when it was made)."""
        asked = {"offer_id": query.offer_id, "partner_id": query.partner_id, "advertiser_id": query.advertiser_id}
        narrowed = replace(query, **narrow(scope, asked))
        if self.cache.max_rows and kept_by_day(narrowed) and (days := whole_days(narrowed)):
            return await self._by_days(scope.role, narrowed, days)
        lines, totals = await self._db.read(lambda repo: repo.report_with_totals(narrowed))
        return report_view_for(scope, lines, totals)

    async def _by_days(self, role: Role, query: ReportQuery, days: list[Day]) -> ReportRoleView:
        """The report from its kept days and the rest counted in one read (`tracklane.services.report_cache`)."""
        first, last = days[0].utc_hours[0], days[-1].utc_hours[-1]
        versions = await self._db.read(lambda repo: repo.report_versions(first, last))
        every = versions.get(EVERY_HOUR, 0)
        tags = {day.label: (every, *(versions.get(utc, 0) for utc in day.utc_hours)) for day in days}
        kept = {
            day.label: found for day in days if (found := self.cache.get(day_key(role, query, day), tags[day.label]))
        }
        assert query.created_from is not None and query.created_to is not None
        spans = [(query.created_from, days[0].start), (days[-1].end, query.created_to)]
        spans += [(day.start, day.end) for day in days if day.label not in kept]
        spans = [(start, end) for start, end in spans if start < end]
        counted: dict[str, list[ReportLine]] = {}
        if spans:
            since, until = min(start for start, _ in spans), max(end for _, end in spans)
            recount = replace(query, created_from=since, created_to=until)
            lines = await self._db.read(lambda repo: repo.report(recount))  # each day's totals are its own
            for line in lines:
                counted.setdefault(str(line.group["day"]), []).append(line)
            for day in days:
                if since <= day.start and day.end <= until:
                    part = counted.pop(day.label, [])
                    kept[day.label] = _part(role, part, tags[day.label])
                    self.cache.put(day_key(role, query, day), kept[day.label])
        parts = {**kept, **{label: _part(role, lines) for label, lines in counted.items()}}  # the range's ends
        ordered = [parts[label] for label in sorted(parts)]
        rows = [row for part in ordered for row in part.rows]
        return report_view_of(role, rows, summed_totals(part.totals for part in ordered))

    async def clicks(self, scope: Scope, page: Page) -> list[ClickRoleView]:
        """Clicks of the caller's tenant, newest first."""
        narrowed = replace(page, filters=narrow(scope, page.filters))

        def work(repo: Repository) -> list[ClickRoleView]:
            found = repo.list_clicks(narrowed)
            currencies = _currencies(repo, {c.offer_id for c in found})
            return [click_view_for(scope, c, currencies[c.offer_id]) for c in found]

        return await self._db.read(work)

    async def click(self, scope: Scope, transaction_id: str) -> ClickRoleView:
        def work(repo: Repository) -> ClickRoleView:
            click = repo.get_click(transaction_id)
            if click is None or not _sees(scope, click):
                raise NotFound(f"no click has transaction_id {transaction_id}")
            return click_view_for(scope, click, _currencies(repo, [click.offer_id])[click.offer_id])

        return await self._db.read(work)


def _part(role: Role, lines: list[ReportLine], versions: tuple[int, ...] = ()) -> KeptDay:
    """A part of a report made from its lines: a day counted at `versions`, or (with none) one of the range's
    ends outside its whole days, which is not kept."""
    return KeptDay(versions, report_rows_for(role, lines), summed_totals([lines]))


def _sees(scope: Scope, click: Click) -> bool:
    return owns(scope, click.advertiser_id, click.partner_id)


def _currencies(repo: Repository, offer_ids: Iterable[int]) -> dict[int, str]:
    currencies = {}
    for offer_id in set(offer_ids):
        offer = repo.get_offer(offer_id)
        currencies[offer_id] = offer.currency if offer is not None else REPORT_CURRENCY
    return currencies
