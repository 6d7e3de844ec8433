"""The `tracklane` command: serve, demo, migrate, worker, deliveries, api-keys create."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import sys
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

import click
import uvicorn
from pydantic import ValidationError

from tracklane.bootstrap import Container, build, delivery_worker, migrate_database
from tracklane.domain.errors import InvalidParameter, TracklaneError
from tracklane.domain.model import Role
from tracklane.resources.api_keys import ApiKeyCreate
from tracklane.resources.decoding import convert
from tracklane.resources.deliveries import Replay
from tracklane.services.demo import DemoProgram, create_demo
from tracklane.services.ports import Page
from tracklane.settings import Settings
from tracklane.web.connections import ConnectionTimeouts, guarded_protocol

T = TypeVar("T")


def load_settings(**overrides: object) -> Settings:
    """Settings from the environment (and command-line overrides), or a clear message and exit 2."""
    try:
        return Settings(**{k: v for k, v in overrides.items() if v is not None})  # type: ignore[arg-type]
    except ValidationError as error:
        for problem in error.errors():
            name = "TRACKLANE_" + "_".join(str(p) for p in problem["loc"]).upper()
            click.echo(f"error: {name}: {problem['msg']}", err=True)
        sys.exit(2)


@click.group()
@click.version_option(package_name="tracklane")
def main() -> None:
    """Tracklane: self-hosted partner-marketing tracking."""
    logging.basicConfig(
        level=os.environ.get("TRACKLANE_LOG_LEVEL", "INFO"), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    logging.getLogger("alembic").setLevel(logging.WARNING)


@main.command()
@click.option("--host", default=None, help="Interface to listen on (TRACKLANE_HOST, default 127.0.0.1).")
@click.option("--port", type=int, default=None, help="Port to listen on (TRACKLANE_PORT, default 8080).")
@click.option("--workers", type=int, default=None, help="Server processes (TRACKLANE_WORKERS, default 1).")
@click.option("--demo", is_flag=True, help="Create the demo program first and print the links to try.")
def serve(host: str | None, port: int | None, workers: int | None, demo: bool) -> None:
    """Serve tracking, the API and its docs on TRACKLANE_DATABASE_URL, creating or migrating the schema."""
    settings = load_settings(host=host, port=port, workers=workers)
    migrate_database(settings)
    if demo:
        _print_demo(settings)
    for name, value in (("HOST", settings.host), ("PORT", str(settings.port))):
        os.environ[f"TRACKLANE_{name}"] = value
    uvicorn.run(
        "tracklane.asgi:app",
        host=settings.host,
        port=settings.port,
        workers=settings.workers,
        log_level="warning",
        access_log=False,
        # the app itself reads X-Forwarded-For / -Proto, from TRACKLANE_TRUSTED_PROXIES only
        proxy_headers=False,
        http=guarded_protocol(connection_timeouts(settings)),
    )


def connection_timeouts(settings: Settings) -> ConnectionTimeouts:
    """The head, body and idle timeouts of the server's connections (see `tracklane.web.connections`)."""
    return ConnectionTimeouts(
        head=settings.header_timeout_seconds, body=settings.body_timeout_seconds, idle=settings.idle_timeout_seconds
    )


@main.command()
@click.option("--host", default=None, help="Interface to listen on.")
@click.option("--port", type=int, default=None, help="Port to listen on.")
@click.pass_context
def demo(ctx: click.Context, host: str | None, port: int | None) -> None:
    """Create the demo program (advertiser, two offers, three partners), print the links, and serve."""
    ctx.invoke(serve, host=host, port=port, workers=None, demo=True)


@main.command()
def migrate() -> None:
    """Create or migrate the schema of TRACKLANE_DATABASE_URL, then exit."""
    migrate_database(load_settings())
    click.echo("schema is up to date")


@main.command()
def worker() -> None:
    """Deliver webhooks and partner postbacks from the outbox until SIGTERM or SIGINT (run any number)."""
    container = build(load_settings())
    try:
        asyncio.run(_run_worker(container))
    finally:
        container.close()


async def _run_worker(container: Container) -> None:
    running = delivery_worker(container)
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, running.stop)
    click.echo(f"delivery worker {running.worker_id} running", err=True)
    await running.run()


@main.group()
def deliveries() -> None:
    """Inspect the delivery log; resend one delivery; replay a time range."""


