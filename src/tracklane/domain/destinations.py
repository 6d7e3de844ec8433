"""Which destinations webhooks and partner postbacks may reach (the SSRF rule), as pure functions.

One parser reads the host of every outbound URL, when it is saved and again before each attempt, so what
is checked is what is connected to. It reads hosts the way browsers do (the WHATWG URL standard): a host
whose last label is a number is an IPv4 address in any spelling (`127.1`, `2130706433`, `0x7f000001`,
`0177.0.0.1`, `127.000.000.001`, `127.0.0.1.`), percent-escapes and full-width characters are decoded
first, and a bracketed host is an IPv6 address (with an optional `%25` zone id). A host that is neither a
valid address nor a plain DNS name (letters, digits, `-` and `_` once converted to IDNA) is refused.

An outbound request may go only to public unicast addresses. Loopback, private, link-local, shared (CGNAT
100.64/10), multicast, reserved, unspecified, documentation and benchmarking addresses are refused, and so
are IPv6 addresses that embed an IPv4 address (IPv4-mapped `::ffff:a.b.c.d`, IPv4-compatible `::a.b.c.d`,
6to4 `2002::/16`, NAT64 `64:ff9b::/96`) whose IPv4 address is refused. `localhost` and every name under
`.localhost` are loopback by definition (RFC 6761) and refused without being resolved. An operator may
allow chosen hosts or networks (`TRACKLANE_ALLOW_PRIVATE_DESTINATIONS`) for development and tests.

`screen` applies the rules that need no I/O (the URL, literal addresses, localhost names); it runs when a
URL is saved (`refuse_destination`, a 400 naming the field) and before each attempt. The delivery layer
then resolves a name and applies `vet` to every address it resolves to.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from urllib.parse import unquote_to_bytes

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
    (ipaddress.ip_network("3fff::/20"), "documentation"),
    (ipaddress.ip_network("fec0::/10"), "site-local"),
)
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_COMPATIBLE = ipaddress.ip_network("::/96")

_SCHEMES = {"http": 80, "https": 443}
_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*):")
_LABEL = re.compile(r"[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?")
_AUTHORITY_END = re.compile(r"[/?#]")
_ESCAPE = re.compile(r"%(?![0-9A-Fa-f]{2})")
_MAX_NAME = 253


@dataclass(frozen=True, slots=True)
class AllowList:
    """Hosts and networks an operator allows although they are not public."""

    hosts: frozenset[str] = frozenset()
    networks: tuple[IPNetwork, ...] = field(default_factory=tuple)

    def allows(self, host: str, address: IPAddress) -> bool:
        return self.allows_name(host) or any(_contains(net, address) for net in self.networks)

    def allows_name(self, host: str) -> bool:
        return host.lower().rstrip(".") in self.hosts


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


@dataclass(frozen=True, slots=True)
class Host:
    """A host as outbound requests use it: an address (however it was spelled) or a DNS name."""

    name: str  # the canonical spelling: the address's text, or the lowercase ASCII (IDNA) name, no final dot
    address: IPAddress | None = None
    zone: str | None = None  # an IPv6 zone id (`%25eth0`), kept only to be refused or allowed
    spelled: str = field(default="", compare=False)  # as the URL wrote it

    @property
    def described(self) -> str:
        """The host for messages: its spelling, and what it means when that differs."""
        same = self.spelled.strip("[]").lower() in ("", self.name)
        return self.name if same else f"{self.spelled} ({self.name})"

    @property
    def in_url(self) -> str:
        """The host as written in a URL's authority."""
        if isinstance(self.address, ipaddress.IPv6Address):
            return f"[{self.name}{'%25' + self.zone if self.zone else ''}]"
        return self.name


@dataclass(frozen=True, slots=True)
class Destination:
    """A parsed outbound URL; `url` is the same URL with the host in its canonical spelling."""

    scheme: str
    host: Host
    port: int
    url: str


