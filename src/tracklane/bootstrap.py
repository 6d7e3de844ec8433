"""The composition root: settings → engines and database → services → the ASGI app and the worker.

Only the entry points (`tracklane.cli`, `tracklane.asgi`, `python -m tracklane`) and tests import this
module; everything below it receives what it needs (see `tracklane.services.registry.Services`).

It also sets up the process's logging (`configure_logging`: level, text or JSON lines) and wires what the
operators watch: the writer's and the delivery worker's metrics hooks, and the container's probes
(`readiness`, `outbox_backlog`) that `/readyz` and `/metrics` ask.
"""

from __future__ import annotations

import base64
import logging
import os
import random
import secrets
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

from fastapi import FastAPI

from tracklane.delivery.worker import DeliveryWorker, Sending
from tracklane.domain.destinations import parse_allow_list
from tracklane.domain.model import Role
from tracklane.resources.api_keys import ApiKeyCreate
from tracklane.services.api_keys import ApiKeyService
from tracklane.services.catalog import CatalogService
from tracklane.services.clicks import ClickService
from tracklane.services.conversions import ConversionService
from tracklane.services.customers import CustomerService
from tracklane.services.deliveries import DeliveryPolicy, DeliveryService
from tracklane.services.partner_postbacks import PartnerPostbackService
from tracklane.services.registry import Services
from tracklane.services.report_cache import ReportCache
from tracklane.services.reports import ReportService
from tracklane.services.segment import SegmentService
from tracklane.services.sources import SourceService
from tracklane.services.traffic import TrafficOptimizer, TrafficService
from tracklane.services.users import UserService
from tracklane.services.webhooks import WebhookService
from tracklane.settings import Settings
from tracklane.storage import migrate, operations, rollups
from tracklane.storage.database import SqlDatabase
from tracklane.storage.engines import create_admin_engine, create_reader_engine, create_writer_engine
from tracklane.storage.secret_box import FernetBox, bind, resolve_key
from tracklane.web import logs, metrics
from tracklane.web.app import build_app

log = logging.getLogger("tracklane")


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


def new_segment_webhook_secret() -> str:
    """The shared secret Segment's Webhooks destination signs with (X-Signature)."""
    return secrets.token_hex(24)


def new_user_token() -> str:
    """A session, CSRF or one-time link token: 32 random bytes, URL-safe."""
    return secrets.token_urlsafe(32)


