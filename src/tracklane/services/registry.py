"""What the adapters are handed: every use case of one process, the settings values they read, and the
background work the process runs beside serving requests.

The composition root (`tracklane.bootstrap`) builds it; the web layer receives a function that builds it
(`tracklane.web.app.build_app`) and never imports the root, so imports only flow downward.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import tzinfo
from pathlib import Path
from typing import Protocol

from tracklane.services.api_keys import ApiKeyService
from tracklane.services.catalog import CatalogService
from tracklane.services.clicks import ClickService
from tracklane.services.conversions import ConversionService
from tracklane.services.customers import CustomerService
from tracklane.services.deliveries import DeliveryService
from tracklane.services.partner_postbacks import PartnerPostbackService
from tracklane.services.reports import ReportService
from tracklane.services.segment import SegmentService
from tracklane.services.sources import SourceService
from tracklane.services.traffic import TrafficService
from tracklane.services.users import UserService
from tracklane.services.webhooks import WebhookService


class WebSettings(Protocol):
    """The settings values the web layer reads (the process's settings provide them)."""

    @property
    def base_url(self) -> str: ...
    @property
    def public_url(self) -> str | None: ...
    @property
    def country_header(self) -> str | None: ...
    @property
    def geoip_database(self) -> Path | None: ...
    @property
    def segment_max_in_flight(self) -> int: ...
    @property
    def segment_browser_bundles(self) -> str | None: ...
    @property
    def zone(self) -> tzinfo:
        """The program's time zone: the days and times of the console and the portals."""
        ...


class Worker(Protocol):
    """Background work a server process runs beside its requests (the delivery worker)."""

    async def run(self) -> None: ...
    def stop(self) -> None: ...


@dataclass(frozen=True, slots=True, kw_only=True)
class Services:
    """Every use case of the process, the settings values the web reads, and the background workers."""

    settings: WebSettings
    catalog: CatalogService
    clicks: ClickService
    conversions: ConversionService
    reports: ReportService
    api_keys: ApiKeyService
    sources: SourceService
    segment: SegmentService
    customers: CustomerService
    webhooks: WebhookService
    partner_postbacks: PartnerPostbackService
    deliveries: DeliveryService
    users: UserService
    traffic: TrafficService
    workers: tuple[Worker, ...] = ()

    def close(self) -> None:
        """Release what the services hold; the composition root's subclass closes the database."""
