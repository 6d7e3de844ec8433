"""`/healthz` (the process is up) and `/readyz` (it can serve: database, migrations, writer), and what the
operational routes read from the process (`Operations`: its probes and settings, set at start-up).

`/healthz` touches nothing: `200 {"status": "ok"}` while the process answers at all (a liveness probe).
`/readyz` runs the checks of the process's probes at once, each bounded by
`TRACKLANE_READINESS_TIMEOUT_SECONDS`: `200 {"status": "ready", "checks": {...}}` when every check is
`ok`, else `503 {"status": "unavailable", "checks": {...}, "failed": [...]}` naming each failed check
with a short reason (a readiness probe: a balancer stops sending traffic, and sends it again once ready).
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

NO_STORE = {"Cache-Control": "no-store"}
PASSED = "ok"


class Backlog(Protocol):
    """The outbox's backlog (see `tracklane.storage.operations.OutboxBacklog`)."""

    @property
    def due(self) -> int: ...
    @property
    def scheduled(self) -> int: ...
    @property
    def sending(self) -> int: ...
    @property
    def oldest_due_seconds(self) -> float: ...


@runtime_checkable
class Probes(Protocol):
    """What the process can tell about its storage (the composition root's container provides it)."""

    async def readiness(self, timeout: float) -> Mapping[str, str]: ...
    async def outbox_backlog(self) -> Backlog: ...


class Secret(Protocol):
    def get_secret_value(self) -> str: ...


@runtime_checkable
class OperationsSettings(Protocol):
    """The settings the operational routes read (the process's settings provide them)."""

    @property
    def metrics_token(self) -> Secret | None: ...
    @property
    def readiness_timeout_seconds(self) -> float: ...
    @property
    def shutdown_timeout_seconds(self) -> float: ...


@dataclass(slots=True)
class OutboxCache:
    """The last outbox backlog read for `/metrics`, and until when it stands."""

    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    expires: float = 0.0
    value: Backlog | None = None


@dataclass(slots=True)
class Operations:
    probes: Probes
    readiness_timeout: float
    shutdown_timeout: float
    metrics_token: bytes | None
    outbox: OutboxCache = field(default_factory=OutboxCache)

    @classmethod
    def of(cls, services: object) -> Operations:
        settings = getattr(services, "settings", None)
        if not isinstance(services, Probes) or not isinstance(settings, OperationsSettings):
            raise TypeError("the services lack the probes or settings of /readyz and /metrics (see web.health)")
        token = settings.metrics_token
        return cls(
            probes=services,
            readiness_timeout=settings.readiness_timeout_seconds,
            shutdown_timeout=settings.shutdown_timeout_seconds,
            metrics_token=None if token is None else token.get_secret_value().encode(),
        )


def configure(state: object, services: object) -> None:
    """Give the app (its `state`) the operations of these services."""
    state.operations = Operations.of(services)  # type: ignore[attr-defined]


def operations(request: Request) -> Operations:
    found: Operations = request.app.state.operations
    return found


async def healthz(_request: Request) -> Response:
    return JSONResponse({"status": "ok"}, headers=NO_STORE)


async def readyz(request: Request) -> Response:
    ops = operations(request)
    checks = dict(await ops.probes.readiness(ops.readiness_timeout))
    failed = [name for name, result in checks.items() if result != PASSED]
    if not failed:
        return JSONResponse({"status": "ready", "checks": checks}, headers=NO_STORE)
    body = {"status": "unavailable", "checks": checks, "failed": failed}
    return JSONResponse(body, status_code=503, headers={**NO_STORE, "Retry-After": "5"})


routes = [Route("/healthz", healthz, methods=["GET"]), Route("/readyz", readyz, methods=["GET"])]
