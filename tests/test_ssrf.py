"""The SSRF guard over every address class: literal addresses, names that resolve to private addresses
(through the system resolver and through a resolver injected at the port), pinning, and the allow-list;
every spelling of loopback refused by one parser when a URL is saved (400 naming `url`) and when it is
sent; a destination refused at send time failing its delivery at once, counted towards deactivation."""

from __future__ import annotations

import asyncio
import re
import ssl
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests import factories
from tests.receiver import DELIVERY, Receiver, poll, receiving
from tests.servers import RunningServer, running_server
from tracklane.bootstrap import utc_now
from tracklane.delivery.guard import NameNotFound, PinnedResolver, Resolver
from tracklane.delivery.sender import Sender
from tracklane.delivery.worker import DeliveryWorker
from tracklane.domain.delivery import Delivery, DeliveryKind, DeliveryStatus
from tracklane.domain.destinations import AllowList, RefusedDestination, parse_allow_list, refuse_destination
from tracklane.domain.errors import InvalidParameter
from tracklane.domain.retry import POSTBACK_FAILURE_LIMIT
from tracklane.services.deliveries import OutboundMessage

BROWSER = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36"

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


def check(transport: PinnedResolver, url: str) -> str:
    return asyncio.run(transport.check(url))


@pytest.mark.parametrize(("address", "kind"), REFUSED, ids=[f"{a} {k}" for a, k in REFUSED])
def test_non_public_literal_addresses_are_refused(address: str, kind: str) -> None:
    host = f"[{address}]" if ":" in address else address
    with pytest.raises(RefusedDestination):
        check(PinnedResolver(AllowList()), f"https://{host}/hook")


@pytest.mark.parametrize("address", PUBLIC)
def test_public_addresses_pass(address: str) -> None:
    host = f"[{address}]" if ":" in address else address
    assert check(PinnedResolver(AllowList()), f"https://{host}/hook")


def test_a_localhost_name_is_refused_without_being_resolved() -> None:
    async def resolver(host: str, port: int) -> list[str]:
        raise AssertionError(f"{host} must not be resolved")

    with pytest.raises(RefusedDestination, match="localhost is loopback"):
        check(PinnedResolver(AllowList(), resolver), "http://localhost:8080/hook")


def test_a_name_that_resolves_to_a_private_address_is_refused() -> None:
    async def resolver(host: str, port: int) -> list[str]:
        return ["127.0.0.1"]

    with pytest.raises(
        RefusedDestination, match=re.escape("hooks.partner.example resolves to 127.0.0.1, which is loopback")
    ):
        check(PinnedResolver(AllowList(), resolver), "http://hooks.partner.example:8080/hook")


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

    transport = PinnedResolver(AllowList(), resolver)
    if refused:
        with pytest.raises(RefusedDestination):
            check(transport, "https://hooks.partner.example/x")
    else:
        assert check(transport, "https://hooks.partner.example/x") == answers[0]


def test_unknown_names_are_the_receivers_failure() -> None:
    with pytest.raises(NameNotFound):
        check(PinnedResolver(AllowList()), "https://does-not-exist.invalid/x")


def test_allow_list_admits_chosen_networks_and_hosts_only() -> None:
    allow = parse_allow_list("127.0.0.1/32, ::1, internal-hooks")
    assert check(PinnedResolver(allow), "http://127.0.0.1:9/x") == "127.0.0.1"
    assert check(PinnedResolver(allow), "http://[::1]:9/x") == "::1"
    with pytest.raises(RefusedDestination):
        check(PinnedResolver(allow), "http://10.0.0.1/x")

    async def resolver(host: str, port: int) -> list[str]:
        return ["10.9.8.7"]

    assert check(PinnedResolver(allow, resolver), "http://internal-hooks/x") == "10.9.8.7"
    with pytest.raises(RefusedDestination):
        check(PinnedResolver(allow, resolver), "http://other-internal/x")


