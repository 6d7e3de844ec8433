"""Bearer API keys: who is calling, and whether their role may do this."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from tracklane.domain.errors import Forbidden, Unauthorized
from tracklane.domain.model import ApiKey, Role
from tracklane.domain.tenancy import Scope, scope_of
from tracklane.services import registry


def services(request: Request) -> registry.Services:
    """The services the app was built with (see `tracklane.web.app.build_app`)."""
    value: registry.Services = request.app.state.services
    return value


async def api_key(request: Request) -> ApiKey:
    header = request.headers.get("authorization", "")
    scheme, _, key = header.partition(" ")
    if scheme.lower() != "bearer" or not key.strip():
        raise Unauthorized()
    found = await services(request).api_keys.authenticate(key.strip())
    if found is None:
        raise Unauthorized("the API key is unknown or revoked")
    return found


async def admin(key: Annotated[ApiKey, Depends(api_key)]) -> ApiKey:
    if key.role is not Role.ADMIN:
        raise Forbidden(f"this needs an admin key; this key's role is {key.role.value}")
    return key


async def reviewer(key: Annotated[ApiKey, Depends(api_key)]) -> ApiKey:
    """A key that may review conversions: the admin's, or an advertiser's (for its own conversions)."""
    if key.role is Role.PARTNER:
        raise Forbidden("a partner key cannot change a conversion's status")
    return key


async def caller(key: Annotated[ApiKey, Depends(api_key)]) -> Scope:
    return scope_of(key)


async def partner_side(scope: Annotated[Scope, Depends(caller)]) -> Scope:
    """A key of the partner side: the admin's, or a partner's (partner postbacks belong to partners)."""
    if scope.role is Role.ADVERTISER:
        raise Forbidden("partner postbacks are managed by an admin or by the partner itself")
    return scope


Services = Annotated[registry.Services, Depends(services)]
Admin = Annotated[ApiKey, Depends(admin)]
Caller = Annotated[Scope, Depends(caller)]
"""Any valid key, as the tenant scope its reads are narrowed to (see `tracklane.domain.tenancy`)."""
PartnerSide = Annotated[Scope, Depends(partner_side)]
Key = Annotated[ApiKey, Depends(api_key)]
Reviewer = Annotated[ApiKey, Depends(reviewer)]
