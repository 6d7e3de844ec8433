"""The one exception tree of Tracklane: every error raised on purpose is a `TracklaneError`.

    TracklaneError                 `code` (the public error code) and `message` (a sentence for people)
    ├── InvalidParameter           a field of the input is malformed (names the field; also a ValueError)
    ├── NotFound                   a resource asked for does not exist, or the caller may not see it
    ├── Conflict                   the change clashes with existing state (names the field when known)
    │   └── DuplicateKey           a unique key is taken: storage raises it for every unique violation; a use
    │                              case racing a concurrent writer catches it and re-reads
    ├── Unauthorized               no valid credentials were sent (an API key)
    ├── Forbidden                  the caller may not do this
    ├── PostbackRefused            a conversion or event was refused; `code` is a `RefusalCode`
    ├── IntakeError                a Segment intake request is not accepted, with the status the Segment
    │                              protocol prescribes (its clients retry on 429 and 5xx only)
    ├── RefusedDestination         an outbound request would reach an address it may not (the SSRF rule)
    └── StorageUnavailable         the database cannot be reached or cannot work now: not acknowledged, retry

Storage translates the database driver's errors into this tree at its edge (`storage/database.py`): a
unique violation becomes `DuplicateKey`, a lost or unreachable database `StorageUnavailable`; any other
driver error is a fault and stays what it is. The web layer alone maps the tree to HTTP (`web/errors.py`);
the command line prints `message`.
"""

from __future__ import annotations

from enum import StrEnum


class TracklaneError(Exception):
    """Base of every error the program raises on purpose."""

    code: str = "error"

    def __init__(self, message: str | None = None) -> None:
        super().__init__(message or self.__doc__ or self.code)

    @property
    def message(self) -> str:
        return str(self.args[0])


class InvalidParameter(TracklaneError, ValueError):
    """A parameter is malformed.

    It is also a `ValueError`, so that a rule checked while a body is decoded is reported with its path.
    """

    code = "invalid_parameter"

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.detail = message


class NotFound(TracklaneError):
    """The resource does not exist."""

    code = "not_found"


class Conflict(TracklaneError):
    """The change conflicts with existing state."""

    code = "conflict"

    def __init__(self, message: str | None = None, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class DuplicateKey(Conflict):
    """A unique value is already taken."""


class Unauthorized(TracklaneError):
    """A valid API key is required: send `Authorization: Bearer <key>`."""

    code = "unauthorized"


class Forbidden(TracklaneError):
    """This API key may not do that."""

    code = "forbidden"


class RefusalCode(StrEnum):
    """Why a conversion or event was refused: the public result codes of `/postback` (DESIGN §3.1)."""

    INVALID_TOKEN = "invalid_token"
    UNKNOWN_TRANSACTION = "unknown_transaction"
    UNKNOWN_EVENT = "unknown_event"
    NO_PRIOR_CONVERSION = "no_prior_conversion"
    BASE_CONVERSION_REJECTED = "base_conversion_rejected"
    """An event for a click whose base conversions are all rejected (fraud, say): it is not paid."""
    OUTSIDE_WINDOW = "outside_window"
    INVALID_PARAMETER = "invalid_parameter"
    METHOD_NOT_ENABLED = "method_not_enabled"
    """The offer does not accept conversions by this method (postback, pixel, SDK, Segment, API)."""
    ADVERTISER_INACTIVE = "advertiser_inactive"
    """The offer's advertiser is inactive: its offers take no conversions (and no billable clicks)."""
    BUSY = "busy"
    """Concurrent writers kept colliding; the sender retries (a 503)."""


class PostbackRefused(TracklaneError):
    """A conversion or event was refused.

    `code` is always a `RefusalCode` (a `str`, so JSON and messages show its value); the code may be given
    as its text, and a text that is no refusal code is a bug (`ValueError`).
    """

    code: RefusalCode

    def __init__(self, code: RefusalCode | str, message: str) -> None:
        super().__init__(message)
        self.code = RefusalCode(code)


class IntakeError(TracklaneError):
    """A Segment intake request is not accepted.

    `status` is the answer the Segment protocol prescribes (400 bad body, 401 write key, 404, 429 too many
    at once, 503 retry) and `code` the protocol's error code, answered as `{"code", "message"}`.
    """

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code


class RefusedDestination(TracklaneError):
    """The destination resolves to an address outbound requests may not reach."""

    code = "refused_destination"


class StorageUnavailable(TracklaneError):
    """Storage is unavailable; the request was not acknowledged; retry."""

    code = "unavailable"
