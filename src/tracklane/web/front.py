"""The front door: the plain Starlette routes the router tries first (tracking, the SDK script, health,
metrics, Segment intake) served without FastAPI's own middleware stack.

FastAPI wraps every request in its server-error, telemetry, body-limit and exit-stack middleware, and its
router then tries each route in turn: about 35 µs a request, a tenth of a click's whole cost. A request
that one of these leading routes matches fully (path and method) goes through what it needs and nothing
more: the fault handler (`errors.Faults`), the edge (`edge.Edge`: request id, metrics, client address,
rate limits, bounded bodies) and Starlette's exception handling with the app's handlers, then the route.
Anything else (another route, a method the route does not take, a path no route has) goes to the whole
app, which answers it exactly as before.
"""

from __future__ import annotations

from itertools import takewhile
from typing import Any

from fastapi import FastAPI
from starlette.middleware.exceptions import ExceptionMiddleware
from starlette.routing import BaseRoute, Match, Route
from starlette.types import ASGIApp, Receive, Scope, Send

from tracklane.web import edge, errors

_MATCHED = "tracklane.front_route"


class FrontApp(FastAPI):
    """The app, answering its leading plain routes through the short stack (`open_front` builds it once the
    app's routes and handlers are in place)."""

    _front: tuple[list[BaseRoute], ASGIApp] | None = None

    def open_front(self) -> None:
        routes = list(takewhile(lambda route: type(route) is Route, self.router.routes))
        handlers = {key: handler for key, handler in self.exception_handlers.items() if key not in (500, Exception)}
        stack = errors.Faults(edge.Edge(ExceptionMiddleware(_matched_route, handlers=handlers)))
        self._front = (routes, stack)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self._front is not None and scope["type"] == "http" and not self.root_path:
            routes, stack = self._front
            for route in routes:
                match, child = route.matches(scope)
                if match is Match.FULL:
                    scope.update(child)
                    scope["app"] = self
                    scope[_MATCHED] = route
                    await stack(scope, receive, send)
                    return
        await super().__call__(scope, receive, send)


async def _matched_route(scope: Scope, receive: Receive, send: Send) -> None:
    route: Any = scope[_MATCHED]
    await route.handle(scope, receive, send)
