"""The `tracklane` command: serve, demo, migrate, worker, deliveries, api-keys create, users, reports recount,
conversions import.

`serve` and `worker` stop gracefully on SIGTERM or SIGINT: `serve` stops accepting, lets the requests in
flight finish (at most TRACKLANE_SHUTDOWN_TIMEOUT_SECONDS) and its writer commit what is queued, then exits;
with `--workers N` it gives the processes one directory for their metrics, removed at exit.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Coroutine, Iterator
from contextlib import contextmanager, suppress
from typing import Any, BinaryIO, TypeVar

import click
import msgspec
import uvicorn
from pydantic import ValidationError

from tracklane.bootstrap import (
    Container,
    build,
    configure_logging,
    delivery_worker,
    migrate_database,
    recount_reports,
    traffic_optimizer,
    utc_now,
)
from tracklane.domain.conversion_import import MAX_FILE_BYTES
from tracklane.domain.errors import InvalidParameter, TracklaneError
from tracklane.domain.model import LinkKind, PartnerStatus, Role, User, UserStatus
from tracklane.domain.tenancy import Scope
from tracklane.resources.api_keys import ApiKeyCreate
from tracklane.resources.conversion_imports import ConversionImportView
from tracklane.resources.decoding import convert
from tracklane.resources.deliveries import Replay
from tracklane.resources.users import UserCreate, accept_url
from tracklane.services.demo import (
    DemoNetwork,
    DemoProgram,
    admin_link,
    create_demo,
    create_network,
    traffic_rules,
)
from tracklane.services.demo_traffic import MAX_CLICKS, MAX_DAYS, TrafficPlan, TrafficReport, record_traffic
from tracklane.services.ports import Page
from tracklane.settings import Settings
from tracklane.storage.engines import create_admin_engine
from tracklane.storage.migrate import HEAD_REVISION, schema_revision
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
    configure_logging()


@main.command()
@click.option("--host", default=None, help="Interface to listen on (TRACKLANE_HOST, default 127.0.0.1).")
@click.option("--port", type=int, default=None, help="Port to listen on (TRACKLANE_PORT, default 8080).")
@click.option("--workers", type=int, default=None, help="Server processes (TRACKLANE_WORKERS, default 1).")
@click.option("--demo", is_flag=True, help="Create the demo program first and print the links to try.")
def serve(host: str | None, port: int | None, workers: int | None, demo: bool) -> None:
    """Serve tracking, the API and its docs on TRACKLANE_DATABASE_URL, creating or migrating the schema."""
    settings = load_settings(host=host, port=port, workers=workers)
    migrate_apart(settings)
    migrate_database(settings)
    if demo:
        _print_demo(settings)
    for name, value in (("HOST", settings.host), ("PORT", str(settings.port))):
        os.environ[f"TRACKLANE_{name}"] = value
    # uvicorn stops gracefully on SIGTERM, then raises it again with the handler it found: exit 0 then.
    signal.signal(signal.SIGTERM, lambda _signum, _frame: sys.exit(0))
    with metrics_directory(settings.workers):
        uvicorn.run(
            "tracklane.asgi:app",
            host=settings.host,
            port=settings.port,
            workers=settings.workers,
            log_level="warning",
            log_config=None,  # uvicorn's lines go through the process's logging (text or JSON)
            access_log=False,
            # the app itself reads X-Forwarded-For / -Proto, from TRACKLANE_TRUSTED_PROXIES only
            proxy_headers=False,
            http=guarded_protocol(connection_timeouts(settings)),
            timeout_graceful_shutdown=math.ceil(settings.shutdown_timeout_seconds),
        )


def migrate_apart(settings: Settings) -> None:
    """Migrate a schema that is behind in a child process (`tracklane migrate`), so that the server process
    only reads the schema's revision and never loads the migration tool (`tracklane.storage.migrate`). Exits
    with the child's status when it fails; its messages are already on standard error."""
    engine = create_admin_engine(settings.database_url)
    try:
        behind = schema_revision(engine) != HEAD_REVISION
    finally:
        engine.dispose()
    if behind:
        migrated = subprocess.run([sys.executable, "-m", "tracklane", "migrate"], stdout=subprocess.DEVNULL)
        if migrated.returncode:
            sys.exit(migrated.returncode)


