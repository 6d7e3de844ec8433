"""Field types shared by the resources: ids, names, e-mail addresses, URLs, money as it is read and shown."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated, Any, ClassVar, Final, TypeVar

import msgspec

from tracklane.domain.errors import InvalidParameter
from tracklane.domain.ids import MAX_ID

Id = Annotated[int, msgspec.Meta(ge=1, le=MAX_ID, description="a positive integer id")]
Name = Annotated[str, msgspec.Meta(min_length=1, max_length=200, examples=["Acme"])]
Email = Annotated[str, msgspec.Meta(max_length=320, extra_json_schema={"format": "email"},
                                    examples=["partner@example.com"])]  # fmt: skip
Text = Annotated[str, msgspec.Meta(max_length=500)]
Reason = Annotated[str, msgspec.Meta(max_length=500, description="why; kept with the change")]
Url = Annotated[
    str, msgspec.Meta(min_length=1, max_length=4096, examples=["https://shop.example/?tid={transaction_id}"])
]


class Amount(Decimal):
    """An exact decimal in a request body: a JSON number (read exactly, never through a float) or a string of
    ASCII digits with at most one `.` (`"5.00"`; `"1_000"`, `"1e3"` and other scripts' digits are refused),
    as `/postback` reads its `amount`. `resources.decoding` reads it (`decode_hook`)."""

    SCHEMA: ClassVar[dict[str, Any]] = {
        "anyOf": [{"type": "number"}, {"type": "string", "pattern": r"^\s*-?(?:[0-9]+\.?[0-9]*|\.[0-9]+)\s*$"}],
        "description": 'an exact decimal: a JSON number, or a string of ASCII digits with one "."',
        "examples": ["5.00"],
    }


MoneyText = Annotated[str, msgspec.Meta(description="money as a decimal string in the currency's places",
                                        examples=["5.00"])]  # fmt: skip
Currency = Annotated[str, msgspec.Meta(pattern="^[A-Za-z]{3}$", description="ISO 4217 code", examples=["USD"])]

UNSET: Final = msgspec.UNSET
Unset = msgspec.UnsetType

T = TypeVar("T")


def given(value: T | Unset) -> bool:
    """Whether an update field was sent (an absent field is `UNSET`; `null` is a value)."""
    return value is not UNSET


class Struct(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """Base of request bodies: keyword-only, and an unknown field is an error naming it.

    `__post_init__` applies the domain's rules and may normalise a value (trimmed names, lower-case
    e-mail); after decoding a body is treated as a value and never changed.
    """


class View(msgspec.Struct, frozen=True, kw_only=True):
    """Base of representations: what one role is shown of a resource.

    Subclasses repeat `frozen=True` (type checkers do not inherit it through `dataclass_transform`).
    """


def instant(raw: str, field: str) -> datetime:
    """An ISO 8601 date or date-time as an aware UTC time; without a zone it is UTC."""
    try:
        value = datetime.fromisoformat(raw.replace("Z", "+00:00"))
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    except ValueError:
        raise InvalidParameter(field, "must be an ISO 8601 date or date-time") from None
    except OverflowError:  # 0001-01-01T00:00+01:00 is a valid date-time before year 1 in UTC
        raise InvalidParameter(field, "is out of range once converted to UTC") from None
