"""Who is looking: the session cookie, the viewer it stands for, and the CSRF check of every form.

A session is a random token in an HttpOnly, SameSite=Lax cookie (Secure whenever the request came over
HTTPS or from anywhere but this machine's loopback), stored hashed by `services.users`. Every form
carries a CSRF token: for a signed-in viewer the session's own (a synchronizer token), before sign-in one
that must equal the `tl_form` cookie (double submit). A form without the right token is refused with a
403 before anything is done. Sign-in attempts are limited per address and per email.
"""

from __future__ import annotations

import hmac
import ipaddress
import secrets
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated

from fastapi import Depends
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import Response

from tracklane.domain.errors import Forbidden, NotFound, TracklaneError
from tracklane.domain.model import Role, SignedIn, User
from tracklane.domain.tenancy import Scope
from tracklane.services.registry import Services
from tracklane.web.ratelimit import Buckets

SESSION_COOKIE = "tl_session"
FORM_COOKIE = "tl_form"
NOTICE_COOKIE = "tl_notice"
VIEW_AS_COOKIE = "tl_view_as"
CSRF_FIELD = "csrf_token"
#: Sign-in attempts: a burst of 10 per address and email, then one each 30 s; 30 per address, then 1 each 5 s.
SIGN_IN_PER_EMAIL = (1 / 30, 10.0)
SIGN_IN_PER_ADDRESS = (1 / 5, 30.0)


class SignInNeeded(TracklaneError):
    """No valid session: the page answers with the sign-in page (a redirect keeping where to go next)."""


class FormRefused(Forbidden):
    """A form whose CSRF token is missing or wrong."""


@dataclass(frozen=True, slots=True)
class Viewer:
    """The signed-in person, the tenant scope every read of theirs is narrowed to, and their CSRF token.

    An admin may look at the portal of one partner or advertiser ("view as"): the scope is then that
    tenant's, `viewing_as` names it, and every form but the one that ends it is refused (read-only).
    """

    user: User
    scope: Scope
    csrf_token: str
    notice: str | None = None
    viewing_as: str | None = None

    @property
    def role(self) -> Role:
        return self.scope.role


def services_of(request: Request) -> Services:
    value: Services = request.app.state.services
    return value


async def viewer(request: Request) -> Viewer:
    """The viewer of this request's session; `SignInNeeded` without one."""
    token = request.cookies.get(SESSION_COOKIE)
    if not token:
        raise SignInNeeded("sign in first")
    signed_in = await services_of(request).users.session(token)
    if signed_in is None:
        raise SignInNeeded("the session has ended; sign in again")
    seen = viewer_of(signed_in, request.cookies.get(NOTICE_COOKIE))
    if seen.role is Role.ADMIN and (view_as := _view_as(request.cookies.get(VIEW_AS_COOKIE))) is not None:
        return await _viewing_as(request, seen, *view_as)
    return seen


def viewer_of(signed_in: SignedIn, notice: str | None = None) -> Viewer:
    user = signed_in.user
    return Viewer(user, Scope(user.role, user.advertiser_id, user.partner_id), signed_in.csrf_token, notice)


def _view_as(raw: str | None) -> tuple[Role, int] | None:
    """The tenant an admin looks as, from the cookie (`partner:12`, `advertiser:3`)."""
    role, _, number = (raw or "").partition(":")
    if role not in (Role.PARTNER.value, Role.ADVERTISER.value) or not number.isascii() or not number.isdigit():
        return None
    return Role(role), int(number[:18])


async def _viewing_as(request: Request, admin: Viewer, role: Role, owner_id: int) -> Viewer:
    catalog = services_of(request).catalog
    if role is Role.PARTNER:
        name = (await catalog.get_partner(owner_id)).name
        scope = Scope(role, partner_id=owner_id)
    else:
        name = (await catalog.get_advertiser(owner_id)).name
        scope = Scope(role, advertiser_id=owner_id)
    return Viewer(admin.user, scope, admin.csrf_token, admin.notice, viewing_as=f"{role.value} {name}")


