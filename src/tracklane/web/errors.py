"""The only mapping from domain errors to HTTP: status codes and the `{"error", "message"}` body."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from sqlalchemy.exc import SQLAlchemyError
from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse, Response

from tracklane.domain.errors import (
    Conflict,
    Forbidden,
    InvalidParameter,
    NotFound,
    PostbackRefused,
    TracklaneError,
)

log = logging.getLogger("tracklane.web")

POSTBACK_STATUS = {
    "invalid_token": 403,
    "unknown_transaction": 404,
    "unknown_event": 404,
    "no_prior_conversion": 409,
    "outside_window": 422,
    "invalid_parameter": 400,
    "busy": 503,
}
_STATUS = {InvalidParameter: 400, NotFound: 404, Conflict: 409, Forbidden: 403}


class Unauthorized(TracklaneError):
    """A valid API key is required: send `Authorization: Bearer <key>`."""

    code = "unauthorized"


def status_of(error: TracklaneError) -> int:
    if isinstance(error, PostbackRefused):
        return POSTBACK_STATUS.get(error.code, 400)
    if isinstance(error, Unauthorized):
        return 401
    return next((status for kind, status in _STATUS.items() if isinstance(error, kind)), 400)


def error_body(error: TracklaneError) -> dict[str, str]:
    body = {"error": error.code, "message": error.message}
    if isinstance(error, InvalidParameter):
        body["field"] = error.field
    return body


def error_response(error: TracklaneError, headers: dict[str, str] | None = None) -> JSONResponse:
    response_headers = dict(headers or {})
    if isinstance(error, Unauthorized):
        response_headers["WWW-Authenticate"] = "Bearer"
    return JSONResponse(error_body(error), status_code=status_of(error), headers=response_headers)


def install(app: FastAPI) -> None:
    """Register the handlers that give every error the same JSON shape."""

    async def domain_error(_request: Request, error: Exception) -> Response:
        assert isinstance(error, TracklaneError)
        return error_response(error)

    async def validation_error(_request: Request, error: Exception) -> Response:
        assert isinstance(error, RequestValidationError)
        first = error.errors()[0] if error.errors() else {"loc": ("body",), "msg": "invalid"}
        location = [str(part) for part in first.get("loc", ()) if part not in ("body", "query", "path")]
        field = ".".join(location) or "body"
        return error_response(InvalidParameter(field, str(first.get("msg", "is invalid")).lower()))

    async def http_error(_request: Request, error: Exception) -> Response:
        assert isinstance(error, HTTPException)
        codes = {404: "not_found", 405: "method_not_allowed", 401: "unauthorized", 403: "forbidden"}
        body = {"error": codes.get(error.status_code, "error"), "message": str(error.detail)}
        return JSONResponse(body, status_code=error.status_code, headers=getattr(error, "headers", None))

    async def storage_unavailable(_request: Request, error: Exception) -> Response:
        log.error("storage unavailable: %s", error)
        body = {"error": "unavailable", "message": "storage is unavailable; nothing was recorded; retry"}
        return JSONResponse(body, status_code=503, headers={"Retry-After": "5", "Cache-Control": "no-store"})

    async def unexpected(_request: Request, error: Exception) -> Response:
        log.exception("unexpected error", exc_info=error)
        body = {"error": "internal_error", "message": "an unexpected fault; the request may be retried"}
        return JSONResponse(body, status_code=500)

    app.add_exception_handler(TracklaneError, domain_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(HTTPException, http_error)
    app.add_exception_handler(SQLAlchemyError, storage_unavailable)
    app.add_exception_handler(Exception, unexpected)
