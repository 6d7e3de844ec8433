"""Ids as requests write them: positive integers below 2^63 (a signed 64-bit column), in ASCII digits only.

Python's `int` also reads `1_000`, ` 7 ` and digits of every script (an Arabic-Indic one is an id 1 to
it), and `"²".isdigit()` is true while `int("²")` fails. A request's id is read here instead: only
`[0-9]+` is an id, and one that no column can hold is refused naming its field, not failed in the driver.
"""

from __future__ import annotations

import re
from typing import Final

from tracklane.domain.errors import InvalidParameter

MAX_ID: Final = 2**63 - 1
_DIGITS = re.compile(r"[0-9]+")
_MAX_DIGITS: Final = len(str(MAX_ID))


def id_or_none(raw: object) -> int | None:
    """The id `raw` writes (ASCII digits, or an int from a JSON body), or None when it is not one."""
    if isinstance(raw, str):
        if _DIGITS.fullmatch(raw) is None:
            return None
        digits = raw.lstrip("0")
        if len(digits) > _MAX_DIGITS:
            return None
        raw = int(digits or "0")
    if isinstance(raw, bool) or not isinstance(raw, int) or not 0 < raw <= MAX_ID:
        return None
    return raw


def parse_id(raw: object, field: str) -> int:
    """The id `raw` writes, or `InvalidParameter` naming `field`."""
    value = id_or_none(raw)
    if value is None:
        missing = raw is None or raw == ""
        raise InvalidParameter(
            field, "is required" if missing else "must be a positive integer below 2^63, written with the digits 0-9"
        )
    return value