METRICS_DIRECTORY = "PROMETHEUS_MULTIPROC_DIR"


@contextmanager
def metrics_directory(workers: int) -> Iterator[None]:
    """With several server processes, a directory of their own where each writes its metrics and from
    which the one answering a scrape adds them all up (prometheus-client's multiprocess mode); made here,
    named to the processes by PROMETHEUS_MULTIPROC_DIR, removed at exit. One process needs none; a
    directory the environment already names is used as it is (and left to whoever made it)."""
    if workers == 1 or os.environ.get(METRICS_DIRECTORY):
        yield
        return
    directory = tempfile.mkdtemp(prefix="tracklane-metrics-")
    os.environ[METRICS_DIRECTORY] = directory
    try:
        yield
    finally:
        os.environ.pop(METRICS_DIRECTORY, None)
        shutil.rmtree(directory, ignore_errors=True)


def connection_timeouts(settings: Settings) -> ConnectionTimeouts:
    """The head, body and idle timeouts of the server's connections (see `tracklane.web.connections`)."""
    return ConnectionTimeouts(
        head=settings.header_timeout_seconds, body=settings.body_timeout_seconds, idle=settings.idle_timeout_seconds
    )


@main.command()
@click.option("--host", default=None, help="Interface to listen on.")
@click.option("--port", type=int, default=None, help="Port to listen on.")
@click.option(
    "--clicks",
    type=click.IntRange(0, MAX_CLICKS),
    default=0,
    show_default=True,
    help="First record this many clicks of past traffic, and what followed them, in the demo network.",
)
@click.option("--days", type=click.IntRange(1, MAX_DAYS), default=90, show_default=True, help="Over the last N days.")
@click.option("--seed", type=int, default=None, help="Draw the same traffic as a run with this seed [new seed].")
@click.option("--serve/--no-serve", "then_serve", default=True, show_default=True, help="Serve afterwards.")
@click.pass_context
def demo(
    ctx: click.Context, host: str | None, port: int | None, clicks: int, days: int, seed: int | None, then_serve: bool
) -> None:
    """Create the demo program (advertiser, two offers, three partners), print the links, and serve.

    It prints a one-time link that sets the password of the console's admin user admin@demo.test. With
    --clicks, first the demo network around it (three advertisers, nine offers, eighteen partners, a Segment
    source) and its traffic of the last days: run again, it adds more."""
    settings = load_settings(host=host, port=port)
    if clicks:
        _fill_demo(settings, TrafficPlan(clicks, days, secrets.randbelow(10**6) if seed is None else seed, utc_now()))
    if then_serve:
        ctx.invoke(serve, host=host, port=port, workers=None, demo=True)
    else:
        migrate_database(settings)
        _print_demo(settings)


def _fill_demo(settings: Settings, plan: TrafficPlan) -> None:
    """Create (or find) the demo network and record its past traffic, with a progress bar; print what it did."""
    container = build(settings)
    started = time.monotonic()
    try:
        network, report, blocked = asyncio.run(_fill(container, plan))
    finally:
        container.close()
    click.echo(traffic_text(network, report, plan, time.monotonic() - started, blocked))


def _admin_link_text(base: str, link: tuple[User, LinkKind, str | None]) -> str:
    """How the demo's admin user signs in to the console: its one-time link, shown once."""
    user, kind, token = link
    if token is None:
        return f"Admin user {user.email} is disabled: enable it to sign in with it."
    valid = "an invitation, valid 72 hours" if kind is LinkKind.INVITATION else "a password reset, valid 2 hours"
    return (
        f"Admin user {user.email}: set its password at {accept_url(base, token)}\n"
        f"  ({valid}; shown once: `tracklane users reset-password --email {user.email}` prints another)"
    )


