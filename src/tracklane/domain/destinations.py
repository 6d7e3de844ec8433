"""Which network addresses webhooks and partner postbacks may reach (the SSRF rule), as pure functions.

An outbound request may go only to public unicast addresses. Loopback, private, link-local, shared (CGNAT
100.64/10), multicast, reserved, unspecified and documentation addresses are refused, and so are IPv6
addresses that embed such an IPv4 address (IPv4-mapped `::ffff:a.b.c.d`, 6to4 `2002::/16`, NAT64
`64:ff9b::/96`). An operator may allow chosen hosts or networks (`TRACKLANE_ALLOW_PRIVATE_DESTINATIONS`)
for development and tests. The delivery layer resolves names and applies `refusal` to every address.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from tracklane.domain.errors import InvalidParameter, RefusedDestination

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

# Not covered (or not fully) by the standard library's `is_global` / `is_private` in every Python version.
_EXTRA_REFUSED: tuple[tuple[IPNetwork, str], ...] = (
    (ipaddress.ip_network("100.64.0.0/10"), "shared address space (CGNAT)"),
    (ipaddress.ip_network("192.0.0.0/24"), "IETF protocol assignments"),
    (ipaddress.ip_network("192.88.99.0/24"), "6to4 relay anycast"),
    (ipaddress.ip_network("198.18.0.0/15"), "benchmarking"),
    (ipaddress.ip_network("64:ff9b:1::/48"), "local-use NAT64"),
    (ipaddress.ip_network("2001::/23"), "IETF protocol assignments (Teredo and others)"),
    (ipaddress.ip_network("2001:db8::/32"), "documentation"),
    (ipaddress.ip_network("fec0::/10"), "site-local"),
)
_NAT64 = ipaddress.ip_network("64:ff9b::/96")


@dataclass(frozen=True, slots=True)
class AllowList:
    """Hosts and networks an operator allows although they are not public."""

    hosts: frozenset[str] = frozenset()
    networks: tuple[IPNetwork, ...] = field(default_factory=tuple)

    def allows(self, host: str, address: IPAddress) -> bool:
        return host.lower() in self.hosts or any(_contains(net, address) for net in self.networks)


def parse_allow_list(raw: str, field_name: str = "allow_private_destinations") -> AllowList:
    """`127.0.0.1/32, ::1, localhost` → networks and host names."""
    hosts: set[str] = set()
    networks: list[IPNetwork] = []
    for item in (part.strip() for part in raw.split(",")):
        if not item:
            continue
        try:
            networks.append(ipaddress.ip_network(item, strict=False))
            continue
        except ValueError:
            pass
        if "/" in item or not all(ch.isalnum() or ch in "-._" for ch in item):
            raise InvalidParameter(field_name, f"{item!r} is neither a CIDR network nor a host name")
        hosts.add(item.lower().rstrip("."))
    return AllowList(frozenset(hosts), tuple(networks))


def refusal(address: IPAddress) -> str | None:
    """Why this address must not be reached, or None when it is public unicast."""
    if isinstance(address, ipaddress.IPv6Address):
        embedded = _embedded_ipv4(address)
        if embedded is not None:
            inner = refusal(embedded[1])
            return None if inner is None else f"{embedded[0]} of {embedded[1]}: {inner}"
    for network, reason in _EXTRA_REFUSED:
        if _contains(network, address):
            return reason
    checks = (
        (address.is_unspecified, "unspecified"),
        (address.is_loopback, "loopback"),
        (address.is_link_local, "link-local"),
        (address.is_multicast, "multicast"),
        (address.is_private, "private"),
        (address.is_reserved, "reserved"),
        (not address.is_global, "not globally routable"),
    )
    return next((reason for refused, reason in checks if refused), None)


def vet(host: str, addresses: Iterable[str], allow: AllowList) -> str:
    """The address to connect to: every resolved address must be public (or allowed), else refused."""
    vetted: list[str] = []
    for text in addresses:
        address = ipaddress.ip_address(text.split("%", 1)[0])
        reason = None if allow.allows(host, address) else refusal(address)
        if reason is not None:
            raise RefusedDestination(f"{host} resolves to {address}, which is {reason}")
        vetted.append(str(address))
    if not vetted:
        raise RefusedDestination(f"{host} resolves to no address")
    return vetted[0]


def refuse_literal(url: str, allow: AllowList, field_name: str) -> None:
    """At save time: a URL whose host is a literal non-public address is refused naming the field.

    Host names are checked when each request is sent (resolving is I/O); this only catches the obvious.
    """
    host = urlsplit(url).hostname or ""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return
    reason = None if allow.allows(host, address) else refusal(address)
    if reason is not None:
        raise InvalidParameter(field_name, f"{address} is {reason}; outbound requests may not reach it")


def _embedded_ipv4(address: ipaddress.IPv6Address) -> tuple[str, ipaddress.IPv4Address] | None:
    if address.ipv4_mapped is not None:
        return "IPv4-mapped", address.ipv4_mapped
    if address.sixtofour is not None:
        return "6to4", address.sixtofour
    if address in _NAT64:
        return "NAT64", ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def _contains(network: IPNetwork, address: IPAddress) -> bool:
    return network.version == address.version and address in network
