"""Signing in and out, accepting an invitation or a password reset link, and the public partner sign-up."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from starlette.requests import Request
from starlette.responses import Response

from tracklane.domain.errors import Conflict, InvalidParameter, NotFound
from tracklane.domain.model import Role
from tracklane.resources.decoding import convert
from tracklane.resources.users import PartnerSignUp
from tracklane.web.ui import dashboard
from tracklane.web.ui.routing import HOME, PageRoute, page, redirect
from tracklane.web.ui.session import (
    NOTICE_COOKIE,
    SESSION_COOKIE,
    VIEW_AS_COOKIE,
    AnyViewer,
    checked_form,
    end_session,
    form_token,
    keep_form_token,
    notify,
    secure_cookies,
    services_of,
    sign_in_limits,
    start_session,
    viewer_form,
)

router = APIRouter(prefix="/ui", route_class=PageRoute, include_in_schema=False)


def _public_page(request: Request, template: str, status: int = 200, **context: Any) -> Response:
    """A page shown before sign-in: its forms carry the `tl_form` double-submit token."""
    token = form_token(request)
    notice = request.cookies.get(NOTICE_COOKIE)
    response = page(request, None, template, status, form_csrf=token, notice=notice, **context)
    keep_form_token(request, response, token)
    if notice:
        response.delete_cookie(NOTICE_COOKIE, path="/ui")
    return response


def _safe_next(target: str | None) -> str:
    """Only a path of this console is a place to go after signing in (never another site)."""
    if target and target.startswith("/ui/") and not target.startswith("//") and "\\" not in target:
        return target
    return ""


@router.get("/")
async def home(request: Request, viewer: AnyViewer) -> Response:
    if viewer.role is not Role.ADMIN:
        return redirect(HOME[viewer.role])
    return await dashboard.show(request, viewer)


@router.get("/sign-in")
async def sign_in_page(request: Request, next: Annotated[str | None, Query(max_length=2000)] = None) -> Response:
    return _public_page(request, "sign_in.html", next_path=_safe_next(next), email="", error=None)


@router.post("/sign-in")
async def sign_in(request: Request) -> Response:
    form = await checked_form(request, None)
    email = str(form.get("email", "")).strip()
    password = str(form.get("password", ""))
    next_path = _safe_next(str(form.get("next", "")))
    address = request.client.host if request.client else None
    wait = sign_in_limits(request).admit(address, email)
    if wait:
        error = f"Too many attempts. Try again in {wait} seconds."
        response = _public_page(request, "sign_in.html", 429, next_path=next_path, email=email, error=error)
        response.headers["Retry-After"] = str(wait)
        return response
    found = await services_of(request).users.sign_in(email, password)
    if found is None:
        error = "That email and password do not match an active account."
        return _public_page(request, "sign_in.html", 401, next_path=next_path, email=email, error=error)
    signed_in, token = found
    response = redirect(next_path or HOME[signed_in.user.role])
    start_session(request, response, token, signed_in.expires_at)
    return response


@router.post("/sign-out")
async def sign_out(request: Request, viewer: AnyViewer) -> Response:
    await checked_form(request, viewer.csrf_token)
    await services_of(request).users.sign_out(request.cookies.get(SESSION_COOKIE, ""))
    response = redirect("/ui/sign-in")
    end_session(response)
    response.delete_cookie(VIEW_AS_COOKIE, path="/ui")
    return response


@router.get("/accept")
async def accept_page(request: Request, token: Annotated[str, Query(max_length=200)] = "") -> Response:
    user = await services_of(request).users.link_user(token) if token else None
    return _public_page(request, "accept.html", 200 if user else 400, user=user, token=token, error=None)


@router.post("/accept")
async def accept(request: Request) -> Response:
    form = await checked_form(request, None)
    token = str(form.get("token", ""))[:200]
    password = str(form.get("password", ""))
    users = services_of(request).users
    user = await users.link_user(token)
    error = "The two passwords differ." if password != str(form.get("password_again", "")) else None
    if error is None:
        try:
            await users.redeem(token, password)
        except InvalidParameter as refused:
            error = refused.detail
        else:
            response = redirect("/ui/sign-in")
            notify(request, response, "Your password is set: sign in with it.")
            return response
    return _public_page(request, "accept.html", 400, user=user, token=token, error=error)


@router.get("/sign-up")
async def sign_up_page(request: Request) -> Response:
    return _public_page(request, "sign_up.html", values={}, error=None)


@router.post("/sign-up")
async def sign_up(request: Request) -> Response:
    form = await checked_form(request, None)
    values = {key: str(value).strip() for key, value in form.items() if key != "csrf_token" and str(value).strip()}
    try:
        await services_of(request).users.sign_up_partner(convert(values, PartnerSignUp))
    except InvalidParameter as refused:
        error = f"{refused.field}: {refused.detail}"
    except Conflict as taken:
        error = str(taken)
    else:
        response = redirect("/ui/sign-in")
        notify(request, response, "Thank you: your application is in review. Sign in to see its status.")
        return response
    values.pop("password", None)
    return _public_page(request, "sign_up.html", 400, values=values, error=error)


@router.post("/view-as")
async def view_as(request: Request, viewer: AnyViewer) -> Response:
    """An admin looks at one partner's or advertiser's portal, read-only (`role`, `id`)."""
    form = await viewer_form(request, viewer)
    if viewer.user.role is not Role.ADMIN:
        raise NotFound("there is no such page")
    role, owner = str(form.get("role", "")), str(form.get("id", ""))
    if role not in (Role.PARTNER.value, Role.ADVERTISER.value):
        raise InvalidParameter("role", "must be partner or advertiser")
    if not owner.isascii() or not owner.isdigit():
        raise InvalidParameter("id", "must be a partner's or advertiser's id")
    response = redirect(HOME[Role(role)])
    response.set_cookie(VIEW_AS_COOKIE, f"{role}:{int(owner)}", httponly=True, samesite="lax",
                        secure=secure_cookies(request), path="/ui")  # fmt: skip
    return response


@router.post("/view-as/stop")
async def stop_viewing_as(request: Request, viewer: AnyViewer) -> Response:
    await checked_form(request, viewer.csrf_token)
    response = redirect("/ui/")
    response.delete_cookie(VIEW_AS_COOKIE, path="/ui")
    return response
