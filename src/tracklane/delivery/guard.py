"""The SSRF guard: resolve, vet every address, and connect to the vetted address itself (pinned).

`PinnedTransport` wraps httpx's transport. For each request (so for every attempt: DNS may change) it reads
the host with the parser and rules used when the URL was saved (`tracklane.domain.destinations`: an address
in any spelling, a localhost name), resolves a name, refuses the request when any resolved address is not
public (unless allowed by `TRACKLANE_ALLOW_PRIVATE_DESTINATIONS`), then dials the vetted IP while sending
the original `Host` header and TLS SNI, so the certificate is still checked against the host name and a
second DNS answer (rebinding) can never be used. Redirects are never followed (the client is built
without them).
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Awaitable, Callable

import httpx

from tracklane.domain.destinations import AllowList, Host, destination, host_refusal, parse_host, vet
from tracklane.domain.errors import RefusedDestination

Resolver = Callable[[str, int], Awaitable[list[str]]]
"""host, port → the addresses it resolves to (as text). Raises `NameNotFound` or `ResolverFailure`."""


class NameNotFound(Exception):
    """The name does not exist (NXDOMAIN): the receiver's configuration is wrong."""


class ResolverFailure(Exception):
    """Our resolver could not answer (timeout, SERVFAIL, no network): our failure, not the receiver's."""


async def system_resolver(host: str, port: int) -> list[str]:
    """The operating system's resolver (getaddrinfo), without blocking the event loop."""
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as error:
        if error.errno in (socket.EAI_NONAME, getattr(socket, "EAI_NODATA", socket.EAI_NONAME)):
            raise NameNotFound(f"{host} does not resolve") from error
        raise ResolverFailure(f"resolving {host} failed: {error}") from error
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


class PinnedTransport(httpx.AsyncBaseTransport):
    """An httpx transport that only ever connects to vetted addresses."""

    def __init__(
        self, allow: AllowList, resolver: Resolver = system_resolver, inner: httpx.AsyncBaseTransport | None = None
    ) -> None:
        self._allow = allow
        self._resolve = resolver
        self._inner = inner or httpx.AsyncHTTPTransport(retries=0)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        host = parse_host(request.url.raw_host.decode("ascii"))
        port = request.url.port or (443 if request.url.scheme == "https" else 80)
        address = await self.vetted(host, port)
        request.url = request.url.copy_with(host=address)
        if request.url.scheme == "https":
            request.extensions = {**request.extensions, "sni_hostname": host.name}
        return await self._inner.handle_async_request(request)

    async def vetted(self, host: Host, port: int) -> str:
        """The address to dial for `host`, or `RefusedDestination` saying why none may be."""
        reason = host_refusal(host, self._allow)
        if reason is not None:
            raise RefusedDestination(reason)
        addresses = [host.name] if host.address is not None else await self._resolve(host.name, port)
        return vet(host.name, addresses, self._allow)

    async def check(self, url: str) -> str:
        """The address `url` would be sent to, or `RefusedDestination` (for tests and diagnostics)."""
        target = destination(url)
        return await self.vetted(target.host, target.port)

    async def aclose(self) -> None:
        await self._inner.aclose()


__all__ = ["NameNotFound", "PinnedTransport", "RefusedDestination", "Resolver", "ResolverFailure", "system_resolver"]
