"""The performance report and click lookups: read-only use cases, answered as the caller's role sees them.

Every read is narrowed to the caller's tenant here (`tracklane.domain.tenancy`): a click of another tenant
is `NotFound`, exactly like one that does not exist; a filter naming another tenant is `Forbidden`. The report
(`tracklane.resources.reports`: its query, lines and views) is its rows and its totals per currency, both
counted by the storage in one read.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace

from tracklane.domain.errors import NotFound
from tracklane.domain.model import Click
from tracklane.domain.tenancy import Scope, narrow, owns
from tracklane.resources.clicks import ClickRoleView, click_view_for
from tracklane.resources.reports import (
    DIMENSIONS,
    REPORT_CURRENCY,
    ReportQuery,
    ReportRoleView,
    report_view_for,
)
from tracklane.services.ports import Database, Page, Repository

__all__ = ["DIMENSIONS", "ReportService"]


class ReportService:
    def __init__(self, db: Database) -> None:
        self._db = db

    async def run(self, scope: Scope, query: ReportQuery) -> ReportRoleView:
        """Rows per group and currency with clicks, conversions, events, money and their ratios, and the totals
        of each currency (the query's dimensions were checked when it was made)."""
        asked = {"offer_id": query.offer_id, "partner_id": query.partner_id, "advertiser_id": query.advertiser_id}
        narrowed = replace(query, **narrow(scope, asked))

        lines, totals = await self._db.read(lambda repo: repo.report_with_totals(narrowed))
        return report_view_for(scope, lines, totals)

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


def _sees(scope: Scope, click: Click) -> bool:
    return owns(scope, click.advertiser_id, click.partner_id)


def _currencies(repo: Repository, offer_ids: Iterable[int]) -> dict[int, str]:
    currencies = {}
    for offer_id in set(offer_ids):
        offer = repo.get_offer(offer_id)
        currencies[offer_id] = offer.currency if offer is not None else REPORT_CURRENCY
    return currencies
