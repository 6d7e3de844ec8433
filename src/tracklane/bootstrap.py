"""The composition root: settings → engines and database → services → the ASGI app."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import UTC, datetime

from fastapi import FastAPI

from tracklane.services.api_keys import ApiKeyService
from tracklane.services.catalog import CatalogService
from tracklane.services.clicks import ClickService
from tracklane.services.conversions import ConversionService
from tracklane.services.customers import CustomerService
from tracklane.services.reports import ReportService
from tracklane.services.segment import SegmentService
from tracklane.services.sources import SourceService
from tracklane.settings import Settings
from tracklane.storage import migrate
from tracklane.storage.database import SqlDatabase
from tracklane.storage.engines import create_admin_engine, create_reader_engine, create_writer_engine


def utc_now() -> datetime:
    """The one clock of the program."""
    return datetime.now(UTC)


def new_transaction_id() -> str:
    """32 lowercase hex characters from the OS's CSPRNG: unguessable."""
    return secrets.token_hex(16)


def new_postback_token() -> str:
    return secrets.token_urlsafe(24)


def new_api_key() -> str:
    return "tlk_" + secrets.token_urlsafe(32)


def new_write_key() -> str:
    """A Segment source's write key: sent by clients in plain sight, so only hard to guess, not a secret."""
    return "wk_" + secrets.token_urlsafe(24)


def new_webhook_secret() -> str:
    """The shared secret Segment's Webhooks destination signs with (X-Signature)."""
    return secrets.token_hex(24)


@dataclass(frozen=True, slots=True)
class Container:
    """Everything a process wires together once."""

    settings: Settings
    db: SqlDatabase
    catalog: CatalogService
    clicks: ClickService
    conversions: ConversionService
    reports: ReportService
    api_keys: ApiKeyService
    sources: SourceService
    segment: SegmentService
    customers: CustomerService

    def close(self) -> None:
        self.db.close()


def migrate_database(settings: Settings) -> None:
    engine = create_admin_engine(settings.database_url)
    try:
        migrate.upgrade(engine)
    finally:
        engine.dispose()


def build(settings: Settings) -> Container:
    """Migrate the schema, open the database and build the services; ensure the admin key if set."""
    migrate_database(settings)
    db = SqlDatabase(
        create_writer_engine(settings.database_url), create_reader_engine(settings.database_url),
        settings.catalog_cache_seconds,
    )
    container = Container(
        settings=settings,
        db=db,
        catalog=CatalogService(db, utc_now, new_postback_token),
        clicks=ClickService(db, utc_now, new_transaction_id, settings.fallback_url),
        conversions=ConversionService(db, utc_now),
        reports=ReportService(db),
        api_keys=ApiKeyService(db, utc_now, new_api_key),
        sources=SourceService(db, utc_now, new_write_key, new_webhook_secret),
        segment=SegmentService(db, utc_now),
        customers=CustomerService(db),
    )
    if settings.admin_key is not None:
        admin_key = settings.admin_key.get_secret_value()
        db.write_now(container.api_keys.creator("admin", None, None, admin_key))
    return container


def create_app(settings: Settings) -> FastAPI:
    """The whole server (tracking, API, docs) as one ASGI app; the database opens at start-up."""
    from tracklane.web.app import build_app

    return build_app(settings, build)
