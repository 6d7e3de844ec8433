"""The `tracklane` command: serve, demo, migrate, api-keys create."""

from __future__ import annotations

import asyncio
import logging
import os
import sys

import click
import uvicorn
from pydantic import ValidationError

from tracklane.bootstrap import build, migrate_database
from tracklane.services.demo import DemoProgram, create_demo
from tracklane.settings import Settings


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
    logging.basicConfig(level=os.environ.get("TRACKLANE_LOG_LEVEL", "INFO"),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
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
        "tracklane.web.main:app", host=settings.host, port=settings.port, workers=settings.workers,
        log_level="warning", access_log=False, proxy_headers=True,
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


@main.group("api-keys")
def api_keys() -> None:
    """Manage API keys."""


@api_keys.command("create")
@click.option("--role", type=click.Choice(["admin", "advertiser", "partner"]), default="admin", show_default=True)
@click.option("--advertiser-id", type=int, default=None)
@click.option("--partner-id", type=int, default=None)
def create_api_key(role: str, advertiser_id: int | None, partner_id: int | None) -> None:
    """Create an API key and print it (it is shown once)."""
    container = build(load_settings())
    try:
        key, secret = asyncio.run(container.api_keys.create(role, advertiser_id, partner_id))
    finally:
        container.close()
    click.echo(secret)
    click.echo(f"(key #{key.id}, role {key.role.value})", err=True)


def _print_demo(settings: Settings) -> None:
    container = build(settings)
    try:
        program = asyncio.run(create_demo(container.catalog, settings.base_url))
        if settings.admin_key is None:
            _, admin_key = asyncio.run(container.api_keys.create("admin"))
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
        lines.append(f"  {base}/postback?transaction_id=TID&secure={token}&amount=120.00&order_id=A1"
                     f"    base conversion of {offer.name}")
        for event in program.events.get(offer.id, []):
            lines.append(f"  {base}/postback?transaction_id=TID&secure={token}&event_name={event.name}"
                         f"&amount=40.00    event {event.name!r}")
    lines += [
        "",
        f"Admin API key: {admin_key}",
        f"  curl -s -H 'Authorization: Bearer {admin_key}' '{base}/api/v1/conversions?transaction_id=TID'",
        f"API docs: {base}/api/docs",
        "",
    ]
    return "\n".join(lines)
