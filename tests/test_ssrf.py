"""The SSRF guard over every address class: literal addresses, names that resolve to private addresses
(through the system resolver and through a resolver injected at the port), pinning, and the allow-list."""

from __future__ import annotations

import asyncio
import ssl
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.receiver import receiving
from tracklane.delivery.guard import NameNotFound, PinnedTransport
from tracklane.domain.destinations import AllowList, RefusedDestination, parse_allow_list

REFUSED = [
    ("127.0.0.1", "loopback"),
    ("127.255.255.254", "loopback"),
    ("10.1.2.3", "private"),
    ("172.16.0.1", "private"),
    ("172.31.255.255", "private"),
    ("192.168.1.1", "private"),
    ("169.254.169.254", "link-local"),  # cloud metadata
    ("100.64.0.1", "CGNAT"),
    ("100.127.255.254", "CGNAT"),
    ("0.0.0.0", "unspecified"),
    ("0.1.2.3", "this network"),
    ("224.0.0.1", "multicast"),
    ("239.255.255.250", "multicast"),
    ("240.0.0.1", "reserved"),
    ("255.255.255.255", "broadcast"),
    ("192.0.0.8", "IETF protocol assignments"),
    ("192.0.2.1", "documentation"),
    ("198.18.0.1", "benchmarking"),
    ("192.88.99.1", "6to4 relay"),
    ("::1", "IPv6 loopback"),
    ("::", "IPv6 unspecified"),
    ("fe80::1", "IPv6 link-local"),
    ("fc00::1", "IPv6 unique local"),
    ("fd12:3456::1", "IPv6 unique local"),
    ("fec0::1", "IPv6 site-local"),
    ("ff02::1", "IPv6 multicast"),
    ("2001:db8::1", "IPv6 documentation"),
    ("::ffff:127.0.0.1", "IPv4-mapped loopback"),
    ("::ffff:10.0.0.1", "IPv4-mapped private"),
    ("::ffff:169.254.169.254", "IPv4-mapped link-local"),
    ("2002:7f00:0001::1", "6to4 of loopback"),
    ("2002:c0a8:0101::1", "6to4 of 192.168.1.1"),
    ("64:ff9b::a00:1", "NAT64 of 10.0.0.1"),
    ("64:ff9b::7f00:1", "NAT64 of loopback"),
    ("64:ff9b:1::1", "local-use NAT64"),
    ("2001::1", "Teredo"),
]
PUBLIC = [
    "93.184.216.34",
    "8.8.8.8",
    "1.1.1.1",
    "2606:4700:4700::1111",
    "::ffff:8.8.8.8",
    "2002:0808:0808::1",
    "64:ff9b::808:808",
]


def check(transport: PinnedTransport, url: str) -> str:
    return asyncio.run(transport.check(url))


@pytest.mark.parametrize(("address", "kind"), REFUSED, ids=[f"{a} {k}" for a, k in REFUSED])
def test_non_public_literal_addresses_are_refused(address: str, kind: str) -> None:
    host = f"[{address}]" if ":" in address else address
    with pytest.raises(RefusedDestination):
        check(PinnedTransport(AllowList()), f"https://{host}/hook")


@pytest.mark.parametrize("address", PUBLIC)
def test_public_addresses_pass(address: str) -> None:
    host = f"[{address}]" if ":" in address else address
    assert check(PinnedTransport(AllowList()), f"https://{host}/hook")


def test_a_name_that_resolves_to_a_private_address_is_refused() -> None:
    with pytest.raises(RefusedDestination, match="localhost resolves to"):
        check(PinnedTransport(AllowList()), "http://localhost:8080/hook")


@pytest.mark.parametrize(
    ("answers", "refused"),
    [
        (["93.184.216.34"], False),
        (["10.0.0.5"], True),
        (["93.184.216.34", "10.0.0.5"], True),  # any private answer refuses the name
        (["2606:4700:4700::1111", "::ffff:192.168.0.1"], True),
        (["169.254.169.254"], True),
    ],
)
def test_every_resolved_address_is_vetted(answers: list[str], refused: bool) -> None:
    async def resolver(host: str, port: int) -> list[str]:
        assert (host, port) == ("hooks.partner.example", 443)
        return answers

    transport = PinnedTransport(AllowList(), resolver)
    if refused:
        with pytest.raises(RefusedDestination):
            check(transport, "https://hooks.partner.example/x")
    else:
        assert check(transport, "https://hooks.partner.example/x") == answers[0]