async def _fill(container: Container, plan: TrafficPlan) -> tuple[DemoNetwork, TrafficReport, int]:
    network = await create_network(container.catalog, container.sources, container.settings.base_url)
    label = f"Recording {plan.clicks:,} clicks of the last {plan.days} days"
    with click.progressbar(length=plan.clicks, label=label, file=sys.stderr) as bar:
        report = await record_traffic(container.db, network, plan, bar.update)
    return network, report, len(await traffic_rules(container.traffic))


def traffic_text(
    network: DemoNetwork, report: TrafficReport, plan: TrafficPlan, seconds: float, blocked: int = 0
) -> str:
    pending = sum(p.status is PartnerStatus.PENDING for p in network.partners.values())
    currencies = ", ".join(sorted({o.currency for o in network.offers.values()}))
    return "\n".join([
        f"Demo network: {len(network.advertisers)} advertisers, {len(network.offers)} offers ({currencies}), "
        f"{len(network.partners)} partners ({pending} sign-ups waiting for review), Segment source "
        f"#{network.source.id} {network.source.name!r}.",
        f"Recorded {report.clicks:,} clicks ({report.rejected_clicks:,} refused, {report.bot_clicks:,} bots), "
        f"{report.postbacks:,} postbacks, {report.segment_calls:,} Segment calls and {report.reviews:,} reviews "
        f"in {seconds:.1f} s; --seed {plan.seed} draws the same traffic again.",
        f"Traffic rules: {blocked} sub ids newly blocked for converting under 0.5 % (see /ui/traffic).",
    ])  # fmt: skip


@main.command()
def migrate() -> None:
    """Create or migrate the schema of TRACKLANE_DATABASE_URL, then exit."""
    migrate_database(load_settings())
    click.echo("schema is up to date")


@main.group()
def reports() -> None:
    """Maintain what reports are counted from."""


@reports.command("recount")
def recount() -> None:
    """Recount the report rollups from the raw clicks and conversions (after loading or changing them by SQL)."""
    began = time.perf_counter()
    recount_reports(load_settings())
    click.echo(f"report rollups recounted in {time.perf_counter() - began:.1f} s")


@main.command()
def worker() -> None:
    """Deliver webhooks and partner postbacks from the outbox, and evaluate traffic optimization rules, until
    SIGTERM or SIGINT (run any number)."""
    container = build(load_settings())
    try:
        asyncio.run(_run_worker(container))
    finally:
        container.close()


async def _run_worker(container: Container) -> None:
    """Deliver until a signal; then let the sends in flight finish, for at most the shutdown timeout."""
    running = delivery_worker(container)
    optimizer = traffic_optimizer(container)
    task = asyncio.gather(running.run(), optimizer.run())
    loop = asyncio.get_running_loop()

    def stop() -> None:
        running.stop()
        optimizer.stop()
        loop.call_later(container.settings.shutdown_timeout_seconds, task.cancel)

    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop)
    click.echo(f"delivery worker {running.worker_id} running", err=True)
    with suppress(asyncio.CancelledError):
        await task


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


@main.group()
def conversions() -> None:
    """Import offline conversions."""


@conversions.command("import")
@click.argument("file", type=click.File("rb"))
@click.option("--dry-run", is_flag=True, help="Report what the import would do, and write nothing.")
@click.option("--advertiser-id", type=int, default=None, help="Import as this advertiser: only its offers' clicks.")
@click.option("--json", "as_json", is_flag=True, help="Print the whole answer as JSON (as the API answers).")
def import_conversions(file: BinaryIO, dry_run: bool, advertiser_id: int | None, as_json: bool) -> None:
    """Record the conversions and events of a CSV file (`-` reads standard input), each row attributed like
    an API conversion; print a summary and each refused row. Exits 1 when a row was refused (or the file
    was), 0 otherwise."""
    data = file.read(MAX_FILE_BYTES + 1)
    scope = Scope(Role.ADMIN) if advertiser_id is None else Scope(Role.ADVERTISER, advertiser_id=advertiser_id)
    report = _with_container(lambda c: c.conversions.import_file(scope, data, dry_run=dry_run))
    click.echo(msgspec.json.encode(report).decode() if as_json else import_text(report))
    if report.rejected:
        sys.exit(1)


