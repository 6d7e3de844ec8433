"""A click's country through a real server: a MaxMind-format database (written here with `mmdb-writer`,
read by MaxMind's own reader) first, then the trusted CDN header, then the registries' allocations bundled
offline; unknown for private addresses and for codes that name no country; and country targeting acting on
what was found. The client address comes from `X-Forwarded-For`, which the server believes from loopback."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from mmdb_writer import MMDBWriter
from netaddr import IPSet
from pydantic import ValidationError

from tests import factories
from tests.conftest import BROWSER_UA
from tests.servers import RunningServer, running_server
from tracklane.settings import Settings


@pytest.fixture
def database(tmp_path: Path) -> Path:
    writer = MMDBWriter(ip_version=6, database_type="GeoLite2-Country", ipv4_compatible=True)
    writer.insert_network(IPSet(["203.0.113.0/24"]), {"country": {"iso_code": "NP", "names": {"en": "Nepal"}}})
    writer.insert_network(IPSet(["198.51.100.0/24"]), {"registered_country": {"iso_code": "CA"}})
    writer.insert_network(IPSet(["2001:db8::/32"]), {"country": {"iso_code": "IN"}})
    path = tmp_path / "countries.mmdb"
    writer.to_db_file(str(path))
    return path


@pytest.fixture
def located(database_url: str, database: Path) -> Iterator[RunningServer]:
    with running_server(database_url, geoip_database=str(database), country_header="CF-IPCountry") as running:
        yield running


def country_of(server: RunningServer, program: tuple[Any, ...], ip: str, **headers: str) -> tuple[str | None, str]:
    """The country the click from `ip` records, and its verdict."""
    _, offer, partner = program
    with httpx.Client(base_url=server.base_url, headers={"User-Agent": BROWSER_UA, "X-Forwarded-For": ip}) as web:
        answer = web.get("/clk", params={"offer_id": offer["id"], "partner_id": partner["id"]}, headers=headers)
        assert answer.status_code == 200, answer.text
        tid = answer.json()["transaction_id"]
    with httpx.Client(base_url=server.base_url, headers={"Authorization": f"Bearer {server.admin_key}"}) as api:
        click = api.get(f"/api/v1/clicks/{tid}").json()
    return click["country"], click["reject_reason"] or click["verdict"]


def test_the_database_comes_first_then_the_header_then_the_registries(located: RunningServer) -> None:
    with httpx.Client(base_url=located.base_url, headers={"Authorization": f"Bearer {located.admin_key}"}) as api:
        program = factories.program(api)
    assert country_of(located, program, "203.0.113.5", **{"CF-IPCountry": "US"})[0] == "NP", "the database first"
    assert country_of(located, program, "198.51.100.7")[0] == "CA", "its registered country when no other"
    assert country_of(located, program, "2001:db8::1")[0] == "IN"
    assert country_of(located, program, "8.8.8.8", **{"CF-IPCountry": "de"})[0] == "DE", "then the CDN's header"
    assert country_of(located, program, "8.8.8.8")[0] == "US", "then the registries' allocation"
    assert country_of(located, program, "1.0.16.1")[0] == "JP"
    assert country_of(located, program, "10.1.2.3", **{"CF-IPCountry": "XX"})[0] is None, "XX is Cloudflare's unknown"
    assert country_of(located, program, "192.168.0.9", **{"CF-IPCountry": "T1"})[0] is None, "T1 is Tor"
    assert country_of(located, program, "10.1.2.3", **{"CF-IPCountry": "USA"})[0] is None


def test_country_targeting_acts_on_the_country_found(located: RunningServer) -> None:
    with httpx.Client(base_url=located.base_url, headers={"Authorization": f"Bearer {located.admin_key}"}) as api:
        program = factories.program(
            api, targeting={"countries": ["NP", "JP"]}, fallback_url="https://elsewhere.example/"
        )
    assert country_of(located, program, "203.0.113.77") == ("NP", "accepted")
    assert country_of(located, program, "1.0.16.1") == ("JP", "accepted")
    assert country_of(located, program, "8.8.4.4") == ("US", "targeting:country")
    assert country_of(located, program, "127.0.0.1") == (None, "targeting:country"), "unknown is refused by a list"


def test_without_a_database_the_header_then_the_registries(server: RunningServer, api: httpx.Client) -> None:
    program = factories.program(api)
    assert country_of(server, program, "8.8.8.8")[0] == "US"
    assert country_of(server, program, "203.0.113.5")[0] is None, "documentation addresses belong to no country"


def test_a_database_that_is_not_there_stops_the_start_naming_the_setting(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="geoip_database"):
        Settings(database_url="sqlite:///x.db", geoip_database=str(tmp_path / "missing.mmdb"))  # type: ignore[arg-type]
