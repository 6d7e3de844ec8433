"""Routes of users (admin only): create, list, read, change, and issue one-time links (an invitation, a password
reset) that the admin copies to the person; the console's `/ui/accept` page takes them."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, Response

from tracklane.domain.model import LinkKind, Role, UserStatus
from tracklane.resources.users import OneTimeLinkView, UserCreate, UserUpdate, UserView, one_time_link_view, user_view
from tracklane.services.ports import Page
from tracklane.web.api.auth import Admin, Services
from tracklane.web.api.contract import body, documented, encoded, listing
from tracklane.web.api.listing import PathId, QueryId, listed, page, with_filters

router = APIRouter()

UserList = listing(UserView, "UserList")


@router.post(
    "/users",
    status_code=201,
    tags=["users"],
    openapi_extra=documented(
        body=UserCreate,
        responses={201: UserView},
        errors=[409],
        example={"email": "ada@partner.example", "name": "Ada", "role": "partner", "partner_id": 1},
    ),
)
async def create_user(
    _: Admin, payload: Annotated[UserCreate, Depends(body(UserCreate))], services: Services
) -> Response:
    """Without a `password` the user is `invited`: issue its invitation link next."""
    return encoded(user_view(await services.users.create(payload)), 201)


@router.get("/users", tags=["users"], openapi_extra=documented(responses={200: UserList}))
async def list_users(
    services: Services,
    _: Admin,
    paging: Annotated[Page, Depends(page)],
    role: Annotated[Role | None, Query()] = None,
    status: Annotated[UserStatus | None, Query()] = None,
    advertiser_id: QueryId = None,
    partner_id: QueryId = None,
) -> Response:
    filters = with_filters(paging, role=role, status=status, advertiser_id=advertiser_id, partner_id=partner_id)
    items = await services.users.list(filters)
    return encoded(listed(items, [user_view(u) for u in items], paging.limit))


@router.get("/users/{user_id}", tags=["users"], openapi_extra=documented(responses={200: UserView}))
async def get_user(user_id: PathId, services: Services, _: Admin) -> Response:
    return encoded(user_view(await services.users.get(user_id)))


@router.patch(
    "/users/{user_id}",
    tags=["users"],
    openapi_extra=documented(body=UserUpdate, responses={200: UserView}, errors=[409], example={"status": "disabled"}),
)
async def update_user(
    user_id: PathId, _: Admin, payload: Annotated[UserUpdate, Depends(body(UserUpdate))], services: Services
) -> Response:
    """`disabled` ends the user's sessions at once."""
    return encoded(user_view(await services.users.update(user_id, payload)))


@router.post(
    "/users/{user_id}/invitation",
    status_code=201,
    tags=["users"],
    openapi_extra=documented(responses={201: OneTimeLinkView}, errors=[409]),
)
async def invite_user(user_id: PathId, request: Request, services: Services, _: Admin) -> Response:
    """A link (valid 72 hours) where an invited user sets its first password; older invitations stop working."""
    token = await services.users.one_time_link(user_id, LinkKind.INVITATION)
    return encoded(one_time_link_view(_base_url(request, services), token), 201)


@router.post(
    "/users/{user_id}/password-reset",
    status_code=201,
    tags=["users"],
    openapi_extra=documented(responses={201: OneTimeLinkView}, errors=[409]),
)
async def reset_password(user_id: PathId, request: Request, services: Services, _: Admin) -> Response:
    """A link (valid 2 hours) where the user sets a new password; older reset links stop working."""
    token = await services.users.one_time_link(user_id, LinkKind.PASSWORD_RESET)
    return encoded(one_time_link_view(_base_url(request, services), token), 201)


def _base_url(request: Request, services: Services) -> str:
    """Where people reach this server: `TRACKLANE_PUBLIC_URL`, else the address this request came to."""
    return services.settings.public_url or str(request.base_url)
