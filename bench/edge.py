"""CPU time the HTTP edge (`tracklane.web.edge.Edge`: request id, timing and metrics, client address, rate
limits) adds to one request, as measured against the same trivial route without it, in one run.

The route answers a constant 302 on `/r/{offer_id}/{partner_id}`; each variant is called in process (no
sockets, no database) ROUNDS times N requests, interleaved, and the best round of each is kept (CPU time of
this thread, so other load on the machine matters little). "without metrics" replaces the metrics
observation with nothing, to show its own share.

    .venv/bin/python bench/edge.py [--requests 2000] [--rounds 25]
"""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import Awaitable, Callable
from types import SimpleNamespace
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route, Router

from tracklane.settings import Settings
from tracklane.web import edge, metrics

HEADERS = [
    (b"host", b"127.0.0.1"),
    (b"user-agent", b"Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0"),
    (b"accept", b"*/*"),
]


async def redirect(_request: Request) -> Response:
    return Response(status_code=302, headers={"location": "https://shop.example/land"})


async def main(requests: int, rounds: int) -> None:
    router = Router(routes=[Route("/r/{offer_id}/{partner_id}", redirect)])
    metrics.name_routes(router.routes)
    app = SimpleNamespace(state=SimpleNamespace())
    edge.configure(app.state, Settings())
    middleware = edge.Edge(router)
    observe = metrics.observe_request

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(_message: Any) -> None:
        return None

    def scope() -> dict[str, Any]:
        return {"type": "http", "method": "GET", "path": "/r/1/2", "raw_path": b"/r/1/2", "query_string": b"sub1=a",
                "headers": HEADERS, "client": ("127.0.0.1", 50000), "server": ("127.0.0.1", 8080),
                "scheme": "http", "root_path": "", "app": app, "http_version": "1.1", "state": {}}  # fmt: skip

    def without_metrics() -> None:
        metrics.observe_request = lambda *_args: None

    variants: dict[str, tuple[Callable[..., Awaitable[None]], Callable[[], None] | None]] = {
        "route alone": (router, None),
        "edge": (middleware, None),
        "edge without metrics": (middleware, without_metrics),
    }
    best = dict.fromkeys(variants, float("inf"))
    for _ in range(rounds):
        for name, (stack, patch) in variants.items():
            metrics.observe_request = observe
            if patch is not None:
                patch()
            began = time.thread_time()
            for _ in range(requests):
                await stack(scope(), receive, send)
            best[name] = min(best[name], (time.thread_time() - began) / requests)
    metrics.observe_request = observe
    base = best["route alone"]
    for name, seconds in best.items():
        print(f"{name:<22} {seconds * 1e6:7.2f} us CPU per request  (+{(seconds - base) * 1e6:5.2f} us over the route)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=25)
    arguments = parser.parse_args()
    asyncio.run(main(arguments.requests, arguments.rounds))
