"""Request bodies from bytes to resource types: JSON numbers stay exact decimals, every error names its field.

msgspec reads the JSON and validates it against the type in one pass; the rules a type adds in
`__post_init__` raise `InvalidParameter`, which msgspec reports with the path of the object at fault,
so a nested error reads `caps[1].limit` or `revenue.amount`.
"""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any, TypeVar

import msgspec

from tracklane.domain.errors import InvalidParameter
from tracklane.domain.money import parse_decimal
from tracklane.resources.fields import Amount

T = TypeVar("T")

_AT = re.compile(r"^(?P<message>.*?)(?: - at `\$(?P<path>[^`]*)`)?$", re.DOTALL)
_MISSING = re.compile(r"^Object missing required field `(?P<field>[^`]+)`$")
_UNKNOWN = re.compile(r"^Object contains unknown field `(?P<field>[^`]+)`$")

_decoders: dict[Any, msgspec.json.Decoder[Any]] = {}


def decode_hook(type_: type, value: object) -> object:
    """Values of the resource field types msgspec does not know: `Amount`."""
    if type_ is Amount:
        if isinstance(value, bool) or not isinstance(value, str | int | Decimal):
            raise ValueError("must be a decimal number")
        try:
            return Amount(parse_decimal(value, "amount"))
        except InvalidParameter as error:
            raise ValueError(error.detail) from None
    raise NotImplementedError(f"no decoder for {type_!r}")


def _decoder(type_: Any) -> msgspec.json.Decoder[Any]:
    """A decoder of `type_`; JSON numbers are read as exact decimals where the type takes an `Amount` (the
    float hook only applies to values msgspec has no type for, which is what `Amount` is to it)."""
    exact = _takes_amount(msgspec.inspect.type_info(type_), set())
    return msgspec.json.Decoder(type_, dec_hook=decode_hook, float_hook=Decimal if exact else None)


def _takes_amount(info: msgspec.inspect.Type, seen: set[int]) -> bool:
    if id(info) in seen:
        return False
    seen.add(id(info))
    if isinstance(info, msgspec.inspect.CustomType):
        return info.cls is Amount
    children: list[msgspec.inspect.Type] = []
    if isinstance(info, msgspec.inspect.StructType | msgspec.inspect.DataclassType):
        children = [field.type for field in info.fields]
    elif isinstance(info, msgspec.inspect.UnionType):
        children = list(info.types)
    elif isinstance(info, msgspec.inspect.ListType | msgspec.inspect.SetType | msgspec.inspect.VarTupleType):
        children = [info.item_type]
    elif isinstance(info, msgspec.inspect.DictType):
        children = [info.value_type]
    elif isinstance(info, msgspec.inspect.Metadata):
        children = [info.type]
    return any(_takes_amount(child, seen) for child in children)


def decode(raw: bytes, type_: type[T]) -> T:
    """The body as a `type_`, or `InvalidParameter` naming the first bad field."""
    decoder = _decoders.get(type_)
    if decoder is None:
        decoder = _decoders[type_] = _decoder(type_)
    try:
        value: T = decoder.decode(raw or b"null")
    except msgspec.ValidationError as error:
        raise _field_error(error) from None
    except msgspec.DecodeError:
        raise InvalidParameter("body", "is not valid JSON (UTF-8)") from None
    except RecursionError:  # arrays or objects nested about 1,000 deep where any JSON is taken
        raise InvalidParameter("body", "is nested too deeply") from None
    if b"\\u0000" in raw or b"\x00" in raw:
        # PostgreSQL cannot store NUL in text: refused alike on both databases, naming where it is.
        where = _nul_path(msgspec.to_builtins(value), "")
        if where is not None:
            raise InvalidParameter(where or "body", "must not contain NUL characters")
    return value


def _nul_path(value: object, path: str) -> str | None:
    """The path of the first string (or key) holding a NUL character, if any."""
    if isinstance(value, str):
        return path if "\x00" in value else None
    if isinstance(value, dict):
        for key, item in value.items():
            inner = f"{path}.{key}" if path else str(key)
            if "\x00" in str(key):
                return inner
            if (found := _nul_path(item, inner)) is not None:
                return found
    if isinstance(value, list):
        for index, item in enumerate(value):
            if (found := _nul_path(item, f"{path}[{index}]")) is not None:
                return found
    return None


def convert(value: object, type_: type[T]) -> T:
    """An already-decoded value (e.g. a form) as a `type_`, with the same errors as `decode`."""
    try:
        return msgspec.convert(value, type_, strict=False, dec_hook=decode_hook)
    except msgspec.ValidationError as error:
        raise _field_error(error) from None


def _field_error(error: msgspec.ValidationError) -> InvalidParameter:
    match = _AT.match(str(error))
    assert match is not None
    message, path = match["message"], _path(match["path"] or "")
    cause = error.__cause__
    if isinstance(cause, InvalidParameter):
        return InvalidParameter(_join(path, cause.field), cause.detail)
    if missing := _MISSING.match(message):
        return InvalidParameter(_join(path, missing["field"]), "is required")
    if unknown := _UNKNOWN.match(message):
        return InvalidParameter(_join(path, unknown["field"]), "is not a field of this resource")
    if not path:
        return InvalidParameter("body", message[0].lower() + message[1:])
    return InvalidParameter(path, message[0].lower() + message[1:].replace("`", ""))


def _path(raw: str) -> str:
    return raw[1:] if raw.startswith(".") else raw


def _join(path: str, field: str) -> str:
    if not path:
        return field
    return f"{path}{field}" if field.startswith("[") else f"{path}.{field}"
