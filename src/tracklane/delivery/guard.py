"""The SSRF guard: resolve, vet every address, and connect to the vetted address itself (pinned).

`PinnedResolver` is the HTTP client's resolver (aiohttp's `AbstractResolver`). For every new connection
(so for every attempt that opens one: DNS may change) it reads the host with the parser and rules used when
the URL was saved (`tracklane.domain.destinations`: an address in any spelling, a localhost name), resolves a
name, refuses the connection when any resolved address is not public (unless allowed by
`TRACKLANE_ALLOW_PRIVATE_DESTINATIONS`), and answers the vetted address alone, so the client dials that
address while it sends the original `Host` header and TLS SNI: the certificate is still checked against
the host name, and a second DNS answer (rebinding) can never be used. A host written as an address is not
resolved by the client, so the sender vets it first (`vetted`). Redirects are never followed (the sender
sends without them).
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Awaitable, Callable

from aiohttp.abc import AbstractResolver, ResolveResult

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


class PinnedResolver(AbstractResolver):
    """The HTTP client's resolver: only ever vetted addresses."""

    def __init__(self, allow: AllowList, resolver: Resolver = system_resolver) -> None:
        self._allow = allow
        self._resolve = resolver

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        address = await self.vetted(parse_host(host), port)
        family = socket.AF_INET6 if ":" in address else socket.AF_INET
        return [ResolveResult(hostname=host, host=address, port=port, family=family, proto=0,
                              flags=socket.AI_NUMERICHOST)]  # fmt: skip

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

    async def close(self) -> None:
        return None


__all__ = ["NameNotFound", "PinnedResolver", "RefusedDestination", "Resolver", "ResolverFailure", "system_resolver"]
