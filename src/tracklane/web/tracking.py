"""The tracking hot path: `/r/{offer_id}/{partner_id}`, `/clk`, `/postback` and `/pixel` (plain Starlette).

`/pixel` converts only a click of its own offer, shown by that offer's first-party cookie `tl_{offer_id}`
or by a `click_token` that `/clk` issued for the click; a bare `transaction_id` converts nothing.
"""

from __future__ import annotations

import base64
import logging
import re
from typing import Any

from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from tracklane.domain.errors import InvalidParameter, PostbackRefused, StorageUnavailable, TracklaneError
from tracklane.domain.model import ConversionMethod, Origin
from tracklane.domain.money import format_money
from tracklane.domain.postback import ClickClaim, Proof, parse_conversion_request, split_click_token
from tracklane.services.clicks import ClickOutcome, ClickRequest
from tracklane.services.conversions import ConversionOutcome
from tracklane.services.registry import Services, WebSettings
from tracklane.web import metrics
from tracklane.web.countries import Countries
from tracklane.web.devices import detect_device
from tracklane.web.errors import error_response
from tracklane.web.params import all_params, positive_int

log = logging.getLogger("tracklane.tracking")

NO_STORE = {"Cache-Control": "no-store"}
CORS = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Allow-Methods": "GET, POST, OPTIONS",
    "Access-Control-Allow-Headers": "Content-Type",
    "Access-Control-Max-Age": "86400",
}
PIXEL = base64.b64decode("R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7")
NOT_AVAILABLE = (
    "<!doctype html><meta charset=utf-8><title>Link not available</title><p>This link is not available right now.</p>"
)
SUB_FIELDS = ("sub1", "sub2", "sub3", "sub4", "sub5")


