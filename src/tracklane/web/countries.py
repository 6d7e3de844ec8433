"""The country of a visitor, as a click records it: ISO 3166-1 alpha-2, or None when unknown.

Looked up, in order, in a MaxMind-format database when one is configured (`TRACKLANE_GEOIP_DATABASE`:
GeoLite2-Country or City, GeoIP2, DB-IP's IP-to-Country Lite), in the header a trusted CDN or proxy sets
(`TRACKLANE_COUNTRY_HEADER`, e.g. Cloudflare's `CF-IPCountry`), then in the Regional Internet Registries'
allocations that `iptocc` bundles (offline; the country an address block is registered to, which agrees
with MaxMind for about 95 % of IPv4 addresses). Each source that does not know the address passes it to the
next. Private, reserved and malformed addresses, and codes that are not two letters (Cloudflare's `XX`
unknown and `T1` Tor included), are unknown.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import iptocc
import maxminddb

NOT_COUNTRIES = frozenset({"XX", "T1", "ZZ"})


class Countries:
    def __init__(self, database: Path | None, header: str | None) -> None:
        self._reader: Any = None if database is None else maxminddb.open_database(str(database))
        self._header = header.lower() if header else None

    def of(self, ip: str | None, headers: Mapping[str, str]) -> str | None:
        found = self._from_database(ip)
        if found is None and self._header is not None:
            found = country_code(headers.get(self._header))
        if found is None and ip:
            found = country_code(iptocc.country_code(ip))
        return found

    def _from_database(self, ip: str | None) -> str | None:
        if self._reader is None or not ip:
            return None
        try:
            record = self._reader.get(ip)
        except ValueError:  # not an IP address
            return None
        if not isinstance(record, dict):
            return None
        for key in ("country", "registered_country"):
            place = record.get(key)
            if isinstance(place, dict) and (code := country_code(place.get("iso_code"))):
                return code
        return country_code(record.get("country_code"))  # DB-IP's and IPinfo's lite layouts

    def close(self) -> None:
        if self._reader is not None:
            self._reader.close()


def country_code(value: object) -> str | None:
    if not isinstance(value, str) or len(value) != 2 or not value.isascii() or not value.isalpha():
        return None
    code = value.upper()
    return None if code in NOT_COUNTRIES else code
