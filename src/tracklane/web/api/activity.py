"""Routes over what traffic did: clicks and conversions (list, status changes with reason, the import of a
CSV file of offline conversions); the report is `tracklane.web.api.reports`.

Each answer is the caller's role's view (`tracklane.resources.clicks`, `.conversions`). A click or
conversion of another tenant is a 404 on every verb, like one that does not exist; a list filter naming
another tenant (`advertiser_id=` of another advertiser, `partner_id=` of another partner) is a 403.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query, Request, Response
from starlette.datastructures import UploadFile
from starlette.formparsers import MultiPartException

from tracklane.domain.conversion_import import MAX_FILE_BYTES, MAX_ROWS
from tracklane.domain.errors import Forbidden, InvalidParameter
from tracklane.domain.model import ConversionStatus, Role
from tracklane.domain.tenancy import scope_of
from tracklane.resources.clicks import ClickAdvertiserView, ClickPartnerView, ClickView
from tracklane.resources.conversion_imports import ConversionImportView
from tracklane.resources.conversions import (
    ConversionAdvertiserView,
    ConversionChange,
    ConversionPartnerView,
    ConversionView,
)
from tracklane.services.ports import Page
from tracklane.web.api.auth import Caller, Reviewer, Services
from tracklane.web.api.contract import body, documented, encoded, listing
from tracklane.web.api.listing import PathId, QueryId, listed, page, with_filters
from tracklane.web.limits import read_body

router = APIRouter()
Paging = Annotated[Page, Depends(page)]
TransactionId = Annotated[str, Path(min_length=1, max_length=64, description="the click's transaction_id")]
Text = Annotated[str | None, Query(max_length=255)]

ClickList = listing(ClickView, "ClickList")
ClickAdvertiserList = listing(ClickAdvertiserView, "ClickAdvertiserList")
ClickPartnerList = listing(ClickPartnerView, "ClickPartnerList")
ConversionList = listing(ConversionView, "ConversionList")
ConversionAdvertiserList = listing(ConversionAdvertiserView, "ConversionAdvertiserList")
ConversionPartnerList = listing(ConversionPartnerView, "ConversionPartnerList")


@router.get(
    "/clicks",
    tags=["clicks"],
    openapi_extra=documented(responses={200: ClickList | ClickAdvertiserList | ClickPartnerList}),
)
async def list_clicks(
    services: Services,
    scope: Caller,
    paging: Paging,
    offer_id: QueryId = None,
    partner_id: QueryId = None,
    advertiser_id: QueryId = None,
    verdict: Annotated[Literal["accepted", "rejected"] | None, Query()] = None,
    reject_reason: Text = None,
    source_id: Text = None,
    sub1: Text = None,
) -> Response:
    """Raw clicks, newest first, filtered by offer, partner, advertiser, verdict, reason, source or sub1."""
    filters = {"offer_id": offer_id, "partner_id": partner_id, "advertiser_id": advertiser_id, "verdict": verdict,
               "reject_reason": reject_reason, "source_id": source_id, "sub1": sub1}  # fmt: skip
    views = await services.reports.clicks(scope, with_filters(paging, **filters))
    return encoded(listed(views, views, paging.limit))


@router.get(
    "/clicks/{transaction_id}",
    tags=["clicks"],
    openapi_extra=documented(responses={200: ClickView | ClickAdvertiserView | ClickPartnerView}),
)
async def get_click(transaction_id: TransactionId, services: Services, scope: Caller) -> Response:
    return encoded(await services.reports.click(scope, transaction_id))


@router.get(
    "/conversions",
    tags=["conversions"],
    openapi_extra=documented(responses={200: ConversionList | ConversionAdvertiserList | ConversionPartnerList}),
)
async def list_conversions(
    services: Services,
    scope: Caller,
    paging: Paging,
    transaction_id: Text = None,
    offer_id: QueryId = None,
    partner_id: QueryId = None,
    advertiser_id: QueryId = None,
    event_id: QueryId = None,
    status: Annotated[ConversionStatus | None, Query()] = None,
    order_id: Text = None,
) -> Response:
    """Conversions and events, newest first, each with its trace (as the caller's role may see it)."""
    filters = {
        "transaction_id": transaction_id,
        "offer_id": offer_id,
        "partner_id": partner_id,
        "advertiser_id": advertiser_id,
        "event_id": event_id,
        "status": status,
        "order_id": order_id,
    }
    views = await services.conversions.list(scope, with_filters(paging, **filters))
    return encoded(listed(views, views, paging.limit))


@router.get(
    "/conversions/{conversion_id}",
    tags=["conversions"],
    openapi_extra=documented(responses={200: ConversionView | ConversionAdvertiserView | ConversionPartnerView}),
)
async def get_conversion(conversion_id: PathId, services: Services, scope: Caller) -> Response:
    return encoded(await services.conversions.get(scope, conversion_id))


@router.patch(
    "/conversions/{conversion_id}",
    tags=["conversions"],
    openapi_extra=documented(
        body=ConversionChange,
        responses={200: ConversionView | ConversionAdvertiserView},
        example={"refund": "10.00", "reason": "ITEM_RETURNED: one of three items sent back"},
    ),
)
async def change_conversion(
    conversion_id: PathId,
    key: Reviewer,
    services: Services,
    payload: Annotated[ConversionChange, Depends(body(ConversionChange))],
) -> Response:
    """Approve, hold or reject a conversion, adjust its money (sale amount, partial refund, revenue, or,
    with an admin key, payout), or both in one write (the admin, or the advertiser it belongs to; a partner
    key is refused). Each change, who made it and why, is appended to the trace. Rejecting and adjusting need
    a reason."""
    actor = f"api key #{key.id} ({key.role.value})"
    return encoded(await services.conversions.change(scope_of(key), conversion_id, payload, actor))


#: The media types a CSV file is sent as (browsers and spreadsheets label one in any of these).
CSV_TYPES = frozenset({"text/csv", "application/csv", "text/plain", "application/vnd.ms-excel",
                       "application/octet-stream"})  # fmt: skip
IMPORT_EXAMPLE = "transaction_id,event_name,amount,order_id\n3f0c9d1e2b4a5c6d7e8f90a1b2c3d4e5,,120.00,A1\n"


def _import_body() -> dict[str, Any]:
    """The request body of an import in the document: the CSV file itself, or a multipart upload of it."""
    csv = {"schema": {"type": "string", "description": f"a CSV file: at most {MAX_ROWS} data rows and "
                      f"{MAX_FILE_BYTES} bytes"}, "example": IMPORT_EXAMPLE}  # fmt: skip
    upload = {"schema": {"type": "object", "required": ["file"], "properties": {
        "file": {"type": "string", "contentMediaType": "text/csv"}}}}  # fmt: skip
    return {"required": True, "content": {"text/csv": csv, "multipart/form-data": upload}}


@router.post(
    "/conversions/import",
    tags=["conversions"],
    openapi_extra={**documented(responses={200: ConversionImportView}), "requestBody": _import_body()},
)
async def import_conversions(
    request: Request,
    services: Services,
    scope: Caller,
    dry_run: Annotated[bool, Query(description="report what the import would do, and write nothing")] = False,
) -> Response:
    """Import offline conversions and events from a CSV file (an admin key: any click; an advertiser key:
    its own offers' clicks). Each data row is attributed like an API conversion; the good rows are
    recorded, the bad ones reported row by row (`errors`). With `dry_run=true` nothing at all is written
    and the answer is what the import would do. A file that is too large, not UTF-8 CSV, without a header
    row or `transaction_id` column, or with an unknown column is a 400 naming the problem."""
    if scope.role is Role.PARTNER:
        raise Forbidden("a partner key cannot import conversions")
    data = await _csv_file(request)
    return encoded(await services.conversions.import_file(scope, data, dry_run=dry_run))


async def _csv_file(request: Request) -> bytes:
    """The CSV file of the request: its body (`text/csv`), or the `file` field of a multipart upload."""
    kind = request.headers.get("content-type", "").partition(";")[0].strip().lower()
    if kind == "multipart/form-data":
        await read_body(request)  # bounded like every body; the form is parsed from what was read
        try:
            async with request.form(max_files=1, max_fields=20) as form:
                upload = form.get("file")
                if not isinstance(upload, UploadFile):
                    raise InvalidParameter("file", "a multipart upload needs a file field holding the CSV file")
                return await upload.read()
        except MultiPartException as error:
            raise InvalidParameter("file", f"the multipart upload cannot be read: {error.message}") from None
    if kind not in CSV_TYPES:
        raise InvalidParameter("content-type", f"must be text/csv (or multipart/form-data with a file field), "
                                               f"not {kind or 'missing'}")  # fmt: skip
    return await read_body(request)
