"""Small rules of the catalogue's inputs: names, e-mail addresses and the bounds of the attribution window.

The request bodies (`tracklane.resources`) apply them; each error names its field.
"""

from __future__ import annotations

import re

from tracklane.domain.errors import InvalidParameter

MAX_WINDOW_DAYS = 365
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


def parse_name(raw: object, field: str = "name") -> str:
    if not isinstance(raw, str) or not raw.strip():
        raise InvalidParameter(field, "is required and must be a non-empty string")
    if len(raw.strip()) > 200:
        raise InvalidParameter(field, "must be at most 200 characters")
    return raw.strip()


def parse_email(raw: object) -> str:
    if not isinstance(raw, str) or not _EMAIL.match(raw.strip()) or len(raw) > 320:
        raise InvalidParameter("email", "must be an email address")
    return raw.strip().lower()