@deliveries.command("list")
@click.option("--status", type=click.Choice(["pending", "sending", "succeeded", "failed", "skipped"]), default=None)
@click.option("--endpoint-id", type=int, default=None, help="Only this webhook endpoint's deliveries.")
@click.option("--postback-id", type=int, default=None, help="Only this partner postback's deliveries.")
@click.option("--limit", type=click.IntRange(1, 500), default=50, show_default=True)
def list_deliveries(status: str | None, endpoint_id: int | None, postback_id: int | None, limit: int) -> None:
    """Newest first, one line each: id, status, attempts, kind, event type, message id, last error."""
    filters = {
        k: v
        for k, v in {"status": status, "endpoint_id": endpoint_id, "postback_id": postback_id}.items()
        if v is not None
    }
    items = _with_container(lambda c: c.deliveries.list(Page(limit=limit, filters=filters)))
    for d in items:
        click.echo(
            f"{d.id}\t{d.status.value}\t{d.attempts}\t{d.kind.value}\t{d.event_type}\t{d.message_id}\t"
            f"{d.created_at.isoformat()}\t{d.last_error or ''}"
        )


@deliveries.command("resend")
@click.argument("delivery_id", type=int)
def resend_delivery(delivery_id: int) -> None:
    """Send one delivery again now, with the same webhook-id."""
    delivery = _with_container(lambda c: c.deliveries.resend(delivery_id))
    click.echo(f"delivery {delivery.id} ({delivery.message_id}) queued again")


@deliveries.command("replay")
@click.option("--from", "from_", required=True, help="Created at or after (ISO 8601).")
@click.option("--to", required=True, help="Created before (ISO 8601).")
@click.option("--statuses", default=None, help="Comma-separated: failed, skipped, succeeded [failed,skipped].")
@click.option("--endpoint-id", type=int, default=None)
@click.option("--postback-id", type=int, default=None)
def replay_deliveries(
    from_: str, to: str, statuses: str | None, endpoint_id: int | None, postback_id: int | None
) -> None:
    """Queue again every failed or skipped delivery created in [from, to), keeping their webhook-id."""
    fields = {"from": from_, "to": to, "statuses": statuses, "endpoint_id": endpoint_id, "postback_id": postback_id}
    count = _with_container(lambda c: c.deliveries.replay(convert(fields, Replay)))
    click.echo(json.dumps({"replayed": count}))


def _with_container(use: Callable[[Container], Coroutine[Any, Any, T]]) -> T:
    """Run one use case on a freshly built container; a domain error is printed and exits 1."""
    container = build(load_settings())
    try:
        return asyncio.run(use(container))
    except TracklaneError as error:
        click.echo(f"error: {error.message}", err=True)
        sys.exit(1)
    finally:
        container.close()


@main.group("api-keys")
def api_keys() -> None:
    """Manage API keys."""


@api_keys.command("create")
@click.option("--role", type=click.Choice(["admin", "advertiser", "partner"]), default="admin", show_default=True)
@click.option("--advertiser-id", type=int, default=None)
@click.option("--partner-id", type=int, default=None)
def create_api_key(role: str, advertiser_id: int | None, partner_id: int | None) -> None:
    """Create an API key and print it (it is shown once)."""
    try:
        request = ApiKeyCreate(role=Role(role), advertiser_id=advertiser_id, partner_id=partner_id)
    except InvalidParameter as error:
        raise click.UsageError(error.message) from None
    container = build(load_settings())
    try:
        key, secret = asyncio.run(container.api_keys.create(request))
    finally:
        container.close()
    click.echo(secret)
    click.echo(f"(key #{key.id}, role {key.role.value})", err=True)


def _print_demo(settings: Settings) -> None:
    container = build(settings)
    try:
        program = asyncio.run(create_demo(container.catalog, settings.base_url))
        if settings.admin_key is None:
            _, admin_key = asyncio.run(container.api_keys.create(ApiKeyCreate(role=Role.ADMIN)))
        else:
            admin_key = settings.admin_key.get_secret_value()
    finally:
        container.close()
    click.echo(demo_text(program, settings.base_url, admin_key))


def demo_text(program: DemoProgram, base: str, admin_key: str) -> str:
    token = program.advertiser.postback_token
    lines = [
        "",
        "Tracklane demo program is ready.",
        f"  advertiser #{program.advertiser.id} {program.advertiser.name}; postback token (secure): {token}",
        "",
        "Tracking links (open one, or: curl -si URL | grep -i location):",
    ]
    for offer in program.offers:
        for partner in program.partners:
            lines.append(f"  {base}/r/{offer.id}/{partner.id}?sub1=demo    {offer.name} / {partner.name}")
    lines += ["", "Postbacks (put the transaction_id of your click in place of TID):"]
    for offer in program.offers:
        lines.append(
            f"  {base}/postback?transaction_id=TID&secure={token}&amount=120.00&order_id=A1"
            f"    base conversion of {offer.name}"
        )
        for event in program.events.get(offer.id, []):
            lines.append(
                f"  {base}/postback?transaction_id=TID&secure={token}&event_name={event.name}"
                f"&amount=40.00    event {event.name!r}"
            )
    lines += [
        "",
        f"Admin API key: {admin_key}",
        f"  curl -s -H 'Authorization: Bearer {admin_key}' '{base}/api/v1/conversions?transaction_id=TID'",
        f"API docs: {base}/api/docs",
        "",
    ]
    return "\n".join(lines)
