"""Routes of Segment sources: create (answers the write key and webhook secret), list, read, change
settings, and the messages a source received with their outcomes."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request

from tracklane.services.ports import Page
from tracklane.web.api import representations as rep
from tracklane.web.api import schemas
from tracklane.web.api.auth import Admin, Services
from tracklane.web.api.listing import listed, page, with_filters
from tracklane.web.params import json_object

router = APIRouter()
Paging = Annotated[Page, Depends(page)]


@router.post("/sources", status_code=201, tags=["sources"], openapi_extra=schemas.body_doc(schemas.SourceIn))
async def create_source(request: Request, services: Services, _: Admin) -> dict[str, Any]:
    """A Segment-compatible input; `preset` is default, everflow, impact or tractionboard."""
    return rep.source(await services.sources.create(await json_object(request)))


@router.get("/sources", tags=["sources"])
async def list_sources(services: Services, _: Admin, paging: Paging) -> dict[str, Any]:
    items = await services.sources.list(paging)
    return listed(items, [rep.source(s) for s in items], paging.limit)


@router.get("/sources/{source_id}", tags=["sources"])
async def get_source(source_id: int, services: Services, _: Admin) -> dict[str, Any]:
    return rep.source(await services.sources.get(source_id))


@router.patch("/sources/{source_id}", tags=["sources"], openapi_extra=schemas.body_doc(schemas.SourceUpdate))
async def update_source(source_id: int, request: Request, services: Services, _: Admin) -> dict[str, Any]:
    return rep.source(await services.sources.update(source_id, await json_object(request)))


@router.get("/sources/{source_id}/messages", tags=["sources"])
async def list_messages(
    source_id: int, services: Services, _: Admin, paging: Paging,
    message_id: Annotated[str | None, Query()] = None,
    type: Annotated[str | None, Query()] = None,
    outcome: Annotated[str | None, Query()] = None,
) -> dict[str, Any]:
    """Stored messages, newest first: corrected timestamp, outcome, conversion, customer and mapping."""
    await services.sources.get(source_id)
    filtered = with_filters(paging, source_id=source_id, message_id=message_id, type=type, outcome=outcome)
    items = await services.customers.messages(filtered)
    next_cursor = str(items[-1]["id"]) if len(items) == paging.limit and items else None
    return {"data": [rep.segment_message(m) for m in items], "next_cursor": next_cursor}
