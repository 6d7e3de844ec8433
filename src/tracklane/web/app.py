"""The ASGI app: tracking routes first (the hot path and the browser SDK), the operational routes
(`/healthz`, `/readyz`, `/metrics`), then the API, its docs and the demo page.

The app is handed a function that builds the services (`tracklane.services.registry.Services`); it calls
it at start-up, runs their background workers while it serves, and closes them at shutdown. Handlers
reach the services through `request.app.state.services`.

Shutdown (SIGTERM: the server has stopped accepting and let the requests in flight finish) stops the
workers and gives them `TRACKLANE_SHUTDOWN_TIMEOUT_SECONDS` to finish what they send, then closes the
services, whose writer first commits what is queued.
"""

from __future__ import annotations

import asyncio
import html
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from importlib import resources
from pathlib import Path

from fastapi import APIRouter, Depends, FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route
from starlette.staticfiles import StaticFiles

from tracklane import __version__
from tracklane.services.registry import Services
from tracklane.web import edge, errors, health, heap, metrics, sdk, segment, tracking
from tracklane.web.api import (
    activity,
    catalog,
    contract,
    customers,
    delivery,
    keys,
    reports,
    sources,
    traffic,
    users,
)
from tracklane.web.front import FrontApp
from tracklane.web.ui import routing as ui_routing
from tracklane.web.ui import site as ui_site

log = logging.getLogger("tracklane.web")

API_DESCRIPTION = """Manage advertisers, offers and their events, partners, offer access, partner payouts,
API keys, Segment sources, webhook endpoints and partner postbacks; read clicks, conversions (with their
attribution trace), customers, reports and the delivery log (resend one delivery, replay a time range).
Authenticate with `Authorization: Bearer <api key>`. Money is a decimal string; ids are integers;
lists are `{"data": [...], "next_cursor"}`; errors are `{"error", "message"}`."""


def build_app(build: Callable[[], Services]) -> FastAPI:
    """The whole server as one ASGI app; `build` opens the database and builds the services at start-up."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        services: Services = build()
        app.state.services = services
        edge.configure(app.state, services.settings)
        tracking.configure(app.state, services.settings)
        health.configure(app.state, services)
        metrics.process_started()
        frozen = heap.freeze_while_serving()  # the redirects' p99 went from about 160 to 50 ms at 64 connections
        tasks = [
            asyncio.create_task(worker.run(), name=f"tracklane-worker-{index}")
            for index, worker in enumerate(services.workers)
        ]
        try:
            yield
        finally:
            if frozen:
                heap.thaw_after_serving()
            for worker in services.workers:
                worker.stop()
            await _finish(tasks, app.state.operations.shutdown_timeout)
            services.close()
            metrics.process_stopping()

    app = FrontApp(
        title="Tracklane management API",
        version=__version__,
        description=API_DESCRIPTION,
        openapi_url="/api/openapi.json",
        docs_url=None,
        redoc_url=None,
        lifespan=lifespan,
    )
    app.router.routes[0:0] = [*tracking.routes, *sdk.routes, *health.routes, *metrics.routes, *segment.routes]
    api = APIRouter(prefix="/api/v1", dependencies=[Depends(contract.no_nul_in_parameters)])
    routers = (
        catalog.router,
        activity.router,
        reports.router,
        keys.router,
        sources.router,
        customers.router,
        delivery.router,
        users.router,
        traffic.router,
    )
    for router in routers:
        api.include_router(router)
    app.include_router(api)
    contract.install(app)
    _install_docs(app)
    pages = ui_site.routers()
    ui_routing.install(app, pages)
    app.router.routes.append(Route("/demo/landing", demo_landing, methods=["GET"]))
    metrics.name_routes(app.router.routes, [*((api.prefix, router) for router in routers), *(("", r) for r in pages)])
    app.add_middleware(edge.Edge)  # inside the fault handler that `errors.install` puts in front of it
    errors.install(app)
    app.open_front()
    return app


DOCS_ASSETS = Path(str(resources.files("fastapi_offline") / "static"))


def _install_docs(app: FastAPI) -> None:
    """Swagger UI (5.x, which renders OpenAPI 3.1) served from the installed package: browsable docs, no CDN."""
    app.mount("/api/docs/assets", StaticFiles(directory=DOCS_ASSETS), name="swagger-assets")

    async def docs(_request: Request) -> Response:
        return get_swagger_ui_html(
            openapi_url="/api/openapi.json",
            title="Tracklane API",
            swagger_js_url="/api/docs/assets/swagger-ui-bundle.js",
            swagger_css_url="/api/docs/assets/swagger-ui.css",
            swagger_favicon_url="/api/docs/assets/favicon.png",
        )

    app.router.routes.append(Route("/api/docs", docs, methods=["GET"], include_in_schema=False))


async def _finish(tasks: list[asyncio.Task[None]], timeout: float) -> None:
    """Wait for the stopped workers at most `timeout` seconds, then cancel what still runs."""
    if not tasks:
        return
    _, running = await asyncio.wait(tasks, timeout=timeout)
    for task in running:
        log.warning("%s did not stop within %s s; cancelled", task.get_name(), timeout)
        task.cancel()
    for outcome in await asyncio.gather(*tasks, return_exceptions=True):
        if isinstance(outcome, Exception):
            log.error("a worker failed", exc_info=outcome)


async def demo_landing(request: Request) -> Response:
    """The demo offers' destination: shows the click's transaction id and the postback to fire."""
    tid = html.escape(request.query_params.get("tid", ""))
    base = str(request.base_url).rstrip("/")
    return HTMLResponse(
        "<!doctype html><meta charset=utf-8><title>Demo landing page</title>"
        f"<h1>Demo landing page</h1><p>transaction_id: <code>{tid}</code></p>"
        f"<p>Fire the conversion from the advertiser's server: "
        f"<code>{html.escape(base)}/postback?transaction_id={tid}&amp;secure=TOKEN</code></p>"
    )