def new_webhook_secret() -> str:
    """A Standard Webhooks secret: `whsec_` and 32 random bytes in base64."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


@dataclass(frozen=True, slots=True, kw_only=True)
class Container(Services):
    """Everything a process wires together once: the services, over this database and these settings."""

    settings: Settings
    db: SqlDatabase

    async def readiness(self, timeout: float) -> dict[str, str]:
        """The readiness checks (`tracklane.storage.operations.readiness`)."""
        return await operations.readiness(self.db, timeout)

    async def outbox_backlog(self) -> operations.OutboxBacklog:
        now = utc_now()
        return await self.db.read(lambda repo: operations.outbox_backlog(repo, now))

    def close(self) -> None:
        """Commit what the writer holds (bounded by a write's timeout), then close the database."""
        if not self.db.drain():
            log.warning("the writer still held writes at shutdown; they are answered as failed")
        self.db.close()


def configure_logging(level: str | None = None, log_format: str | None = None) -> None:
    """Log to standard error at `level` (TRACKLANE_LOG_LEVEL, INFO) in `log_format` (TRACKLANE_LOG_FORMAT:
    `text` or `json`, see `tracklane.web.logs`); the server's own lines (uvicorn's) go the same way."""
    root = logging.getLogger()
    for handler in [h for h in root.handlers if getattr(h, "tracklane", False)]:
        root.removeHandler(handler)
    handler = logs.handler(log_format or os.environ.get("TRACKLANE_LOG_FORMAT", "text"))
    handler.tracklane = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(level or os.environ.get("TRACKLANE_LOG_LEVEL", "INFO"))
    logging.getLogger("alembic").setLevel(logging.WARNING)


def recount_reports(settings: Settings) -> None:
    """Recount the report rollups (unique-click flags, then every cell) from the raw rows, in one transaction:
    after clicks or conversions were loaded or changed by SQL."""
    migrate_database(settings)
    engine = create_admin_engine(settings.database_url)
    try:
        with engine.begin() as conn:
            rollups.recount(conn)
    finally:
        engine.dispose()


def migrate_database(settings: Settings) -> FernetBox:
    """Find the secrets key (`storage/secret_box.py`: the setting, else the key file beside a SQLite
    database), migrate the schema with it and check it is the database's key; the box it opens."""
    engine = create_admin_engine(settings.database_url)
    try:
        configured = None if settings.secrets_key is None else settings.secrets_key.get_secret_value()
        box = resolve_key(settings.database_url, configured, engine)
        migrate.upgrade(engine, box)
    finally:
        engine.dispose()
    return box


def build(settings: Settings) -> Container:
    """Migrate the schema, open the database and build the services; ensure the admin key if set."""
    box = migrate_database(settings)
    lock_timeout = settings.database_lock_timeout_seconds
    db = SqlDatabase(
        bind(create_writer_engine(settings.database_url, lock_timeout, settings.write_timeout_seconds), box),
        bind(create_reader_engine(settings.database_url, lock_timeout=lock_timeout), box),
        settings.catalog_cache_seconds,
        write_timeout=settings.write_timeout_seconds,
        queue_size=settings.write_queue_size,
    )
    db.writer.on_commit = metrics.writer_committed
    db.writer.on_depth = metrics.writer_depth
    allow = parse_allow_list(settings.allow_private_destinations)
    container = Container(
        settings=settings,
        db=db,
        catalog=CatalogService(db, utc_now, new_postback_token),
        clicks=ClickService(
            db, utc_now, new_transaction_id, settings.fallback_url, settings.duplicate_click_window_seconds
        ),
        conversions=ConversionService(db, utc_now),
        reports=ReportService(db, ReportCache(settings.report_cache_rows)),
        api_keys=ApiKeyService(db, utc_now, new_api_key),
        sources=SourceService(db, utc_now, new_write_key, new_segment_webhook_secret),
        segment=SegmentService(db, utc_now),
        customers=CustomerService(db),
        webhooks=WebhookService(db, utc_now, new_webhook_secret, box, allow),
        partner_postbacks=PartnerPostbackService(db, utc_now, allow),
        deliveries=DeliveryService(
            db,
            utc_now,
            random.random,
            DeliveryPolicy(
                retry_scale=settings.delivery_retry_scale,
                lease=timedelta(seconds=settings.delivery_lease_seconds),
                disable_after=timedelta(hours=settings.webhook_disable_after_hours),
            ),
            box,
        ),
        users=UserService(db, utc_now, new_user_token, timedelta(hours=settings.session_hours)),
        traffic=TrafficService(db, utc_now),
    )
    if settings.admin_key is not None:
        admin_key = settings.admin_key.get_secret_value()
        db.write_now(container.api_keys.creator(ApiKeyCreate(role=Role.ADMIN), admin_key))
    return container


def delivery_worker(container: Container) -> DeliveryWorker:
    """An outbox worker over this container's database, with the SSRF guard of the settings."""
    settings = container.settings

    def sender() -> Sending:
        # Imported by the first delivery: the HTTP client's library (about 9 MB) stays out of a server
        # process that has nothing to deliver.
        from tracklane.delivery.guard import PinnedResolver
        from tracklane.delivery.sender import Sender

        guard = PinnedResolver(parse_allow_list(settings.allow_private_destinations))
        return Sender(guard, settings.delivery_timeout_seconds, utc_now)

    return DeliveryWorker(
        container.deliveries,
        sender,
        settings.delivery_concurrency,
        settings.delivery_poll_seconds,
        on_attempt=metrics.delivery_attempt,
    )


def serving(settings: Settings) -> Container:
    """What one server process runs: the services and, unless `TRACKLANE_DELIVERY_IN_SERVE=false`, a
    delivery worker and the traffic optimizer beside the requests."""
    container = build(settings)
    if settings.delivery_in_serve:
        container = replace(container, workers=(delivery_worker(container), traffic_optimizer(container)))
    return container


def traffic_optimizer(container: Container) -> TrafficOptimizer:
    """Evaluates the due traffic optimization rules every `TRACKLANE_TRAFFIC_OPTIMIZE_SECONDS`."""
    return TrafficOptimizer(container.traffic, container.settings.traffic_optimize_seconds)


def create_app(settings: Settings) -> FastAPI:
    """The whole server (tracking, API, docs) as one ASGI app; the database opens at start-up. A process
    whose logging nothing set up yet (a server process `tracklane serve --workers N` started, or a bare
    `uvicorn tracklane.asgi:app`) logs as the settings say."""
    if not logging.getLogger().handlers:
        configure_logging(log_format=settings.log_format)
    return build_app(lambda: serving(settings))
