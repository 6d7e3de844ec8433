"""Reading request parameters from a query string, a form or a JSON body, with decimals kept exact.

Bodies are read through `tracklane.web.limits.read_body`: bounded while they are read (413 past the limit)."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

from starlette.requests import Request

from tracklane.domain.errors import InvalidParameter
from tracklane.domain.ids import parse_id
from tracklane.web.limits import read_body


async def json_object(request: Request) -> dict[str, Any]:
    """The body as a JSON object; numbers with a fraction become Decimal, never float."""
    raw = await read_body(request)
    try:
        value = json.loads(raw or b"null", parse_float=Decimal)
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise InvalidParameter("body", "is not valid JSON (or is nested too deep)") from None
    if not isinstance(value, dict):
        raise InvalidParameter("body", "must be a JSON object")
    return value


async def all_params(request: Request) -> dict[str, Any]:
    """Query parameters, overlaid by a form or JSON body for POST."""
    params: dict[str, Any] = dict(request.query_params)
    if request.method != "POST":
        return params
    content_type = request.headers.get("content-type", "")
    if "application/json" in content_type:
        params.update(await json_object(request))
    elif "form" in content_type:
        await read_body(request)  # bounded; the form is parsed from the bytes read
        form = await request.form()
        params.update({k: v for k, v in form.items() if isinstance(v, str)})
    elif await read_body(request):
        try:
            params.update(await json_object(request))
        except InvalidParameter:
            raise InvalidParameter("body", "send a form, JSON object or query string") from None
    return params


def positive_int(raw: object, field: str) -> int:
    """An id from a parameter: ASCII digits (or a JSON integer), 1 to 2^63 - 1; else an error naming `field`."""
    return parse_id(raw, field)