def destination(url: str) -> Destination:
    """Parse an outbound URL (absolute http or https); `RefusedDestination` says why one cannot be used."""
    if any(ord(ch) <= 0x20 or ord(ch) == 0x7F for ch in url):
        raise RefusedDestination("the URL contains spaces or control characters")
    scheme_match = _SCHEME.match(url)
    scheme = scheme_match.group(1).lower() if scheme_match else ""
    if scheme not in _SCHEMES or not url[len(scheme) + 1 :].startswith("//"):
        raise RefusedDestination("only absolute http:// and https:// URLs can be reached")
    start = len(scheme) + 3
    delimiter = _AUTHORITY_END.search(url, start)
    end = delimiter.start() if delimiter else len(url)
    authority = url[start:end]
    if "\\" in authority:
        raise RefusedDestination("the URL's host part contains a backslash, which clients read differently")
    userinfo, _, hostport = authority.rpartition("@")
    raw_host, port = _split_port(hostport, _SCHEMES[scheme])
    host = parse_host(raw_host)
    prefix = f"{userinfo}@" if userinfo else ""
    suffix = hostport[len(raw_host) :]
    return Destination(scheme, host, port, url[:start] + prefix + host.in_url + suffix + url[end:])


def parse_host(raw: str) -> Host:
    """Read a host as a browser does: an IPv6 address in brackets, an IPv4 address in any spelling, or a
    DNS name; anything else is refused."""
    if raw.startswith("[") or ":" in raw:
        return _ipv6(raw[1:-1] if raw.startswith("[") and raw.endswith("]") else raw)
    try:
        text = unquote_to_bytes(raw).decode("utf-8") if "%" in raw and not _ESCAPE.search(raw) else raw
    except UnicodeDecodeError:
        raise RefusedDestination(f"the host {raw!r} is not valid UTF-8 once percent-decoded") from None
    if "%" in text:
        raise RefusedDestination(f"the host {raw!r} has a stray %")
    if not text.isascii():
        try:
            text = text.encode("idna").decode("ascii")
        except UnicodeError:
            raise RefusedDestination(f"the host {raw!r} is not a valid internationalised name") from None
    text = text.lower()
    labels = text.split(".")
    if len(labels) > 1 and labels[-1] == "":
        labels.pop()
    if not labels or labels == [""]:
        raise RefusedDestination("the URL has no host")
    if _is_number(labels[-1]):
        address = _ipv4(labels)
        if address is None:
            raise RefusedDestination(f"the host {raw!r} ends in a number but is not a valid IPv4 address")
        return Host(str(address), address, spelled=raw)
    name = ".".join(labels)
    if len(name) > _MAX_NAME or not all(_LABEL.fullmatch(label) for label in labels):
        raise RefusedDestination(f"the host {raw!r} is not a valid DNS name")
    return Host(name, spelled=raw)


def screen(url: str, allow: AllowList) -> Destination:
    """Everything that can be checked without resolving: the URL, a literal address, a localhost name."""
    target = destination(url)
    reason = host_refusal(target.host, allow)
    if reason is not None:
        raise RefusedDestination(reason)
    return target


def host_refusal(host: Host, allow: AllowList) -> str | None:
    """Why this host may not be reached whatever it resolves to, or None."""
    if host.address is not None:
        if allow.allows(host.name, host.address):
            return None
        if host.zone is not None:
            return f"{host.in_url} names a zone id; only allowed link-local destinations may"
        reason = refusal(host.address)
        return None if reason is None else f"{host.described} is {reason}"
    if is_localhost(host.name) and not allow.allows_name(host.name):
        return f"{host.described} is loopback (every localhost name is, RFC 6761)"
    return None


def refuse_destination(url: str, allow: AllowList, field_name: str) -> None:
    """At save time: the rules of `screen`, refused as an invalid `field_name`.

    Names are resolved, and every address checked, before each attempt (resolving is I/O, and DNS changes).
    """
    try:
        screen(url, allow)
    except RefusedDestination as error:
        raise InvalidParameter(field_name, f"{error.message}; outbound requests may not reach it") from None


