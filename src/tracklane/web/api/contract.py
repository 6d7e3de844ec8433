"""The API's contract from the resource types: request bodies decoded from bytes, answers encoded by role,
and the OpenAPI 3.1 document generated from those same types.

A route declares `openapi_extra=documented(body=..., responses={...})`; the request body reaches the
handler through `Annotated[T, Depends(body(T))]`, decoded by `tracklane.resources.decoding` (exact
decimals, errors naming the field). Handlers answer with `encoded(view)`. `install` completes the
document: the schema components of every declared type, the error shape, the bearer security scheme,
and the error statuses each operation can answer.
"""

from __future__ import annotations

import types
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, TypeVar, Union, get_args, get_origin

import msgspec
from fastapi import FastAPI, Request
from fastapi.openapi.utils import get_openapi
from starlette.responses import Response

from tracklane.domain.errors import InvalidParameter
from tracklane.resources.decoding import decode
from tracklane.resources.fields import Amount, View
from tracklane.web.limits import read_body

T = TypeVar("T")

REF = "#/components/schemas/{name}"
PUBLIC_OPERATIONS = frozenset({("post", "/api/v1/partner-signups"), ("post", "/api/v1/advertiser-signups")})

_declared: list[Any] = []
_documented_bodies: dict[int, tuple[Any, Any]] = {}


class Error(View, frozen=True):
    """Every error answer: a code, a sentence, the field at fault (invalid input, conflicts) and, for a
    fault, the request id it was logged under."""

    error: str
    message: str
    field: str | None = None
    request_id: str | None = None


_ERRORS = {
    400: "Invalid input: `field` names the first bad field",
    401: "No valid API key: send `Authorization: Bearer <key>`",
    403: "This key's role may not do this",
    404: "No such resource, or one this key may not see (the same answer)",
    409: "The change conflicts with existing state",
    413: "The body is larger than the server takes (`TRACKLANE_MAX_BODY_BYTES`)",
    415: "The body is compressed (`Content-Encoding`); send it uncompressed",
    429: "Too many requests from this address or with this key; retry after `Retry-After` seconds",
    500: "An unexpected fault; the request may be retried",
    503: "Storage is unavailable or busy; the request was not acknowledged: retry after `Retry-After` seconds",
}


def body(type_: type[T]) -> Callable[[Request], Awaitable[T]]:
    """A dependency that decodes the request body as `type_` (read bounded: 413 past the limit)."""

    async def decoded(request: Request) -> T:
        return decode(await read_body(request), type_)

    decoded.__name__ = f"body_{getattr(type_, '__name__', 'value')}"
    decoded.resource_type = type_  # type: ignore[attr-defined]
    return decoded


async def no_nul_in_parameters(request: Request) -> None:
    """A path or query parameter holding a NUL character is refused naming it (PostgreSQL cannot compare or
    store NUL in text, so both databases refuse it alike)."""
    parameters = [*request.path_params.items(), *request.query_params.multi_items()]
    for name, value in parameters:
        if "\x00" in str(value) or "\x00" in name:
            raise InvalidParameter(name.replace("\x00", ""), "must not contain NUL characters")


def optional_body(type_: type[T]) -> Callable[[Request], Awaitable[T]]:
    """Like `body`, but an empty body is the type's defaults (`{}`)."""
    strict = body(type_)

    async def decoded(request: Request) -> T:
        if not await read_body(request):
            return decode(b"{}", type_)
        return await strict(request)

    decoded.resource_type = type_  # type: ignore[attr-defined]
    return decoded


def encoded(value: object, status_code: int = 200) -> Response:
    """A view (or a structure of views) as the JSON answer."""
    return Response(msgspec.json.encode(value), status_code=status_code, media_type="application/json")


def listing(item: Any, name: str) -> Any:
    """The list shape `{"data": [...], "next_cursor"}` of `item` views, as a named type for the document."""
    return msgspec.defstruct(name, [("data", list[item]), ("next_cursor", str | None)], bases=(View,),
                             kw_only=True)  # fmt: skip


