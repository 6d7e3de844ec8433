"""The performance report route, `GET /reports`: as JSON (the default), CSV or JSON Lines.

The format is the `format` parameter, else the `Accept` header (`text/csv`, `application/x-ndjson`), else JSON.
CSV and JSON Lines are downloads (`Content-Disposition: attachment`) streamed line by line, every row of the
report; their lines are written by `tracklane.resources.reports` (`csv_lines`, `jsonl_lines`), as the console's
downloads are. Every other parameter is read by `report_query` (`PARAMETERS`, which this document lists too):
an unknown, repeated or malformed one is a 400 naming it. A filter naming another tenant is a 403.
"""

from __future__ import annotations

from typing import Any, Final

from fastapi import APIRouter
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from tracklane.domain.errors import InvalidParameter
from tracklane.domain.ids import MAX_ID
from tracklane.domain.model import ConversionStatus, Origin
from tracklane.resources.reports import (
    DATE_BASES,
    ID_FILTERS,
    MAX_TEXT,
    PARAMETERS,
    ReportAdvertiserView,
    ReportPartnerView,
    ReportView,
    csv_lines,
    jsonl_lines,
    report_query,
)
from tracklane.web.api.auth import Caller, Services
from tracklane.web.api.contract import documented, encoded

router = APIRouter()

#: Each format's media type; `Accept` chooses among them when no `format` is given.
FORMATS: Final = {"json": "application/json", "csv": "text/csv", "jsonl": "application/x-ndjson"}
_ACCEPTED: Final = {media: name for name, media in FORMATS.items()}


def _schema(name: str) -> dict[str, Any]:
    if name in ID_FILTERS:
        return {"type": "integer", "minimum": 1, "maximum": MAX_ID}
    choices = {"date_basis": DATE_BASES, "status": tuple(ConversionStatus), "origin": tuple(Origin)}
    if name in choices:
        return {"type": "string", "enum": [str(choice) for choice in choices[name]]}
    return {"type": "string", "maxLength": MAX_TEXT}


def _documented() -> dict[str, Any]:
    """The answer's three formats and every query parameter."""
    extra = documented(responses={200: ReportView | ReportAdvertiserView | ReportPartnerView})
    extra["responses"]["200"]["content"].update(
        {media: {"schema": {"type": "string"}} for name, media in FORMATS.items() if name != "json"}
    )
    extra["parameters"] = [
        {"name": name, "in": "query", "required": False, "description": description, "schema": _schema(name)}
        for name, description in PARAMETERS.items()
    ] + [
        {"name": "format", "in": "query", "required": False, "schema": {"type": "string", "enum": list(FORMATS)},
         "description": "json (the default), csv or jsonl; without it, the `Accept` header chooses"}
    ]  # fmt: skip
    return extra


@router.get("/reports", tags=["reports"], openapi_extra=_documented())
async def report(request: Request, services: Services, scope: Caller) -> Response:
    """Clicks (gross, unique, billable, bot, rejected), conversions, events, the money of the caller's side and its
    ratios (CVR, EPC, RPC, AOV, margin), per group and currency, and the totals of each currency."""
    params = _parameters(request)
    chosen = _format(params.pop("format", ""), request.headers.get("accept", ""))
    query = report_query(params)
    view = await services.reports.run(scope, query)
    if chosen == "json":
        return encoded(view)
    lines = csv_lines(view, query.group_by) if chosen == "csv" else jsonl_lines(view)
    headers = {"Content-Disposition": f'attachment; filename="tracklane-report.{chosen}"', "Cache-Control": "no-store"}
    return StreamingResponse(lines, media_type=FORMATS[chosen], headers=headers)


def _parameters(request: Request) -> dict[str, str]:
    """The query string's parameters, each given once."""
    params: dict[str, str] = {}
    for name, value in request.query_params.multi_items():
        if name in params:
            raise InvalidParameter(name[:100], "is given more than once")
        params[name] = value
    return params


def _format(asked: str, accept: str) -> str:
    """The `format` asked for, else the most preferred of `Accept` (the first of equal preference), else JSON."""
    if asked:
        if asked not in FORMATS:
            raise InvalidParameter("format", f"must be one of {', '.join(FORMATS)}")
        return asked
    chosen, preference = "json", 0.0
    for part in accept.split(","):
        media, *options = (piece.strip() for piece in part.split(";"))
        quality = next((option[2:] for option in options if option.startswith("q=")), "1")
        try:
            weight = float(quality)
        except ValueError:
            continue
        if media.lower() in _ACCEPTED and weight > preference:
            chosen, preference = _ACCEPTED[media.lower()], weight
    return chosen
