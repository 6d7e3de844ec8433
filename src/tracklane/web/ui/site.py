"""Every router of the console and the portals, in one list for the app to include."""

from __future__ import annotations

from fastapi import APIRouter

from tracklane.web.ui import (
    account,
    advertiser_portal,
    conversions,
    imports,
    integrations,
    offers,
    partner_portal,
    people,
    reports,
    traffic,
)


def routers() -> list[APIRouter]:
    return [
        account.router,
        offers.router,
        people.router,
        imports.router,  # before conversions: its path would read as a conversion's id
        conversions.router,
        reports.router,
        integrations.router,
        traffic.router,
        partner_portal.router,
        advertiser_portal.router,
    ]
