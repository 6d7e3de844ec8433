"""The one exception tree of the domain; the web layer alone maps it to HTTP.

    TracklaneError
    ├── InvalidParameter          a field of the input is malformed (names the field)
    ├── NotFound                  a resource asked for by id does not exist
    ├── Conflict                  the change clashes with existing state
    ├── Forbidden                 the caller may not do this
    └── PostbackRefused           a conversion or event was refused; `code` is the public result code
"""

from __future__ import annotations


class TracklaneError(Exception):
    """Base of every error the domain raises on purpose."""

    code = "error"

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


class Forbidden(TracklaneError):
    """This API key may not do that."""

    code = "forbidden"


class PostbackRefused(TracklaneError):
    """A conversion or event was refused; `code` is one of the public postback result codes."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