def test_the_request_goes_to_the_vetted_address_with_the_original_host_header() -> None:
    """A name resolved by our resolver is dialled at the address we vetted, never re-resolved."""
    asked: list[str] = []

    async def resolver(host: str, port: int) -> list[str]:
        asked.append(host)
        return ["127.0.0.1"]

    with receiving() as receiver:
        port = receiver.url.rsplit(":", 1)[1]
        guard = PinnedResolver(parse_allow_list("127.0.0.1/32"), resolver)
        (report,) = _send_all(guard, [f"http://hooks.partner.example:{port}/pinned?x=1"])
        assert (report.result.status_code, report.result.error_class) == (200, None)
        (request,) = receiver.wait_for(1)
        assert request.headers["host"] == f"hooks.partner.example:{port}"
        assert request.target == "/pinned?x=1"
        assert asked == ["hooks.partner.example"]


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

    guard = PinnedResolver(parse_allow_list("127.0.0.1/32"), resolver)
    trusting = ssl.create_default_context(cafile=str(cert))
    with receiving(tls=server_tls) as receiver:
        (report,) = _send_all(guard, [f"https://hooks.partner.example:{receiver.port}/tls"], trusting)
        assert (report.result.status_code, report.result.error_class) == (200, None)
        assert names == ["hooks.partner.example"]
        assert receiver.wait_for(1)[0].headers["host"] == f"hooks.partner.example:{receiver.port}"
        (impostor,) = _send_all(guard, [f"https://impostor.partner.example:{receiver.port}/tls"], trusting)
        assert impostor.result.error_class == "tls"
        assert "certificate" in (impostor.error or "")


# Every spelling of a loopback destination: each is refused when saved and when sent (`{port}` is a real
# receiver's, so a spelling that slipped through would reach it). The IPv4 forms are the WHATWG URL
# standard's (what browsers read): decimal, octal, hexadecimal, one to four parts, padded, a final dot,
# percent-escaped, full-width; then IPv6 forms, embedded IPv4, zone ids, localhost names, user-info tricks.
LOOPBACK = [
    "127.0.0.1", "127.1", "127.0.1", "2130706433", "0x7f000001", "0X7F000001", "0x7f.1", "0x7f.0.1",
    "0x7f.0.0.1", "0x7F.0x0.0x0.0x1", "0x0000007f.1", "0177.0.0.1", "0177.1", "017700000001", "0177.0.0.01",
    "0000177.0.0.1", "127.000.000.001", "127.0x0.0.1", "127.0.0.0x1", "127.0.0.1.", "127.1.", "2130706433.",
    "127.0.0.2", "127.255.255.254", "127.127.127.127", "2130706434", "0x7fffffff", "%31%32%37.0.0.1",
    "127%2E0%2E0%2E1", "\uff11\uff12\uff17\uff0e\uff10\uff0e\uff10\uff0e\uff11", "127\u30020\u30020\u30021",
    "[::1]", "[0:0:0:0:0:0:0:1]", "[0000:0000:0000:0000:0000:0000:0000:0001]", "[::0:1]", "[0::1]",
    "[::ffff:127.0.0.1]", "[::ffff:7f00:1]", "[::ffff:7f00:0001]", "[0:0:0:0:0:ffff:127.0.0.1]",
    "[::127.0.0.1]", "[::7f00:1]", "[0:0:0:0:0:0:127.0.0.1]", "[::ffff:0:127.0.0.1]", "[64:ff9b::127.0.0.1]",
    "[64:ff9b::7f00:1]", "[2002:7f00:1::]", "[2002:7f00:1::1]", "[::1%25lo]",
    "localhost", "LOCALHOST", "localhost.", "LocalHost.", "foo.localhost", "a.b.localhost", "x.localhost.",
    "\uff4c\uff4f\uff43\uff41\uff4c\uff48\uff4f\uff53\uff54", "localhos%74",
    "user:password@127.0.0.1", "hooks.partner.example@127.1",
]  # fmt: skip
# Other refused addresses in disguise, and hosts no client reads alike (refused as invalid).
DISGUISED = [
    "2852039166", "0xa9fea9fe", "0251.0376.0251.0376", "169.254.43518", "[::ffff:169.254.169.254]",
    "10.1", "0x0a000001", "012.0.0.1", "192.168.257", "0xc0.0xa8.1.1", "0", "0x0", "0.0.0.0.", "[::]",
    "[fe80::1%25eth0]", "[fd00::1]", "[::ffff:10.0.0.1]", "100.64.1", "3232235777",
    "1.2.3.4.5", "256.0.0.1", "0x100.0.0.1", "08.0.0.1", "1.2.3.09", "4294967296", "0x1g.1", "example.123",
    "[::ffff:127.1]", "[::1", "127.0.0.1%", "%zz.example", "exa mple.com", "under_score..example",
    "127.0.0.1\\@hooks.partner.example",
]  # fmt: skip