def documented(
    *, body: Any = None, responses: Mapping[int, Any], errors: Sequence[int] = (), example: Any = None
) -> dict[str, Any]:
    """`openapi_extra` for an operation: its request body type, its answers by status, extra error statuses.

    `example`, when given, is a request body shown in the document (and decoded by the tests through `body`).
    """
    extra: dict[str, Any] = {"responses": {}}
    if body is not None:
        _declared.append(body)
        media: dict[str, Any] = {"schema": _ref(body)}
        if example is not None:
            media["example"] = example
        extra["requestBody"] = {"required": True, "content": {"application/json": media}}
    for status, answer in responses.items():
        if answer is None:
            extra["responses"][str(status)] = {"description": "No content"}
            continue
        members = _members(answer)
        _declared.extend(members)
        schema = _ref(answer) if len(members) == 1 else {"anyOf": [_ref(m) for m in members]}
        extra["responses"][str(status)] = {
            "description": "Success", "content": {"application/json": {"schema": schema}}
        }  # fmt: skip
    for status in errors:
        extra["responses"][str(status)] = _error_response(status)
    if body is not None:
        _documented_bodies[id(extra)] = (body, example)
    return extra


def documented_body(openapi_extra: object) -> tuple[Any, Any] | None:
    """The body type and example an operation's `openapi_extra` documents (for the tests that check
    that the handler decodes exactly that type, and that the example is a valid body)."""
    return _documented_bodies.get(id(openapi_extra))


def _members(type_: Any) -> list[Any]:
    """The views an answer may be: each member of a union of role views (msgspec documents a union of
    untagged structs only member by member), else the one type."""
    if isinstance(type_, types.UnionType) or get_origin(type_) is Union:
        return list(get_args(type_))
    return [type_]


def _ref(type_: Any) -> dict[str, Any]:
    (schema,), _ = msgspec.json.schema_components([type_], ref_template=REF, schema_hook=_schema_hook)
    return schema


def _schema_hook(type_: type) -> dict[str, Any]:
    """The schema of the resource field types msgspec does not know: `Amount`."""
    if type_ is Amount:
        return dict(Amount.SCHEMA)
    raise NotImplementedError(f"no schema for {type_!r}")


def _error_response(status: int) -> dict[str, Any]:
    schema = {"$ref": REF.format(name="Error")}
    return {"description": _ERRORS[status], "content": {"application/json": {"schema": schema}}}


def install(app: FastAPI) -> None:
    """Generate the document once, from the routes and the declared types."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = _document(app)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


def _document(app: FastAPI) -> dict[str, Any]:
    document = get_openapi(title=app.title, version=app.version, description=app.description,
                           routes=app.routes, openapi_version="3.1.0")  # fmt: skip
    _, components = msgspec.json.schema_components([Error, *_declared], ref_template=REF, schema_hook=_schema_hook)
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    for generated in ("HTTPValidationError", "ValidationError"):
        schemas.pop(generated, None)
    schemas.update(components)
    document["components"]["securitySchemes"] = {"bearer": {"type": "http", "scheme": "bearer"}}
    for path, item in document.get("paths", {}).items():
        for method, operation in item.items():
            _complete(operation, method, path)
    return document


def _complete(operation: dict[str, Any], method: str, path: str) -> None:
    responses = operation.setdefault("responses", {})
    responses.pop("422", None)
    default = responses.get("200", {})
    if not default.get("content", {}).get("application/json", {}).get("schema") and len(responses) > 1:
        responses.pop("200", None)
    statuses = [400, 429, 503, 500]
    if method in ("post", "put", "patch", "delete"):
        statuses += [413, 415]
    if (method, path) not in PUBLIC_OPERATIONS:
        operation["security"] = [{"bearer": []}]
        statuses += [401, 403]
    if "{" in path:
        statuses.append(404)
    for status in statuses:
        responses.setdefault(str(status), _error_response(status))
