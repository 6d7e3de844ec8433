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


async def caller(key: Annotated[ApiKey, Depends(api_key)]) -> Scope:
    return scope_of(key)


Services = Annotated[registry.Services, Depends(services)]
Admin = Annotated[ApiKey, Depends(admin)]
Caller = Annotated[Scope, Depends(caller)]
Key = Annotated[ApiKey, Depends(api_key)]
"""Any valid key, as the tenant scope its reads are narrowed to (see `tracklane.domain.tenancy`)."""
