"""Routes of API keys (admin only): create (the key is shown once), list, revoke."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Response

from tracklane.resources.api_keys import ApiKeyCreate, ApiKeyIssued, ApiKeyView, api_key_issued, api_key_view
from tracklane.services.ports import Page
from tracklane.web.api.auth import Admin, Services
from tracklane.web.api.contract import body, documented, encoded, listing
from tracklane.web.api.listing import PathId, listed, page

router = APIRouter()

ApiKeyList = listing(ApiKeyView, "ApiKeyList")


@router.post(
    "/api-keys",
    status_code=201,
    tags=["api keys"],
    openapi_extra=documented(
        body=ApiKeyCreate, responses={201: ApiKeyIssued}, example={"role": "advertiser", "advertiser_id": 1}
    ),
)
async def create_api_key(
    services: Services, _: Admin, payload: Annotated[ApiKeyCreate, Depends(body(ApiKeyCreate))]
) -> Response:
    key, secret = await services.api_keys.create(payload)
    return encoded(api_key_issued(key, secret), 201)


@router.get("/api-keys", tags=["api keys"], openapi_extra=documented(responses={200: ApiKeyList}))
async def list_api_keys(services: Services, _: Admin, paging: Annotated[Page, Depends(page)]) -> Response:
    items = await services.api_keys.list(paging)
    return encoded(listed(items, [api_key_view(k) for k in items], paging.limit))


@router.delete(
    "/api-keys/{key_id}", status_code=204, tags=["api keys"], openapi_extra=documented(responses={204: None})
)
async def revoke_api_key(key_id: PathId, services: Services, _: Admin) -> Response:
    await services.api_keys.revoke(key_id)
    return Response(status_code=204)