def url_of(host: str, port: int = 9) -> str:
    return f"http://{host}:{port}/hook?x=1"


def test_the_matrix_has_every_spelling_once() -> None:
    assert len(LOOPBACK) >= 46 and len(set(LOOPBACK)) == len(LOOPBACK)
    assert len(set(DISGUISED)) == len(DISGUISED)


@pytest.mark.parametrize("host", LOOPBACK + DISGUISED)
def test_the_save_rule_refuses_every_spelling_naming_the_field(host: str) -> None:
    with pytest.raises(InvalidParameter) as refused:
        refuse_destination(url_of(host), AllowList(), "url")
    assert refused.value.field == "url"


@pytest.mark.parametrize("url", ["https://hooks.example.com/x", "http://93.184.216.34:8080/", "http://1.1/",
                                 "https://b\u00fccher.example/p", "http://user@example.com./?q={sub1}"])  # fmt: skip
def test_the_save_rule_keeps_public_destinations(url: str) -> None:
    refuse_destination(url, AllowList(), "url")


def test_every_spelling_is_refused_when_saved_with_400_naming_url(api: httpx.Client) -> None:
    partner = factories.partner(api)
    accepted: list[str] = []
    for host in LOOPBACK + DISGUISED:
        for path, body in (("/api/v1/webhooks", {}), ("/api/v1/partner-postbacks", {"partner_id": partner["id"]})):
            answer = api.post(path, json={**body, "url": url_of(host)})
            if answer.status_code != 400 or answer.json().get("field") != "url":
                accepted.append(f"{path} {host!r}: {answer.status_code} {answer.text[:120]}")
    assert accepted == []
    assert api.get("/api/v1/webhooks").json()["data"] == []
    assert api.get("/api/v1/partner-postbacks").json()["data"] == []


def _message(url: str) -> OutboundMessage:
    now = datetime.now(UTC)
    delivery = Delivery(1, "msg_test", DeliveryKind.POSTBACK, None, 1, "conversion.registered", "GET", url, None,
                        DeliveryStatus.SENDING, 0, now, None, None, now, now)  # fmt: skip
    return OutboundMessage(delivery, url, "GET", None)


def _send_all(guard: PinnedResolver, urls: list[str], tls: ssl.SSLContext | None = None) -> list[Any]:
    async def run() -> list[Any]:
        sender = Sender(guard, 5, utc_now, tls)
        try:
            return [await sender.send(_message(url)) for url in urls]
        finally:
            await sender.aclose()

    return asyncio.run(run())


def test_every_spelling_is_refused_at_send_time_by_the_same_rules(receiver: Receiver) -> None:
    urls = [url_of(host, receiver.port) for host in LOOPBACK + DISGUISED]
    reports = _send_all(PinnedResolver(AllowList()), urls)
    wrong = [(url, r.result.error_class, r.error) for url, r in zip(urls, reports, strict=True)
             if r.result.error_class != "refused_destination"]  # fmt: skip
    assert wrong == []
    assert receiver.received == [], "no spelling reached the receiver"


def test_a_spelling_of_an_allowed_address_reaches_it(receiver: Receiver) -> None:
    """Where 127.0.0.1 is allowed, its odd spellings are sent to it (not failed as our own error forever)."""
    hosts = ["0177.0.0.1", "127.000.000.001", "127.1", "2130706433", "0x7f000001", "127.0.0.1.", "%31%32%37.0.0.1"]
    reports = _send_all(PinnedResolver(parse_allow_list("127.0.0.1/32")), [url_of(h, receiver.port) for h in hosts])
    assert [(r.result.status_code, r.result.error_class) for r in reports] == [(200, None)] * len(hosts)
    assert [r.target for r in receiver.wait_for(len(hosts))] == ["/hook?x=1"] * len(hosts)
    assert {r.headers["host"] for r in receiver.received} == {f"127.0.0.1:{receiver.port}"}