def import_text(report: ConversionImportView) -> str:
    """A summary line, then one line per refused row: `row N (transaction_id): code [field]: message`."""
    verb = "would record" if report.dry_run else "recorded"
    lines = [f"{report.rows} rows: {verb} {report.accepted}, {report.duplicates} duplicates (recorded before), "
             f"{report.rejected} refused{' (dry run: nothing was written)' if report.dry_run else ''}"]  # fmt: skip
    for error in report.errors:
        field = f" [{error.field}]" if error.field else ""
        lines.append(f"row {error.row} ({error.transaction_id or '-'}): {error.error}{field}: {error.message}")
    return "\n".join(lines)


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
        link = asyncio.run(admin_link(container.users))
        if settings.admin_key is None:
            _, admin_key = asyncio.run(container.api_keys.create(ApiKeyCreate(role=Role.ADMIN)))
        else:
            admin_key = settings.admin_key.get_secret_value()
    finally:
        container.close()
    click.echo(demo_text(program, settings.base_url, admin_key))
    click.echo(_admin_link_text(settings.base_url, link))


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


@main.group()
def users() -> None:
    """Manage the people who sign in to the console and the portals."""


@users.command("create")
@click.option("--email", required=True, help="The address the person signs in with.")
@click.option("--role", type=click.Choice(["admin", "advertiser", "partner"]), required=True)
@click.option("--advertiser-id", type=int, default=None, help="The advertiser of an advertiser's user.")
@click.option("--partner-id", type=int, default=None, help="The partner of a partner's user.")
@click.option("--name", default=None, help="The person's name.")
@click.option("--password-stdin", is_flag=True, help="Read the password from the first line of standard input.")
def create_user(
    email: str, role: str, advertiser_id: int | None, partner_id: int | None, name: str | None, password_stdin: bool
) -> None:
    """Create a user; without a password it is invited, and its invitation link is printed."""
    password = sys.stdin.readline().rstrip("\r\n") if password_stdin else None
    fields = {"email": email, "role": role, "advertiser_id": advertiser_id, "partner_id": partner_id, "name": name,
              "password": password}  # fmt: skip
    try:
        request = convert({k: v for k, v in fields.items() if v is not None}, UserCreate)
    except InvalidParameter as error:
        raise click.UsageError(error.message) from None

    async def create(container: Container) -> tuple[User, str | None]:
        user = await container.users.create(request)
        if user.status is not UserStatus.INVITED:
            return user, None
        return user, await container.users.one_time_link(user.id, LinkKind.INVITATION)

    user, token = _with_container(create)
    click.echo(f"user #{user.id} {user.email} ({user.role.value}) is {user.status.value}", err=True)
    if token is not None:
        click.echo(accept_url(load_settings().base_url, token))
        click.echo("(the invitation link: valid 72 hours, it is shown once)", err=True)


@users.command("reset-password")
@click.option("--email", required=True, help="The address the person signs in with.")
def reset_password(email: str) -> None:
    """Print a one-time link (valid 2 hours) where the user sets a new password."""

    async def reset(container: Container) -> str:
        user = await container.users.by_email(email)
        return await container.users.one_time_link(user.id, LinkKind.PASSWORD_RESET)

    click.echo(accept_url(load_settings().base_url, _with_container(reset)))


@users.command("list")
@click.option("--limit", type=click.IntRange(1, 500), default=50, show_default=True)
def list_users(limit: int) -> None:
    """Newest first, one line each: id, e-mail, role, advertiser or partner, status, last sign-in."""
    for user in _with_container(lambda c: c.users.list(Page(limit=limit))):
        owner = user.advertiser_id or user.partner_id or ""
        seen = "" if user.last_sign_in_at is None else user.last_sign_in_at.isoformat()
        click.echo(f"{user.id}\t{user.email}\t{user.role.value}\t{owner}\t{user.status.value}\t{seen}\t{user.name}")
