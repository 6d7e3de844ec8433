"""The only mapping from errors to HTTP: status codes, the `{"error", "message"}` body and request ids.

Domain errors (`tracklane.domain.errors`; storage has already translated the driver's errors into them)
answer their status from the tables below: a taken unique key is a 409 naming the `field`, storage that
cannot be reached a 503 with `Retry-After`. Anything else that escapes a handler is a fault: a 500
`{"error": "internal_error", "message", "request_id"}`, logged with that request id. Every error answer
carries `X-Request-Id`: the caller's own when it is sane (so a proxy's id carries through), else a new one.
"""

from __future__ import annotations

import itertools
import logging
import re
import secrets

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tracklane.domain.errors import (
    Conflict,
    Forbidden,
    IntakeError,
    InvalidParameter,
    NotFound,
    PostbackRefused,
    RefusalCode,
    StorageUnavailable,
    TracklaneError,
    Unauthorized,
)

log = logging.getLogger("tracklane.web")

REQUEST_ID_HEADER = "X-Request-Id"
RETRY_AFTER_SECONDS = "5"
REFUSAL_STATUS: dict[RefusalCode, int] = {
    RefusalCode.INVALID_TOKEN: 403,
    RefusalCode.UNKNOWN_TRANSACTION: 404,
    RefusalCode.UNKNOWN_EVENT: 404,
    RefusalCode.NO_PRIOR_CONVERSION: 409,
    RefusalCode.BASE_CONVERSION_REJECTED: 409,
    RefusalCode.OUTSIDE_WINDOW: 422,
    RefusalCode.INVALID_PARAMETER: 400,
    RefusalCode.METHOD_NOT_ENABLED: 400,
    RefusalCode.ADVERTISER_INACTIVE: 403,
    RefusalCode.BUSY: 503,
}
"""The status of each refused conversion or event (one entry per `RefusalCode`)."""
STATUS: dict[type[TracklaneError], int] = {
    InvalidParameter: 400,
    Unauthorized: 401,
    Forbidden: 403,
    NotFound: 404,
    Conflict: 409,
    StorageUnavailable: 503,
}
"""The status of each kind of error; the nearest listed base class decides, else 400."""
_HTTP_CODES = {404: "not_found", 405: "method_not_allowed", 401: "unauthorized", 403: "forbidden"}
_SANE_REQUEST_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:/+=-]{0,127}")


def status_of(error: TracklaneError) -> int:
    if isinstance(error, PostbackRefused):
        return REFUSAL_STATUS.get(error.code, 400)
    if isinstance(error, IntakeError):
        return error.status
    return next((STATUS[kind] for kind in type(error).__mro__ if kind in STATUS), 400)


def error_body(error: TracklaneError) -> dict[str, str]:
    body = {"error": error.code, "message": error.message}
    if isinstance(error, InvalidParameter | Conflict) and error.field is not None:
        body["field"] = error.field
    return body


def request_id(request: Request) -> str:
    """This request's id, the same however often it is asked for: the caller's `X-Request-Id` when it is
    1 to 128 plain characters, else a new one (`new_request_id`)."""
    known: str | None = getattr(request.state, "request_id", None)
    if known is None:
        known = new_request_id(request.headers.get(REQUEST_ID_HEADER, ""))
        request.state.request_id = known
    return known


def new_request_id(offered: str) -> str:
    """The id of a request whose caller offered this `X-Request-Id` ("" for none): it, when sane, else a new
    one: 32 hex characters, unique (a random prefix per process and a counter; an id need not be secret)."""
    if offered and _SANE_REQUEST_ID.fullmatch(offered):
        return offered
    return f"{_ID_PREFIX}{next(_ids):016x}"


_ID_PREFIX = secrets.token_hex(8)
_ids = itertools.count(secrets.randbelow(1 << 32))


def error_response(
    error: TracklaneError, headers: dict[str, str] | None = None, request: Request | None = None
) -> JSONResponse:
    """The answer to a domain error; with the request, it carries the request id."""
    status = status_of(error)
    response_headers = dict(headers or {})
    if isinstance(error, Unauthorized):
        response_headers["WWW-Authenticate"] = "Bearer"
    if status == 503:
        response_headers.setdefault("Retry-After", RETRY_AFTER_SECONDS)
        response_headers.setdefault("Cache-Control", "no-store")
    if request is not None:
        response_headers[REQUEST_ID_HEADER] = request_id(request)
    return JSONResponse(error_body(error), status_code=status, headers=response_headers)


def install(app: FastAPI) -> None:
    """Register the handlers that give every error the same JSON shape."""

    async def domain_error(request: Request, error: Exception) -> Response:
        assert isinstance(error, TracklaneError)
        if isinstance(error, StorageUnavailable):
            log.error("storage unavailable (request %s): %s", request_id(request), error.__cause__ or error)
        return error_response(error, request=request)

    async def validation_error(request: Request, error: Exception) -> Response:
        assert isinstance(error, RequestValidationError)
        first = error.errors()[0] if error.errors() else {"loc": ("body",), "msg": "invalid"}
        location = [str(part) for part in first.get("loc", ()) if part not in ("body", "query", "path")]
        field = ".".join(location) or "body"
        return error_response(InvalidParameter(field, str(first.get("msg", "is invalid")).lower()), request=request)

    async def http_error(request: Request, error: Exception) -> Response:
        assert isinstance(error, HTTPException)
        body = {"error": _HTTP_CODES.get(error.status_code, "error"), "message": str(error.detail)}
        headers = {**(getattr(error, "headers", None) or {}), REQUEST_ID_HEADER: request_id(request)}
        return JSONResponse(body, status_code=error.status_code, headers=headers)

    app.add_exception_handler(TracklaneError, domain_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(HTTPException, http_error)
    app.add_middleware(Faults)


def fault_response(request: Request, error: Exception) -> JSONResponse:
    """The answer to an exception nothing else answered: a 500 naming the request id it is logged with."""
    rid = request_id(request)
    log.error("unexpected error (request %s) on %s %s", rid, request.method, request.url.path, exc_info=error)
    body = {"error": "internal_error", "message": "an unexpected fault; the request may be retried", "request_id": rid}
    return JSONResponse(body, status_code=500, headers={REQUEST_ID_HEADER: rid})


class Faults:
    """Answers an exception that escaped every handler with `fault_response`, logged once, keeping the
    connection open (Starlette's own last resort logs it again and makes the server drop the connection).
    A fault after the answer has started cannot be answered: it goes on to the server."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def watched(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, watched)
        except Exception as error:
            if started:
                raise
            await fault_response(Request(scope), error)(scope, receive, send)
