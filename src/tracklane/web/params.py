"""Reading request parameters from a query string, a form or a JSON body, with decimals kept exact."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

from starlette.requests import Request

from tracklane.domain.errors import InvalidParameter

MAX_BODY = 64 * 1024


async def json_object(request: Request) -> dict[str, Any]:
    """The body as a JSON object; numbers with a fraction become Decimal, never float."""
    raw = await request.body()
    if len(raw) > MAX_BODY:
        raise InvalidParameter("body", f"must be at most {MAX_BODY} bytes")
    try:
        value = json.loads(raw or b"null", parse_float=Decimal)
    except (ValueError, UnicodeDecodeError):
        raise InvalidParameter("body", "is not valid JSON") from None
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
        form = await request.form()
        params.update({k: v for k, v in form.items() if isinstance(v, str)})
    elif await request.body():
        try:
            params.update(await json_object(request))
        except InvalidParameter:
            raise InvalidParameter("body", "send a form, JSON object or query string") from None
    return params


def positive_int(raw: object, field: str) -> int:
    if isinstance(raw, int) and not isinstance(raw, bool) and raw > 0:
        return raw
    if isinstance(raw, str) and raw.strip().isdigit() and 0 < int(raw.strip()) < 2**62:
        return int(raw.strip())
    raise InvalidParameter(field, "is required and must be a positive integer")
