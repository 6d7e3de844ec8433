"""Settings from `TRACKLANE_*` environment variables, validated once at start-up."""

from __future__ import annotations

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from tracklane.domain.errors import InvalidParameter
from tracklane.domain.macros import validate_template


class Settings(BaseSettings):
    """Every setting of a Tracklane process; each maps to `TRACKLANE_<NAME>`."""

    model_config = SettingsConfigDict(env_prefix="TRACKLANE_", frozen=True, extra="ignore")

    database_url: str = Field(
        "sqlite:///tracklane.db",
        description="SQLAlchemy URL: `sqlite:///path.db` (default, a file in the working directory) or "
        "`postgresql://user@host:5432/db`.",
    )
    host: str = Field("127.0.0.1", description="Interface `tracklane serve` listens on.")
    port: int = Field(8080, ge=1, le=65535, description="Port `tracklane serve` listens on.")
    public_url: str | None = Field(
        None, description="Base URL users reach this server at (for printed links); default http://host:port."
    )
    admin_key: SecretStr | None = Field(
        None, description="Ensure an admin API key with this value exists at start-up (at least 24 characters)."
    )
    fallback_url: str | None = Field(
        None, description="Network fallback URL for clicks that must not reach their offer and whose offer has none."
    )
    country_header: str | None = Field(
        None, description="Request header holding the visitor's ISO country code, set by a CDN or proxy "
        "(for example CF-IPCountry)."
    )
    workers: int = Field(1, ge=1, le=64, description="Server processes `tracklane serve` starts.")
    catalog_cache_seconds: float = Field(
        2.0, ge=0, le=300, description="How long a process may keep offers, partners and offer access in memory "
        "for tracking. Changes made through the same process apply at once; changes made through another "
        "process apply within this time. 0 turns the cache off."
    )
    segment_browser_bundles: str | None = Field(
        None, description="Directory holding @segment/analytics-next's browser build (`dist/umd`), served at "
        "`/analytics-next/bundles/` for analytics.js loaded with this server as its cdnURL."
    )
    segment_max_in_flight: int = Field(
        256, ge=0, le=100_000, description="Segment intake requests one process works on at once; more are "
        "answered 429 with Retry-After (clients retry, dedup keeps each message once)."
    )

    @field_validator("database_url")
    @classmethod
    def _known_database(cls, value: str) -> str:
        if not value.startswith(("sqlite:", "postgresql:", "postgresql+psycopg:", "postgres:")):
            raise ValueError("must start with sqlite:/// or postgresql://")
        return value

    @field_validator("admin_key")
    @classmethod
    def _strong_admin_key(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value()) < 24:
            raise ValueError("must be at least 24 characters")
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

    @property
    def base_url(self) -> str:
        host = "127.0.0.1" if self.host in ("0.0.0.0", "::") else self.host
        return (self.public_url or f"http://{host}:{self.port}").rstrip("/")
