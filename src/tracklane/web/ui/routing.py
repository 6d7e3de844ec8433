"""The routes of `/ui/` and how a page answers: rendered for its viewer, and failures shown as pages.

Every page route uses `PageRoute`: a request without a session is sent to the sign-in page (and back
afterwards), a domain error becomes a page with its status (another tenant's row is the same 404 as a
missing one), and bad path or query values are a 400 page naming them, never a JSON body or a 500.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Mapping
from typing import Any
from urllib.parse import quote

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.staticfiles import StaticFiles

from tracklane.domain.errors import TracklaneError
from tracklane.domain.model import Role
from tracklane.web import errors
from tracklane.web.ui import rendering
from tracklane.web.ui.session import NOTICE_COOKIE, FormRefused, SignInNeeded, Viewer

#: The pages each role finds in its menu: (label, path).
NAVIGATION: Mapping[Role, tuple[tuple[str, str], ...]] = {
    Role.ADMIN: (
        ("Dashboard", "/ui/"),
        ("Offers", "/ui/offers"),
        ("Advertisers", "/ui/advertisers"),
        ("Partners", "/ui/partners"),
        ("Conversions", "/ui/conversions"),
        ("Review", "/ui/review"),
        ("Reports", "/ui/reports"),
        ("Customers", "/ui/customers"),
        ("Traffic rules", "/ui/traffic"),
        ("Webhooks", "/ui/webhooks"),
        ("Partner postbacks", "/ui/partner-postbacks"),
        ("Segment sources", "/ui/sources"),
        ("People", "/ui/users"),
    ),
    Role.PARTNER: (
        ("Home", "/ui/p/"),
        ("Marketplace", "/ui/p/marketplace"),
        ("My offers", "/ui/p/offers"),
        ("Postbacks", "/ui/p/postbacks"),
        ("Stats", "/ui/p/stats"),
        ("Conversions", "/ui/p/conversions"),
    ),
    Role.ADVERTISER: (
        ("Home", "/ui/a/"),
        ("Offers", "/ui/a/offers"),
        ("Conversions", "/ui/a/conversions"),
        ("Stats", "/ui/a/stats"),
        ("Integration", "/ui/a/integration"),
    ),
}
HOME: Mapping[Role, str] = {Role.ADMIN: "/ui/", Role.PARTNER: "/ui/p/", Role.ADVERTISER: "/ui/a/"}


def page(request: Request, viewer: Viewer | None, template: str, status: int = 200, **context: Any) -> Response:
    """`template` rendered for `viewer` (its menu, CSRF token and the notice left for it)."""
    menu = NAVIGATION[viewer.role] if viewer is not None else ()
    response = rendering.render(
        request,
        template,
        {"viewer": viewer, "menu": menu, "csrf_token": viewer.csrf_token if viewer else "", **context},
        status,
    )
    if viewer is not None and viewer.notice:
        response.delete_cookie(NOTICE_COOKIE, path="/ui")
    return response


def redirect(path: str) -> RedirectResponse:
    """After a form: see the result at `path` (303, so a reload does not post again)."""
    return RedirectResponse(path, status_code=303)


def _failure_page(request: Request, error: Exception) -> Response:
    if isinstance(error, SignInNeeded):
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return RedirectResponse(f"/ui/sign-in?next={quote(target, safe='')}", status_code=303)
    if isinstance(error, RequestValidationError):
        names = sorted({".".join(str(part) for part in e["loc"][1:]) for e in error.errors()})
        status, title, message = 400, "Bad request", f"these values are not valid: {', '.join(names)}"
    elif isinstance(error, TracklaneError):
        status = errors.status_of(error)
        title = {403: "Refused", 404: "Not found", 409: "Conflict", 503: "Try again"}.get(status, "Bad request")
        message = str(error)
    else:
        raise error
    response = rendering.render(
        request,
        "error.html",
        {"viewer": None, "menu": (), "csrf_token": "", "title": title, "message": message, "status": status},
        status,
    )
    if isinstance(error, FormRefused):
        response.headers["X-Tracklane-Refused"] = "csrf"
    return response


class PageRoute(APIRoute):
    """A page: failures answered as pages (see the module's docstring)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def answered(request: Request) -> Response:
            try:
                return await handler(request)
            except (TracklaneError, RequestValidationError) as error:
                return _failure_page(request, error)

        return answered


def install(app: FastAPI, routers: list[Any]) -> None:
    """Serve the pages and their static files (styles, scripts, the vendored chart library)."""
    app.mount("/ui/static", StaticFiles(directory=rendering.STATIC), name="ui-static")
    for router in routers:
        app.include_router(router)