def needs_role(*roles: Role) -> object:
    """A dependency: the viewer, who must have one of `roles` (another role's page is a 404 for them)."""

    async def dependency(seen: Annotated[Viewer, Depends(viewer)]) -> Viewer:
        if seen.role not in roles:
            raise NotFound("there is no such page")
        return seen

    return Depends(dependency)


AdminViewer = Annotated[Viewer, needs_role(Role.ADMIN)]
PartnerViewer = Annotated[Viewer, needs_role(Role.PARTNER)]
AdvertiserViewer = Annotated[Viewer, needs_role(Role.ADVERTISER)]
AnyViewer = Annotated[Viewer, Depends(viewer)]


async def checked_form(request: Request, expected: str | None) -> FormData:
    """The posted form, once its CSRF token equals `expected` (the session's, or for a form shown before
    sign-in the `tl_form` cookie's); `FormRefused` otherwise."""
    form = await request.form()
    sent = form.get(CSRF_FIELD)
    token = expected if expected is not None else request.cookies.get(FORM_COOKIE)
    if not isinstance(sent, str) or not token or not hmac.compare_digest(sent.encode(), token.encode()):
        raise FormRefused("this form has expired or did not come from this site; reload the page and send it again")
    return form


async def viewer_form(request: Request, seen: Viewer) -> FormData:
    """A signed-in viewer's form, CSRF-checked against their session; refused while viewing as a tenant."""
    form = await checked_form(request, seen.csrf_token)
    if seen.viewing_as is not None:
        raise Forbidden(f"you are viewing as {seen.viewing_as}: this view is read-only")
    return form


def form_token(request: Request) -> str:
    """The CSRF token of a form shown before sign-in: the `tl_form` cookie's, or a new one."""
    return request.cookies.get(FORM_COOKIE) or secrets.token_urlsafe(24)


def keep_form_token(request: Request, response: Response, token: str) -> None:
    response.set_cookie(
        FORM_COOKIE, token, httponly=True, samesite="strict", secure=secure_cookies(request), path="/ui"
    )


def secure_cookies(request: Request) -> bool:
    """Secure cookies unless the page is served over plain HTTP to this machine itself (development)."""
    if request.url.scheme == "https":
        return True
    host = (request.url.hostname or "").strip("[]")
    if host == "localhost":
        return False
    try:
        return not ipaddress.ip_address(host).is_loopback
    except ValueError:
        return True


def start_session(request: Request, response: Response, token: str, expires_at: datetime) -> None:
    response.set_cookie(
        SESSION_COOKIE,
        token,
        expires=expires_at,
        httponly=True,
        samesite="lax",
        secure=secure_cookies(request),
        path="/",
    )
    response.delete_cookie(FORM_COOKIE, path="/ui")


def end_session(response: Response) -> None:
    response.delete_cookie(SESSION_COOKIE, path="/")


def notify(request: Request, response: Response, notice: str) -> None:
    """Show `notice` once, on the next page (after the redirect that follows a form)."""
    response.set_cookie(
        NOTICE_COOKIE,
        notice[:200],
        max_age=60,
        httponly=True,
        samesite="lax",
        secure=secure_cookies(request),
        path="/ui",
    )


class SignInLimits:
    """Token buckets for sign-in attempts of one process (per address, and per address and email)."""

    def __init__(self) -> None:
        self._per_email = Buckets(*SIGN_IN_PER_EMAIL, time.monotonic)
        self._per_address = Buckets(*SIGN_IN_PER_ADDRESS, time.monotonic)

    def admit(self, address: str | None, email: str) -> int:
        """0 to try the password, else the seconds to wait."""
        return self._per_address.take(("address", address)) or self._per_email.take((address, email.lower()))


def sign_in_limits(request: Request) -> SignInLimits:
    state = request.app.state
    limits: SignInLimits | None = getattr(state, "sign_in_limits", None)
    if limits is None:
        limits = state.sign_in_limits = SignInLimits()
    return limits