def _container(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


def configure(state: object, settings: WebSettings) -> None:
    """Give the app (its `state`) the country lookup of these settings."""
    state.countries = Countries(settings.geoip_database, settings.country_header)  # type: ignore[attr-defined]


def _countries(request: Request) -> Countries:
    countries: Countries = request.app.state.countries
    return countries


# Control characters and lone surrogates (a JSON `\ud800` escape; no database stores one) are dropped.
_UNSTORED = re.compile("[\x00-\x1f\ud800-\udfff]")


def _clip(value: Any, limit: int = 255) -> str | None:
    if value is None or (text := str(value).strip()) == "":
        return None
    if _UNSTORED.search(text):
        text = _UNSTORED.sub("", text)
    return text[:limit] or None


def _click_request(request: Request, params: dict[str, Any], offer_id: int, partner_id: int) -> ClickRequest:
    user_agent = request.headers.get("user-agent")
    ip = request.client.host if request.client else None
    subs = (
        _clip(params.get("sub1")),
        _clip(params.get("sub2")),
        _clip(params.get("sub3")),
        _clip(params.get("sub4")),
        _clip(params.get("sub5")),
    )
    return ClickRequest(
        offer_id=offer_id,
        partner_id=partner_id,
        subs=subs,
        source_id=_clip(params.get("source_id")),
        ip=ip,
        user_agent=_clip(user_agent, 1024),
        device=detect_device(user_agent),
        country=_countries(request).of(ip, request.headers),
        referrer=_clip(request.headers.get("referer"), 2048),
    )


async def redirect_click(request: Request) -> Response:
    """GET records the click and redirects; HEAD answers the same way and records nothing."""
    try:
        offer_id = positive_int(request.path_params["offer_id"], "offer_id")
        partner_id = positive_int(request.path_params["partner_id"], "partner_id")
    except InvalidParameter:
        return HTMLResponse(NOT_AVAILABLE, status_code=404, headers=NO_STORE)
    click_request = _click_request(request, dict(request.query_params), offer_id, partner_id)
    clicks = _container(request).clicks
    if request.method == "HEAD":
        location = await clicks.preview(click_request)
        if location is None:
            return HTMLResponse(NOT_AVAILABLE, status_code=404, headers=NO_STORE)
        return RedirectResponse(location, status_code=302, headers=NO_STORE)
    outcome = await clicks.record(click_request)
    metrics.click(outcome.click)
    if outcome.redirect_url is None:
        response: Response = HTMLResponse(NOT_AVAILABLE, status_code=404, headers=NO_STORE)
    else:
        response = RedirectResponse(outcome.redirect_url, status_code=302, headers=NO_STORE)
    if outcome.duplicate_of is None:  # a repeat keeps the first click's cookie
        _set_click_cookie(request, response, outcome)
    return response


def _set_click_cookie(request: Request, response: Response, outcome: ClickOutcome) -> None:
    """`tl_{offer_id}` = the transaction id (hex: no quoting), written as Starlette's `set_cookie` writes it
    (`http.cookies` costs a tenth of a click)."""
    click = outcome.click
    cookie = f"tl_{click.offer_id}={click.transaction_id}; Max-Age={outcome.cookie_days * 86400}; Path=/; SameSite=lax"
    if request.scope.get("scheme") == "https":
        cookie += "; Secure"
    response.raw_headers.append((b"set-cookie", cookie.encode("latin-1")))


async def create_click(request: Request) -> Response:
    """Server-side click creation (and direct linking): answers the new transaction_id as JSON."""
    if request.method == "OPTIONS":
        return Response(status_code=204, headers=CORS)
    try:
        params = await all_params(request)
        offer_id = positive_int(params.get("offer_id"), "offer_id")
        partner_id = positive_int(params.get("partner_id"), "partner_id")
    except TracklaneError as error:
        return error_response(error, headers={**CORS, **NO_STORE})
    click_request = _click_request(request, params, offer_id, partner_id)
    outcome = await _container(request).clicks.record(click_request, with_token=True)
    metrics.click(outcome.click)
    body: dict[str, Any] = {"transaction_id": outcome.click.transaction_id, "verdict": outcome.click.verdict}
    if outcome.click.reject_reason:
        body["reject_reason"] = outcome.click.reject_reason
    if outcome.duplicate_of is not None:
        body["duplicate_of"] = outcome.duplicate_of
    body["redirect_url"] = outcome.redirect_url
    body["click_token"] = outcome.click_token
    body["cookie_days"] = outcome.cookie_days  # how long a browser keeps the click: the attribution window
    return JSONResponse(body, headers={**CORS, **NO_STORE})


async def postback(request: Request) -> Response:
    """A server-to-server conversion or event; see DESIGN §3.1 for every result code."""
    try:
        params = await all_params(request)
        conversion_request = parse_conversion_request(params, token_required=True)
        outcome = await _container(request).conversions.record(conversion_request, Origin.POSTBACK)
    except TracklaneError as error:
        metrics.conversion(Origin.POSTBACK, error.code)
        if isinstance(error, PostbackRefused | InvalidParameter):
            log.info("postback refused: %s %s", error.code, error.message)
        return error_response(error, headers=NO_STORE)
    metrics.conversion(Origin.POSTBACK, outcome.result)
    return JSONResponse(outcome_body(outcome), headers=NO_STORE)


def outcome_body(outcome: ConversionOutcome) -> dict[str, Any]:
    conversion = outcome.conversion
    return {
        "result": outcome.result,
        "conversion_id": conversion.id,
        "status": conversion.status.value,
        "transaction_id": conversion.transaction_id,
        "event_id": conversion.event_id,
        "revenue": format_money(conversion.revenue, conversion.currency),
        "payout": format_money(conversion.payout, conversion.currency),
        "currency": conversion.currency,
    }


#: Parameters of `/pixel` that never reach the conversion: a browser carries no postback token, and the
#: click comes from the cookie or the click token only. `sdk` (the SDK's version) is a label: the browser SDK
#: fires the pixel with it, and the conversion method checked is then the offer's `sdk` one (same proofs).
_NOT_PIXEL_FIELDS = frozenset({"secure", "transaction_id", "click_token", "sdk"})


async def pixel(request: Request) -> Response:
    """Image-pixel conversion of the offer's own click (by its cookie or a click token); always a 1x1 GIF."""
    params: dict[str, Any] = dict(request.query_params)
    try:
        offer_id = positive_int(params.get("offer_id"), "offer_id")
        transaction_id, claim = _pixel_claim(request, params, offer_id)
        fields = {name: value for name, value in params.items() if name not in _NOT_PIXEL_FIELDS}
        conversion_request = parse_conversion_request({**fields, "transaction_id": transaction_id},
                                                      token_required=False)  # fmt: skip
        method = ConversionMethod.SDK if params.get("sdk") else ConversionMethod.PIXEL
        outcome = await _container(request).conversions.record(
            conversion_request, Origin.SDK, method=method, claim=claim
        )
        metrics.conversion(Origin.SDK, outcome.result)
        log.info("pixel conversion %s: %s", outcome.conversion.id, outcome.result)
    except StorageUnavailable as error:
        metrics.conversion(Origin.SDK, error.code)
        log.error("pixel conversion could not be recorded: %s", error.message)
    except TracklaneError as error:
        metrics.conversion(Origin.SDK, error.code)
        log.info("pixel conversion refused: %s %s", error.code, error.message)
    except Exception:  # the browser gets its GIF whatever happens, storage faults included
        metrics.conversion(Origin.SDK, "error")
        log.exception("pixel conversion could not be recorded")
    return Response(PIXEL, media_type="image/gif", headers={**NO_STORE, "Access-Control-Allow-Origin": "*"})


def _pixel_claim(request: Request, params: dict[str, Any], offer_id: int) -> tuple[str, ClickClaim]:
    """The click the pixel names and its proof: a `click_token` parameter, else the offer's cookie."""
    token = params.get("click_token")
    if token:
        transaction_id, mac = split_click_token(str(token))
        return transaction_id, ClickClaim(Proof.CLICK_TOKEN, offer_id=offer_id, mac=mac)
    cookie = request.cookies.get(f"tl_{offer_id}")
    if cookie:
        return cookie, ClickClaim(Proof.COOKIE, offer_id=offer_id)
    raise PostbackRefused("invalid_token", f"neither the offer's tl_{offer_id} cookie nor a click_token was sent")


routes = [
    Route("/r/{offer_id}/{partner_id}", redirect_click, methods=["GET", "HEAD"]),
    Route("/clk", create_click, methods=["GET", "POST", "OPTIONS"]),
    Route("/postback", postback, methods=["GET", "POST"]),
    Route("/pixel", pixel, methods=["GET"]),
]