def is_localhost(name: str) -> bool:
    return name == "localhost" or name.endswith(".localhost")


def refusal(address: IPAddress) -> str | None:
    """Why this address must not be reached, or None when it is public unicast."""
    if isinstance(address, ipaddress.IPv6Address):
        embedded = _embedded_ipv4(address)
        if embedded is not None:
            kind, inner_address = embedded
            inner = refusal(inner_address)
            if kind == "IPv4-compatible":
                return f"IPv4-compatible (deprecated) {inner_address}" + (f": {inner}" if inner else "")
            return None if inner is None else f"{kind} {inner_address}: {inner}"
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


def _split_port(hostport: str, default: int) -> tuple[str, int]:
    if hostport.startswith("["):
        close = hostport.find("]")
        if close < 0:
            raise RefusedDestination("the URL's IPv6 address has no closing bracket")
        host, rest = hostport[: close + 1], hostport[close + 1 :]
    else:
        host, colon, port_text = hostport.partition(":")
        rest = colon + port_text
    if not rest or rest == ":":
        return host, default
    digits = rest[1:]
    if not rest.startswith(":") or not digits.isascii() or not digits.isdigit() or not 0 < int(digits) <= 65535:
        raise RefusedDestination(f"the URL's port {rest[1:]!r} is not a number from 1 to 65535")
    return host, int(digits)


def _ipv6(text: str) -> Host:
    address_text, _, zone = text.partition("%25") if "%25" in text else text.partition("%")
    try:
        address = ipaddress.IPv6Address(address_text)
    except ValueError:
        raise RefusedDestination(f"the host [{text}] is not a valid IPv6 address") from None
    if zone and not all(ch.isalnum() or ch in "-._~" for ch in zone):
        raise RefusedDestination(f"the zone id of [{text}] is not valid")
    return Host(address.compressed, address, zone or None, spelled=text)


def _is_number(label: str) -> bool:
    """The WHATWG "ends in a number" test for the last label."""
    if label.isascii() and label.isdigit():
        return True
    return _ipv4_number(label) is not None


def _ipv4_number(part: str) -> int | None:
    """One part of an IPv4 address: decimal, octal (leading 0) or hexadecimal (0x); None if it is none."""
    if not part or not part.isascii():
        return None
    radix = 10
    if part[:2].lower() == "0x":
        part, radix = part[2:], 16
    elif len(part) > 1 and part[0] == "0":
        part, radix = part[1:], 8
    if part == "":
        return 0
    try:
        return int(part, radix) if part.isalnum() else None
    except ValueError:
        return None


def _ipv4(labels: list[str]) -> ipaddress.IPv4Address | None:
    """The WHATWG IPv4 parser: one to four parts; every part but the last is one byte, the last fills the rest."""
    if len(labels) > 4:
        return None
    numbers = [_ipv4_number(label) for label in labels]
    if any(n is None for n in numbers):
        return None
    values = [n for n in numbers if n is not None]
    if any(n > 255 for n in values[:-1]) or values[-1] >= 256 ** (5 - len(values)):
        return None
    total = values[-1] + sum(n * 256 ** (3 - i) for i, n in enumerate(values[:-1]))
    return ipaddress.IPv4Address(total)


def _embedded_ipv4(address: ipaddress.IPv6Address) -> tuple[str, ipaddress.IPv4Address] | None:
    if address.ipv4_mapped is not None:
        return "IPv4-mapped", address.ipv4_mapped
    if address.sixtofour is not None:
        return "6to4", address.sixtofour
    if address in _NAT64:
        return "NAT64", ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    if address in _COMPATIBLE and int(address) > 1:
        return "IPv4-compatible", ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def _contains(network: IPNetwork, address: IPAddress) -> bool:
    return network.version == address.version and address in network
