"""Who the client is: the connection's peer address, or, when the peer is a trusted proxy, the address it
forwarded in `X-Forwarded-For` (and the scheme in `X-Forwarded-Proto`).

`X-Forwarded-For` is read from the right: each proxy appends the address it received the request from,
so the rightmost address that is not itself a trusted proxy is the client. Anything left of it was written
by the client and is ignored; so is an entry that is not an address (the hop to its right is taken).

A dotted IPv4 address (nearly every request) is read by the C library's `inet_pton`, which takes exactly
the spellings `ipaddress` takes (four decimal parts, no leading zeros), and checked against the trusted
IPv4 networks as integers: `ipaddress` costs several microseconds an address, twice a request.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable

from starlette.types import Scope

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def _address(text: str) -> str | None:
    """The IP address in a forwarded entry (`1.2.3.4`, `1.2.3.4:5678`, `[::1]:80`, `::1`), or None."""
    text = text.strip()
    if text.startswith("["):
        text = text[1 : text.find("]")] if "]" in text else ""
    elif text.count(":") == 1:
        text = text.partition(":")[0]
    if _ipv4(text) is not None:
        return text  # a valid dotted address is already in its canonical spelling
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        return None


def _ipv4(text: str) -> int | None:
    """A dotted IPv4 address as an integer, or None (anything else, IPv6 included)."""
    try:
        return int.from_bytes(socket.inet_pton(socket.AF_INET, text))
    except (OSError, ValueError):  # not an IPv4 address; ValueError: a NUL character
        return None


class ClientAddress:
    """Resolves and records (in `scope["client"]` and `scope["scheme"]`) each request's client."""

    def __init__(self, trusted: Iterable[Network]) -> None:
        self.trusted = tuple(trusted)
        self._trusted_v4 = [(int(n.network_address), int(n.netmask)) for n in self.trusted if n.version == 4]
        self._verdicts: dict[str, bool] = {}

    def is_trusted(self, address: str) -> bool:
        if (number := _ipv4(address)) is not None:
            return any(number & mask == network for network, mask in self._trusted_v4)
        verdict = self._verdicts.get(address)
        if verdict is None:
            try:
                ip = ipaddress.ip_address(address)
            except ValueError:
                verdict = False
            else:
                verdict = any(ip in network for network in self.trusted)
            if len(self._verdicts) > 10_000:
                self._verdicts.clear()
            self._verdicts[address] = verdict
        return verdict

    def resolve(self, scope: Scope) -> str | None:
        """The client's address; rewrites the scope when a trusted proxy forwarded the request."""
        peer = scope.get("client")
        if peer is None:
            return None
        address: str = peer[0]
        if not self.trusted or not self.is_trusted(address):
            return address
        forwarded: list[str] = []
        proto: bytes | None = None
        for name, value in scope["headers"]:
            if name == b"x-forwarded-for":
                forwarded.extend(value.decode("latin-1").split(","))
            elif name == b"x-forwarded-proto":
                proto = value
        if proto is not None:
            scheme = proto.decode("latin-1").split(",")[-1].strip().lower()
            if scheme in ("http", "https"):
                scope["scheme"] = scheme
        client = self._forwarded_client(address, forwarded)
        if client != address:
            scope["client"] = (client, 0)
        return client

    def _forwarded_client(self, peer: str, forwarded: list[str]) -> str:
        client = peer
        for entry in reversed(forwarded):
            hop = _address(entry)
            if hop is None:
                break
            client = hop
            if not self.is_trusted(hop):
                break
        return client
