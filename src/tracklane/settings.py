"""Settings from `TRACKLANE_*` environment variables, validated once at start-up."""

from __future__ import annotations

import ipaddress
from datetime import tzinfo
from typing import Literal

from pydantic import Field, FilePath, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from tracklane.domain.destinations import parse_allow_list
from tracklane.domain.errors import InvalidParameter
from tracklane.domain.macros import validate_template
from tracklane.resources.reports import parse_zone


class Settings(BaseSettings):
    """Every setting of a Tracklane process; each maps to `TRACKLANE_<NAME>`."""

    model_config = SettingsConfigDict(env_prefix="TRACKLANE_", frozen=True, extra="ignore")

    database_url: str = Field(
        default="sqlite:///tracklane.db",
        description="SQLAlchemy URL: `sqlite:///path.db` (default, a file in the working directory) or "
        "`postgresql://user@host:5432/db`.",
    )
    host: str = Field(default="127.0.0.1", description="Interface `tracklane serve` listens on.")
    port: int = Field(default=8080, ge=1, le=65535, description="Port `tracklane serve` listens on.")
    public_url: str | None = Field(
        default=None, description="Base URL users reach this server at (for printed links); default http://host:port."
    )
    admin_key: SecretStr | None = Field(
        default=None, description="Ensure an admin API key with this value exists at start-up (at least 24 characters)."
    )
    fallback_url: str | None = Field(
        default=None,
        description="Network fallback URL for clicks that must not reach their offer and whose offer has none.",
    )
    country_header: str | None = Field(
        default=None,
        description="Request header holding the visitor's ISO country code, set by a CDN or proxy "
        "(for example CF-IPCountry); read when the country database does not know the address.",
    )
    geoip_database: FilePath | None = Field(
        default=None,
        description="A MaxMind-format country or city database (.mmdb: GeoLite2-Country, DB-IP's IP-to-Country "
        "Lite, ...) that clicks' countries are looked up in first.",
    )
    duplicate_click_window_seconds: float = Field(
        default=60,
        ge=0,
        le=86400,
        description="A billable click repeated (same IP, user agent, offer and partner) within this many seconds "
        "is recorded as a duplicate, not billed; 0 turns the check off.",
    )
    workers: int = Field(default=1, ge=1, le=64, description="Server processes `tracklane serve` starts.")
    catalog_cache_seconds: float = Field(
        default=2.0,
        ge=0,
        le=300,
        description="How long a process may keep offers, partners and offer access in memory "
        "for tracking. Changes made through the same process apply at once; changes made through another "
        "process apply within this time. 0 turns the cache off.",
    )
    database_lock_timeout_seconds: float = Field(
        default=2.0,
        gt=0,
        le=60,
        description="How long one statement waits for a lock another connection holds (SQLite's busy "
        "timeout, PostgreSQL's lock_timeout), and a read for a free pooled connection.",
    )
    write_timeout_seconds: float = Field(
        default=4.0,
        gt=0,
        le=300,
        description="The longest a write may take from its request to its answer (waiting in the queue, for "
        "locks, and retries after database errors; also the writer's PostgreSQL statement_timeout); past it the "
        "request is answered 503 with Retry-After, at most 0.5 s later.",
    )
    report_cache_rows: int = Field(
        default=100_000,
        ge=0,
        le=10_000_000,
        description="Report rows one process keeps between reports grouped first by day (each whole day's rows, "
        "as a role sees them, while no write changed that day; about 400 bytes a row). 0 keeps none.",
    )
    write_queue_size: int = Field(
        default=10_000,
        ge=1,
        le=1_000_000,
        description="Writes one process holds waiting for its writer; one more is answered 503 with "
        "Retry-After at once.",
    )
    segment_browser_bundles: str | None = Field(
        default=None,
        description="Directory holding @segment/analytics-next's browser build (`dist/umd`), served at "
        "`/analytics-next/bundles/` for analytics.js loaded with this server as its cdnURL.",
    )
    segment_max_in_flight: int = Field(
        default=256,
        ge=0,
        le=100_000,
        description="Segment intake requests one process works on at once; more are "
        "answered 429 with Retry-After (clients retry, dedup keeps each message once).",
    )
    allow_private_destinations: str = Field(
        default="",
        description="Comma-separated hosts or CIDRs (e.g. `127.0.0.1/32`) that webhooks and partner postbacks "
        "may reach although they are private or reserved; for development and tests. Default: none.",
    )
    secrets_key: SecretStr | None = Field(
        default=None,
        description="Passphrase (at least 32 characters) that encrypts postback tokens, Segment webhook secrets "
        "and webhook signing secrets at rest; the same on every server and worker. Required with PostgreSQL; "
        "unset with SQLite, a key generated once is kept in `<database>.key` beside the database file.",
    )
    delivery_in_serve: bool = Field(
        default=True,
        description="Whether `tracklane serve` runs a delivery worker (and the traffic optimizer) in each server "
        "process.",
    )
    traffic_optimize_seconds: float = Field(
        default=900,
        ge=0.1,
        le=86400,
        description="How often the worker evaluates each active traffic optimization rule.",
    )
    delivery_concurrency: int = Field(
        default=32, ge=1, le=1024, description="Requests one delivery worker sends at once."
    )
    delivery_timeout_seconds: float = Field(
        default=15.0,
        gt=0,
        le=60,
        description="Time limit of one delivery attempt (connect, send, first KB of the answer).",
    )
    delivery_lease_seconds: float = Field(
        default=60.0,
        gt=0,
        le=3600,
        description="How long a worker owns a claimed delivery; an expired lease is taken over "
        "by another worker. Must exceed the delivery timeout.",
    )
    delivery_poll_seconds: float = Field(
        default=1.0, gt=0, le=60, description="How often an idle delivery worker looks for due deliveries."
    )
    delivery_retry_scale: float = Field(
        default=1.0, gt=0, le=10, description="Multiplies every retry delay of the schedule (tests use a small value)."
    )
    webhook_disable_after_hours: float = Field(
        default=120.0,
        gt=0,
        description="A webhook endpoint whose deliveries have failed without a success for this long "
        "is disabled (with the reason stored and logged).",
    )
    max_body_bytes: int = Field(
        default=65_536,
        ge=1024,
        le=64 * 1024 * 1024,
        description="Largest request body of the tracking and API routes (uncompressed; they take no "
        "Content-Encoding): a larger Content-Length is answered 413 at once, a longer chunked body is "
        "answered 413 as soon as it passes the limit. Segment intake keeps its own limits.",
    )
    header_timeout_seconds: float = Field(
        default=10.0,
        gt=0,
        le=600,
        description="Time a client has, from the first byte of a request, to send its request line and "
        "headers; then 408 and the connection is closed.",
    )
    body_timeout_seconds: float = Field(
        default=30.0,
        gt=0,
        le=3600,
        description="Time a client has, once the headers are in, to send the whole body; then 408 (when "
        "nothing was answered yet) and the connection is closed.",
    )
    idle_timeout_seconds: float = Field(
        default=5.0,
        gt=0,
        le=3600,
        description="How long a connection may wait for its first request, or for the next one after an "
        "answer (keep-alive), before it is closed. Behind a load balancer, make it longer than the "
        "balancer's own idle timeout.",
    )
    trusted_proxies: str = Field(
        default="127.0.0.1,::1",
        description="Comma-separated addresses or CIDRs of the reverse proxies whose X-Forwarded-For and "
        "X-Forwarded-Proto are believed; the client is the rightmost forwarded address that is not one "
        "of them. Empty: the connection's peer is always the client.",
    )
    rate_limit_per_second: float = Field(
        default=5000.0,
        ge=0,
        description="Requests a second one process takes from one client IP, and with one credential "
        "(postback token, Segment write key), on the tracking routes and on Segment intake (each its "
        "own bucket); more are answered 429 with Retry-After. 0 turns it off.",
    )
    rate_limit_api_per_second: float = Field(
        default=1000.0,
        ge=0,
        description="Requests a second one process takes on /api/v1 from one client IP and with one API "
        "key; more are answered 429 with Retry-After. 0 turns it off.",
    )
    rate_limit_burst_seconds: float = Field(
        default=2.0,
        gt=0,
        le=3600,
        description="How many seconds of its rate a bucket holds: the burst allowed above the rate.",
    )
    rate_limit_failures_per_second: float = Field(
        default=2.0,
        ge=0,
        description="Failed authentications (401 from the API for a key that was sent, 401 from Segment "
        "intake, 403 invalid_token from /postback) one client IP "
        "may have per second after its burst; past it, its requests to routes that take a credential "
        "are answered 429, except with a credential that has succeeded before. 0 turns it off.",
    )
    rate_limit_failure_burst: int = Field(
        default=100,
        ge=1,
        description="Failed authentications one client IP may have at once before the failure rate applies.",
    )
    timezone: str = Field(
        default="UTC",
        description="The program's time zone (an IANA name such as Asia/Kathmandu): the days of the console's "
        "and the portals' dashboards, charts, stats and date pickers, the times they show, and the default zone "
        "of the console's reports. The reports API keeps UTC as its default.",
    )
    session_hours: float = Field(
        default=12.0,
        gt=0,
        le=24 * 90,
        description="How long a sign-in to the console or a portal lasts; then the person signs in again.",
    )
    metrics_token: SecretStr | None = Field(
        default=None,
        description="Bearer token (at least 24 characters) that `/metrics` asks of every scraper that is not "
        "on loopback (Authorization: Bearer <token>). Unset: /metrics answers loopback only (403 elsewhere).",
    )
    log_format: Literal["text", "json"] = Field(
        default="text",
        description="`json`: one JSON object per log line (time, level, logger, message, request_id); "
        "`text`: plain lines.",
    )
    shutdown_timeout_seconds: float = Field(
        default=30.0,
        gt=0,
        le=3600,
        description="On SIGTERM, how long a server process lets the requests in flight (and its delivery "
        "worker's sends) finish before it cancels them; its writer then commits what is queued and it exits.",
    )
    readiness_timeout_seconds: float = Field(
        default=2.0,
        gt=0,
        le=60,
        description="How long /readyz waits for the database (a read) and for the writer (a write changing nothing) "
        "before it answers 503 naming the check that did not answer.",
    )

    @field_validator("database_url")
    @classmethod
    def _known_database(cls, value: str) -> str:
        if not value.startswith(("sqlite:", "postgresql:", "postgresql+psycopg:", "postgres:")):
            raise ValueError("must start with sqlite:/// or postgresql://")
        return value

    @field_validator("admin_key", "metrics_token")
    @classmethod
    def _strong_admin_key(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value()) < 24:
            raise ValueError("must be at least 24 characters")
        return value

    @field_validator("secrets_key")
    @classmethod
    def _strong_secrets_key(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value()) < 32:
            raise ValueError("must be at least 32 characters")
        return value

    @field_validator("fallback_url", "public_url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        if value in (None, ""):
            return None
        try:
            return validate_template(value, "url")
        except InvalidParameter as error:
            raise ValueError(error.message) from None

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            parse_zone(value.strip(), "timezone")
        except InvalidParameter as error:
            raise ValueError(error.detail) from None
        return value.strip()

    @field_validator("trusted_proxies")
    @classmethod
    def _proxies(cls, value: str) -> str:
        _networks(value)
        return value

    @field_validator("allow_private_destinations")
    @classmethod
    def _destinations(cls, value: str) -> str:
        try:
            parse_allow_list(value)
        except InvalidParameter as error:
            raise ValueError(error.message) from None
        return value

    @model_validator(mode="after")
    def _lease_outlives_attempt(self) -> Settings:
        if self.delivery_lease_seconds <= self.delivery_timeout_seconds:
            raise ValueError("TRACKLANE_DELIVERY_LEASE_SECONDS must exceed TRACKLANE_DELIVERY_TIMEOUT_SECONDS")
        return self

    @property
    def trusted_proxy_networks(self) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
        return _networks(self.trusted_proxies)

    @property
    def zone(self) -> tzinfo:
        """The program's time zone (`timezone`)."""
        return parse_zone(self.timezone, "timezone")

    @property
    def base_url(self) -> str:
        host = "127.0.0.1" if self.host in ("0.0.0.0", "::") else self.host
        return (self.public_url or f"http://{host}:{self.port}").rstrip("/")


def _networks(text: str) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    """Comma-separated addresses or CIDRs; a ValueError names the one that is neither."""
    networks = []
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        try:
            networks.append(ipaddress.ip_network(item, strict=False))
        except ValueError:
            raise ValueError(f"{item!r} is not an IP address or CIDR") from None
    return tuple(networks)
