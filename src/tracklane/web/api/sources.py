"""Routes of Segment sources (admin only for now): create (answers the write key and webhook secret), list,
read, change name, settings or advertiser, and the messages a source received with their outcomes."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Response

from tracklane.resources.customers import SegmentMessageView, segment_message_view
from tracklane.resources.sources import SourceCreate, SourceUpdate, SourceView, source_view
from tracklane.services.ports import Page
from tracklane.web.api.auth import Admin, Services
from tracklane.web.api.contract import body, documented, encoded, listing
from tracklane.web.api.listing import PathId, listed, page, with_filters

router = APIRouter()
Paging = Annotated[Page, Depends(page)]

SourceList = listing(SourceView, "SourceList")
SegmentMessageList = listing(SegmentMessageView, "SegmentMessageList")


@router.post(
    "/sources",
    status_code=201,
    tags=["sources"],
    openapi_extra=documented(
        body=SourceCreate,
        responses={201: SourceView},
        errors=[409],
        example={"name": "Web shop", "advertiser_id": 1, "preset": "default"},
    ),
)
async def create_source(
    _: Admin, payload: Annotated[SourceCreate, Depends(body(SourceCreate))], services: Services
) -> Response:
    """A Segment-compatible input of one advertiser; `preset` is default, everflow, impact or tractionboard."""
    return encoded(source_view(await services.sources.create(payload)), 201)


@router.get("/sources", tags=["sources"], openapi_extra=documented(responses={200: SourceList}))
async def list_sources(services: Services, _: Admin, paging: Paging) -> Response:
    items = await services.sources.list(paging)
    return encoded(listed(items, [source_view(s) for s in items], paging.limit))


@router.get("/sources/{source_id}", tags=["sources"], openapi_extra=documented(responses={200: SourceView}))
async def get_source(source_id: PathId, services: Services, _: Admin) -> Response:
    return encoded(source_view(await services.sources.get(source_id)))


@router.patch(
    "/sources/{source_id}",
    tags=["sources"],
    openapi_extra=documented(body=SourceUpdate, responses={200: SourceView}, example={"advertiser_id": 1}),
)
async def update_source(
    source_id: PathId, _: Admin, payload: Annotated[SourceUpdate, Depends(body(SourceUpdate))], services: Services
) -> Response:
    return encoded(source_view(await services.sources.update(source_id, payload)))


@router.get(
    "/sources/{source_id}/messages", tags=["sources"], openapi_extra=documented(responses={200: SegmentMessageList})
)
async def list_messages(
    source_id: PathId,
    services: Services,
    _: Admin,
    paging: Paging,
    message_id: Annotated[str | None, Query()] = None,
    type: Annotated[str | None, Query()] = None,
    outcome: Annotated[str | None, Query()] = None,
) -> Response:
    """Stored messages, newest first: corrected timestamp, outcome, conversion, customer and mapping."""
    await services.sources.get(source_id)
    filtered = with_filters(paging, source_id=source_id, message_id=message_id, type=type, outcome=outcome)
    items = await services.customers.messages(filtered)
    return encoded(listed(items, [segment_message_view(m) for m in items], paging.limit))