def test_unknown_names_are_the_receivers_failure() -> None:
    with pytest.raises(NameNotFound):
        check(PinnedTransport(AllowList()), "https://does-not-exist.invalid/x")


def test_allow_list_admits_chosen_networks_and_hosts_only() -> None:
    allow = parse_allow_list("127.0.0.1/32, ::1, internal-hooks")
    assert check(PinnedTransport(allow), "http://127.0.0.1:9/x") == "127.0.0.1"
    assert check(PinnedTransport(allow), "http://[::1]:9/x") == "::1"
    with pytest.raises(RefusedDestination):
        check(PinnedTransport(allow), "http://10.0.0.1/x")

    async def resolver(host: str, port: int) -> list[str]:
        return ["10.9.8.7"]

    assert check(PinnedTransport(allow, resolver), "http://internal-hooks/x") == "10.9.8.7"
    with pytest.raises(RefusedDestination):
        check(PinnedTransport(allow, resolver), "http://other-internal/x")


def test_the_request_goes_to_the_vetted_address_with_the_original_host_header() -> None:
    """A name resolved by our resolver is dialled at the address we vetted, never re-resolved."""

    async def resolver(host: str, port: int) -> list[str]:
        return ["127.0.0.1"]

    async def fetch(url: str) -> httpx.Response:
        transport = PinnedTransport(parse_allow_list("127.0.0.1/32"), resolver)
        async with httpx.AsyncClient(transport=transport, follow_redirects=False) as client:
            return await client.get(url)

    with receiving() as receiver:
        port = receiver.url.rsplit(":", 1)[1]
        response = asyncio.run(fetch(f"http://hooks.partner.example:{port}/pinned?x=1"))
        assert response.status_code == 200
        (request,) = receiver.wait_for(1)
        assert request.headers["host"] == f"hooks.partner.example:{port}"
        assert request.target == "/pinned?x=1"


def test_bad_allow_list_entries_are_named() -> None:
    with pytest.raises(Exception, match="allow_private_destinations"):
        parse_allow_list("10.0.0.0/33")


def _certificate(tmp_path: Path, name: str) -> tuple[Path, Path]:
    """A self-signed certificate for `name` (and its key), written as PEM files."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.now(UTC)
    certificate = (
        x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now - timedelta(hours=1))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )  # fmt: skip
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_path, key_path


def test_https_to_the_pinned_address_keeps_sni_and_checks_the_certificate_against_the_name(tmp_path: Path) -> None:
    cert, key = _certificate(tmp_path, "hooks.partner.example")
    server_tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_tls.load_cert_chain(cert, key)
    names: list[str | None] = []
    server_tls.sni_callback = lambda _socket, name, _context: names.append(name)  # type: ignore[assignment,misc,return-value]

    async def resolver(host: str, port: int) -> list[str]:
        return ["127.0.0.1"]

    async def fetch(url: str) -> httpx.Response:
        inner = httpx.AsyncHTTPTransport(verify=ssl.create_default_context(cafile=str(cert)))
        transport = PinnedTransport(parse_allow_list("127.0.0.1/32"), resolver, inner)
        async with httpx.AsyncClient(transport=transport) as client:
            return await client.get(url)

    with receiving(tls=server_tls) as receiver:
        response = asyncio.run(fetch(f"https://hooks.partner.example:{receiver.port}/tls"))
        assert response.status_code == 200
        assert names == ["hooks.partner.example"]
        assert receiver.wait_for(1)[0].headers["host"] == f"hooks.partner.example:{receiver.port}"
        with pytest.raises(httpx.ConnectError, match="certificate"):
            asyncio.run(fetch(f"https://impostor.partner.example:{receiver.port}/tls"))
