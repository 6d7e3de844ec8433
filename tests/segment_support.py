"""Helpers for the Segment intake tests: sources, stored messages, and ASGI wrappers that watch requests
or fail them the way a proxy or a dropped connection would (the app under them is the real one)."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any

import httpx

from tests import factories

_serial = itertools.count(1)


def source(api: httpx.Client, advertiser_id: int, preset: str = "default", **settings: Any) -> dict[str, Any]:
    """A source of the advertiser: it attributes only that advertiser's clicks and conversions."""
    body: dict[str, Any] = {"name": f"Source {next(_serial)}", "advertiser_id": advertiser_id, "preset": preset}
    if settings:
        body["settings"] = settings
    return factories.created(api.post("/api/v1/sources", json=body))


def messages(api: httpx.Client, source_id: int, **filters: Any) -> list[dict[str, Any]]:
    response = api.get(f"/api/v1/sources/{source_id}/messages", params={"limit": 500, **filters})
    assert response.status_code == 200, response.text
    data: list[dict[str, Any]] = response.json()["data"]
    return data


def conversions(api: httpx.Client, **filters: Any) -> list[dict[str, Any]]:
    response = api.get("/api/v1/conversions", params={"limit": 500, **filters})
    assert response.status_code == 200, response.text
    data: list[dict[str, Any]] = response.json()["data"]
    return data


def customers(api: httpx.Client, **filters: Any) -> list[dict[str, Any]]:
    response = api.get("/api/v1/customers", params={"limit": 500, **filters})
    assert response.status_code == 200, response.text
    data: list[dict[str, Any]] = response.json()["data"]
    return data


@dataclass
class RequestLog:
    """ASGI middleware recording (method, path, status) of every request."""

    app: Any
    requests: list[tuple[str, str, int]] = field(default_factory=list)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status: list[int] = []

        async def watch(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                status.append(message["status"])
            await send(message)

        await self.app(scope, receive, watch)
        self.requests.append((scope["method"], scope["path"], status[0] if status else 0))

    def posts(self, prefix: str = "/v1/") -> list[tuple[str, str, int]]:
        return [r for r in self.requests if r[0] == "POST" and r[1].startswith(prefix)]


@dataclass
class FailFirst:
    """ASGI middleware answering the first `failures` intake POSTs with 503: `after_commit` lets the real app
    store the data first (the answer is lost on the way back), otherwise the request never reaches it."""

    app: Any
    failures: int = 1
    after_commit: bool = True
    path_prefix: str = "/v1/"
    failed: int = 0

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        failing = (
            scope["type"] == "http"
            and scope["method"] == "POST"
            and scope["path"].startswith(self.path_prefix)
            and self.failed < self.failures
        )
        if not failing:
            await self.app(scope, receive, send)
            return
        self.failed += 1
        if self.after_commit:

            async def swallow(_message: dict[str, Any]) -> None:
                return None

            await self.app(scope, receive, swallow)
        else:
            while (await receive()).get("more_body"):
                pass
        await send(
            {
                "type": "http.response.start",
                "status": 503,
                "headers": [(b"content-type", b"application/json"), (b"retry-after", b"0")],
            }
        )
        await send({"type": "http.response.body", "body": b'{"code": "unavailable", "message": "injected failure"}'})
