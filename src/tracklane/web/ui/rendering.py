"""Pages from templates: the Jinja2 environment (autoescaping everything), the formats of money, numbers
and instants for the viewer's locale and the program's zone (`TRACKLANE_TIMEZONE`), and the security headers
every page carries.

The Content-Security-Policy allows scripts, styles, images and requests from this origin only: no inline
script or style runs, so markup that slipped into a page could not execute. Data for scripts travels in
`<script type="application/json">` blocks, which are never executed.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, tzinfo
from decimal import Decimal
from pathlib import Path
from typing import Any

from babel import Locale, UnknownLocaleError
from babel.numbers import format_currency, format_decimal, format_percent
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from starlette.requests import Request
from starlette.responses import HTMLResponse

from tracklane.domain.model import REASON_CODES
from tracklane.domain.money import minor_units
from tracklane.web import sdk
from tracklane.web.ui.dates import program_zone

TEMPLATES = Path(__file__).parent / "templates"
STATIC = Path(__file__).parent / "static"

CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "font-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
SECURITY_HEADERS: Mapping[str, str] = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}
DEFAULT_LOCALE = Locale.parse("en_US")


def locale_of(request: Request) -> Locale:
    """The viewer's locale from `Accept-Language` (its first tag babel knows), else en_US."""
    for part in request.headers.get("accept-language", "").split(","):
        tag = part.split(";")[0].strip().replace("-", "_")
        if not tag or tag == "*":
            continue
        try:
            return Locale.parse(tag)
        except (ValueError, UnknownLocaleError):
            continue
    return DEFAULT_LOCALE


class Formats:
    """How one viewer reads money, counts, ratios and instants (in `zone`, the program's)."""

    def __init__(self, locale: Locale, zone: tzinfo) -> None:
        self.locale = locale
        self.zone = zone

    @property
    def zone_name(self) -> str:
        return str(self.zone)

    def money(self, amount: Decimal | str | None, currency: str) -> str:
        """ISO 4217 places (JPY none, USD two, KWD three), the locale's symbol and separators."""
        if amount is None:
            return "—"
        value = Decimal(amount)
        places = minor_units(currency)
        pattern = self.locale.currency_formats["standard"].pattern
        return format_currency(
            value.quantize(Decimal(1).scaleb(-places)),
            currency,
            format=pattern,
            locale=self.locale,
            currency_digits=False,
            decimal_quantization=False,
        )

    def number(self, value: int | Decimal | str | None) -> str:
        if value is None:
            return "—"
        return format_decimal(Decimal(value), locale=self.locale)

    def percent(self, value: Decimal | str | None) -> str:
        """A percentage given as its number of hundredths (`"2.50"` is 2.5 %)."""
        if value is None:
            return "—"
        return format_percent(Decimal(value) / 100, format="#,##0.00%", locale=self.locale)

    def instant(self, value: datetime | str | None) -> str:
        """The local time of the zone, to the minute (`2026-03-01 05:45`)."""
        if value is None:
            return "—"
        moment = datetime.fromisoformat(value) if isinstance(value, str) else value
        return moment.astimezone(self.zone).strftime("%Y-%m-%d %H:%M")


def _environment() -> Environment:
    environment = Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=select_autoescape(default=True, default_for_string=True),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    environment.globals["sdk_version"] = sdk.VERSION  # the snippets pin the SDK the server serves
    environment.globals["reason_codes"] = {code.value: text for code, text in REASON_CODES.items()}
    return environment


ENVIRONMENT = _environment()


def render(request: Request, template: str, context: Mapping[str, Any], status: int = 200) -> HTMLResponse:
    """The page `template` rendered with `context`, its formats and the security headers."""
    formats = Formats(locale_of(request), program_zone(request))
    body = ENVIRONMENT.get_template(template).render({"fmt": formats, "request_path": request.url.path, **context})
    return HTMLResponse(body, status_code=status, headers=dict(SECURITY_HEADERS))
