"""Routes of API keys: create (the key is shown once), list, revoke."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response

from tracklane.services.ports import Page
from tracklane.web.api import representations as rep
from tracklane.web.api import schemas
from tracklane.web.api.auth import Admin, Services
from tracklane.web.api.listing import listed, page
from tracklane.web.params import json_object

router = APIRouter()


@router.post("/api-keys", status_code=201, tags=["api keys"], openapi_extra=schemas.body_doc(schemas.ApiKeyIn))
async def create_api_key(request: Request, services: Services, _: Admin) -> dict[str, Any]:
    body = await json_object(request)
    key, secret = await services.api_keys.create(body.get("role"), body.get("advertiser_id"), body.get("partner_id"))
    return {**rep.api_key(key), "key": secret}


@router.get("/api-keys", tags=["api keys"])
async def list_api_keys(services: Services, _: Admin, paging: Annotated[Page, Depends(page)]) -> dict[str, Any]:
    items = await services.api_keys.list(paging)
    return listed(items, [rep.api_key(k) for k in items], paging.limit)


@router.delete("/api-keys/{key_id}", status_code=204, tags=["api keys"])
async def revoke_api_key(key_id: int, services: Services, _: Admin) -> Response:
    await services.api_keys.revoke(key_id)
    return Response(status_code=204)