def _worker(hub: RunningServer, resolver: Resolver, allow: AllowList) -> Callable[[], None]:
    """Start a delivery worker over the server's database whose SSRF guard resolves names with `resolver`;
    the function that stops it."""
    loop = asyncio.new_event_loop()
    worker = DeliveryWorker(
        hub.container.deliveries, lambda: Sender(PinnedResolver(allow, resolver), 5, utc_now), 8, 0.05
    )
    thread = threading.Thread(target=loop.run_until_complete, args=(worker.run(),), daemon=True)
    thread.start()

    def stop() -> None:
        loop.call_soon_threadsafe(worker.stop)
        thread.join(timeout=30)
        loop.close()

    return stop


def test_a_destination_refused_at_send_time_fails_at_once_and_counts_towards_deactivation(
    database_url: str, receiver: Receiver
) -> None:
    """A name that now resolves to loopback (not allowed) on the port of a real receiver: each delivery
    fails at its first attempt saying why, 10 of them deactivate the partner postback, and a webhook
    endpoint failing so for the whole period is disabled; nothing ever reaches the receiver."""

    async def resolver(host: str, port: int) -> list[str]:
        assert host == "hooks.partner.example"
        return ["127.0.0.1"]

    settings = {**DELIVERY, "delivery_in_serve": False, "webhook_disable_after_hours": 1 / 3600}
    with (
        running_server(database_url, **settings) as hub,
        # a patient client: on a busy machine saving the endpoint once took longer than httpx's 5 s default
        httpx.Client(base_url=hub.base_url, headers={"Authorization": f"Bearer {hub.admin_key}"}, timeout=30) as admin,
        httpx.Client(base_url=hub.base_url, headers={"User-Agent": BROWSER}, follow_redirects=False) as visitor,
    ):
        base = f"http://hooks.partner.example:{receiver.port}"
        hook = factories.created(admin.post("/api/v1/webhooks", json={"url": base + "/hook"}))
        advertiser, offer, partner = factories.program(admin)
        pb = factories.created(admin.post("/api/v1/partner-postbacks", json={
            "partner_id": partner["id"], "url": base + "/pb?tid={transaction_id}"}))  # fmt: skip
        for _ in range(POSTBACK_FAILURE_LIMIT):
            tid = factories.click(visitor, offer["id"], partner["id"])
            converted = visitor.get("/postback", params={"transaction_id": tid, "secure": advertiser["postback_token"]})
            assert converted.json()["result"] == "accepted", converted.text
        stop = _worker(hub, resolver, AllowList())
        try:
            postbacks = poll(lambda: (found := _deliveries(admin, postback_id=pb["id"])) and all(
                d["status"] == "failed" for d in found) and len(found) == POSTBACK_FAILURE_LIMIT and found)  # fmt: skip
            stopped = poll(lambda: (p := admin.get(f"/api/v1/partner-postbacks/{pb['id']}").json())["status"]
                           == "inactive" and p)  # fmt: skip
            failing = admin.get(f"/api/v1/webhooks/{hook['id']}").json()
            assert failing["failing_since"] is not None
            threading.Event().wait(1.2)  # past the (scaled-down) period of failures without a success
            factories.advertiser(admin)
            disabled = poll(lambda: (h := admin.get(f"/api/v1/webhooks/{hook['id']}").json())["status"]
                            == "disabled" and h)  # fmt: skip
        finally:
            stop()
        attempt_logs = [admin.get(f"/api/v1/deliveries/{d['id']}").json()["attempt_log"] for d in postbacks]
    assert {d["attempts"] for d in postbacks} == {1}, "never retried"
    assert {len(log) for log in attempt_logs} == {1}
    assert {(a["error_class"], a["verdict"], a["status_code"]) for (a,) in attempt_logs} == {
        ("refused_destination", "failure", None)
    }
    assert all("hooks.partner.example resolves to 127.0.0.1, which is loopback" in a["error"] for (a,) in attempt_logs)
    assert stopped["deactivated_reason"] == f"{POSTBACK_FAILURE_LIMIT} consecutive failures within 72 hours"
    assert disabled["disabled_reason"].startswith("every delivery failed for")
    assert receiver.received == []


def _deliveries(admin: httpx.Client, **params: Any) -> list[dict[str, Any]]:
    answer = admin.get("/api/v1/deliveries", params={"limit": 100, **params})
    assert answer.status_code == 200, answer.text
    data: list[dict[str, Any]] = answer.json()["data"]
    return data
