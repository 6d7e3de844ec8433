"""Reading Segment-spec messages: the batch envelope, per-message validation, ids, and timestamps.

A message is checked on its own: a bad one is refused with a reason naming the field (a JSON path), the
others of its batch are kept. Every value a message carries must be storable as it is on every database:
no NUL character, no lone surrogate (an invalid UTF-8 byte reads as one), no `NaN` or `Infinity`, at
most `MAX_DEPTH` levels of nesting, timestamps within years 1 to 9999 in UTC; the size limit counts the
message's compact UTF-8 JSON. A batch's `context` and `integrations` are merged under each message's own
(the message's keys win).

Timestamps (`_times`): a message from a client gets Segment's correction of the client's clock,
`timestamp = receivedAt - (sentAt - originalTimestamp)`, where `originalTimestamp` is the message's own,
else its `timestamp` (Segment's libraries send the call time, or the time the app passed, as `timestamp`:
Segment corrects that one too). A message with both an `originalTimestamp` and a `timestamp` (RudderStack's
libraries stamp `originalTimestamp` themselves and pass the app's `timestamp` through) keeps that
`timestamp` as it is. Without a `sentAt` nothing is corrected. A message that already went through Segment
(relayed by its Webhooks destination, or forwarded to a batch route by a destination function: it carries
the `receivedAt` that only Segment's servers set) keeps Segment's final `timestamp` and `receivedAt`.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from tracklane.domain.errors import InvalidParameter

MAX_REQUEST_BYTES = 500 * 1024
MAX_MESSAGE_BYTES = 32 * 1024
MAX_DEPTH = 64
MAX_ID = 100
MAX_TEXT = 255

TYPES = ("identify", "track", "page", "screen", "group", "alias")
TYPE_BY_PATH = {t: t for t in TYPES} | {t[0]: t for t in TYPES}

_TIMESTAMP = re.compile(
    r"^(\d{4})-(\d{1,2})-(\d{1,2})[T ](\d{1,2}):(\d{2})(?::(\d{2})(?:[.,](\d+))?)?\s*(Z|z|[+-]\d{2}(?::?\d{2})?)?$",
    re.ASCII,
)
_SURROGATE = re.compile("[\ud800-\udfff]")


@dataclass(frozen=True, slots=True)
class Message:
    """One normalised Segment call."""

    type: str
    message_id: str
    user_id: str | None
    anonymous_id: str | None
    event: str | None
    name: str | None
    properties: Mapping[str, Any]
    traits: Mapping[str, Any]
    context: Mapping[str, Any]
    group_id: str | None
    previous_id: str | None
    timestamp: datetime
    original_timestamp: datetime
    sent_at: datetime | None
    received_at: datetime
    raw: Mapping[str, Any]
    integrations: Mapping[str, Any]
    relayed: bool

    @property
    def payload(self) -> dict[str, Any]:
        """The message as it is kept: as sent, with its normalised context, and its normalised integrations
        when it or its batch named any."""
        body = {**self.raw, "context": dict(self.context)}
        if self.integrations or "integrations" in self.raw:
            body["integrations"] = dict(self.integrations)
        return body

    @property
    def identities(self) -> tuple[str, ...]:
        """The keys this message names its person by: `user:<userId>` and `anonymous:<anonymousId>`."""
        found = []
        if self.user_id:
            found.append(f"user:{self.user_id}")
        if self.anonymous_id:
            found.append(f"anonymous:{self.anonymous_id}")
        return tuple(found)


@dataclass(frozen=True, slots=True)
class Unreadable:
    """A message of a batch that could not even be parsed; reading it raises its reason."""

    error: InvalidParameter


@dataclass(frozen=True, slots=True)
class Envelope:
    """What one request carried: its messages (still raw), the batch-level fields and the body's write key.

    `text_of(index)` gives a message's text as sent, when the envelope was read from a body."""

    items: list[object]
    batch: Mapping[str, Any]
    write_key: str | None
    text_of: Callable[[int], str] | None = None

    def raw_text(self, index: int) -> str:
        """The message's text as sent, else its JSON (what is kept of a refused message)."""
        if self.text_of is not None:
            return self.text_of(index)
        try:
            return json.dumps(self.items[index], default=str)
        except (RecursionError, ValueError):
            return ""


def read_envelope(body: object, path_type: str | None) -> Envelope:
    """Split a request body: `{"batch": [...]}` for batch routes, one message for `/v1/{type}` routes.

    `path_type` is the type a single-message route implies, or None for `/v1/batch`, `/v1/b`, `/v1/import`.
    A JSON array (Segment Webhooks batch mode) is a batch too.
    """
    if isinstance(body, list):
        return Envelope(items=body, batch={}, write_key=None)
    if not isinstance(body, dict):
        raise InvalidParameter("body", "must be a JSON object")
    if path_type is not None:
        return Envelope(items=[{**body, "type": path_type}], batch={}, write_key=_write_key(body))
    items = body.get("batch")
    if not isinstance(items, list):
        raise InvalidParameter("batch", "must be a list of messages")
    key = _write_key(body)
    if key is None:
        key = next((k for item in items if isinstance(item, dict) and (k := _write_key(item))), None)
    return Envelope(items=items, batch=body, write_key=key)


def _write_key(body: Mapping[str, Any]) -> str | None:
    value = body.get("writeKey")
    return value.strip() or None if isinstance(value, str) else None


def read_message(
    raw: object,
    batch: Mapping[str, Any],
    received_at: datetime,
    *,
    trusted: bool,
    sent_header: str | None = None,
    client_ip: str | None = None,
) -> Message:
    """Validate and normalise one message; raises `InvalidParameter` naming the field when it must be dropped.

    `trusted`: the message comes from Segment itself (its times are final); a message carrying Segment's
    `receivedAt` is treated so too. `client_ip` (the connection's address) fills `context.ip` of
    client-side messages, as Segment does.
    """
    if isinstance(raw, Unreadable):
        raise raw.error
    if not isinstance(raw, dict):
        raise InvalidParameter("message", "must be a JSON object")
    check_value(raw)
    for field in ("context", "integrations"):
        if isinstance(outer := batch.get(field), dict):
            check_value(outer, field)
    size = len(json.dumps(raw, ensure_ascii=False, separators=(",", ":"), default=str).encode())
    if size > MAX_MESSAGE_BYTES:
        raise InvalidParameter("message", f"is {size} bytes; at most {MAX_MESSAGE_BYTES} are accepted")
    kind = raw.get("type")
    if kind not in TYPES:
        raise InvalidParameter("type", f"must be one of {', '.join(TYPES)}")
    user_id, anonymous_id = _id(raw, "userId"), _id(raw, "anonymousId")
    group_id, previous_id = _id(raw, "groupId"), _id(raw, "previousId")
    _check_identity(kind, user_id, anonymous_id, group_id, previous_id)
    event = _text(raw, "event")
    if kind == "track" and event is None:
        raise InvalidParameter("event", "is required for a track call")
    relayed = trusted or forwarded_by_segment(raw)
    original, timestamp, sent_at, received = _times(raw, batch, received_at, relayed, sent_header)
    context = _merged(batch, raw, "context")
    integrations = _merged(batch, raw, "integrations")
    if client_ip and not relayed and "ip" not in context and _client_side(context):
        context["ip"] = client_ip
    traits = _object(raw, "traits")
    if kind == "identify" and isinstance(context.get("traits"), dict):
        traits = {**context["traits"], **traits}  # RudderStack sends identify traits in context.traits
    return Message(
        type=kind, message_id=_message_id(raw), user_id=user_id, anonymous_id=anonymous_id, event=event,
        name=_text(raw, "name"), properties=_object(raw, "properties"), traits=traits,
        context=context, group_id=group_id, previous_id=previous_id,
        timestamp=timestamp, original_timestamp=original, sent_at=sent_at, received_at=received, raw=raw,
        integrations=integrations, relayed=relayed,
    )  # fmt: skip


def forwarded_by_segment(raw: Mapping[str, Any]) -> bool:
    """Whether the message already went through Segment: it carries `receivedAt`, which Segment's servers
    set and no client library sends (a destination function posting Segment's events to `/v1/batch`)."""
    value = raw.get("receivedAt")
    return isinstance(value, str) and bool(value.strip())


class _Unstorable(Exception):
    """A value no database stores as it is; `where` collects its path on the way out."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason
        self.where: list[str] = []


def check_value(value: object, field: str = "") -> None:
    """Refuse (`InvalidParameter` naming the JSON path) a value with a NUL character or a lone surrogate in
    any string or key, `NaN` or `Infinity`, or more than `MAX_DEPTH` levels of nesting."""
    try:
        _check(value, 0)
    except _Unstorable as error:
        path = field
        for part in reversed(error.where):
            path = f"{path}{part}" if part.startswith("[") or not path else f"{path}.{part}"
        raise InvalidParameter(path or "message", error.reason) from None


def _check(value: object, depth: int) -> None:
    if isinstance(value, str):
        _check_text(value)
    elif isinstance(value, dict):
        if depth >= MAX_DEPTH:
            raise _Unstorable(f"is nested deeper than {MAX_DEPTH} levels")
        for key, item in value.items():
            try:
                _check_text(key)
                _check(item, depth + 1)
            except _Unstorable as error:
                error.where.append(key if not _bad_text(key) else "<key>")
                raise
    elif isinstance(value, list):
        if depth >= MAX_DEPTH:
            raise _Unstorable(f"is nested deeper than {MAX_DEPTH} levels")
        for index, item in enumerate(value):
            try:
                _check(item, depth + 1)
            except _Unstorable as error:
                error.where.append(f"[{index}]")
                raise
    elif isinstance(value, float):  # the parser reads NaN and Infinity as floats (other numbers are exact)
        raise _Unstorable("must be a finite number (NaN and Infinity are not JSON)")
    elif isinstance(value, Decimal) and not value.is_finite():
        raise _Unstorable("must be a finite number")


def _bad_text(text: str) -> bool:
    return "\x00" in text or (not text.isascii() and _SURROGATE.search(text) is not None)


def _check_text(text: str) -> None:
    if "\x00" in text:
        raise _Unstorable("contains a NUL character")
    if not text.isascii() and _SURROGATE.search(text) is not None:
        raise _Unstorable("is not valid Unicode (a lone surrogate or an invalid UTF-8 byte)")


def _client_side(context: Mapping[str, Any]) -> bool:
    """Browser and mobile libraries (or `context.direct: true`): their connection is the user's."""
    library = context.get("library")
    name = library.get("name") if isinstance(library, dict) else None
    return (
        context.get("direct") is True
        or context.get("channel") in ("browser", "mobile", "client")
        or (
            isinstance(name, str)
            and name.startswith(
                (
                    "analytics.js",
                    "analytics-ios",
                    "analytics-android",
                    "analytics-kotlin",
                    "analytics-swift",
                    "RudderLabs JavaScript",
                )
            )
        )
    )


def _check_identity(
    kind: str, user_id: str | None, anonymous_id: str | None, group_id: str | None, previous_id: str | None
) -> None:
    if kind == "alias":
        if previous_id is None or user_id is None:
            raise InvalidParameter("previousId", "an alias call needs previousId and userId")
        return
    if kind == "group" and group_id is None:
        raise InvalidParameter("groupId", "is required for a group call")
    if user_id is None and anonymous_id is None and kind != "group":
        raise InvalidParameter("userId", "a message needs a userId or an anonymousId")


def _id(raw: Mapping[str, Any], field: str) -> str | None:
    value = raw.get(field)
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int | Decimal):
        value = str(value)
    if not isinstance(value, str):
        raise InvalidParameter(field, "must be a string or a number")
    value = value.strip()
    if len(value) > MAX_TEXT:
        raise InvalidParameter(field, f"must be at most {MAX_TEXT} characters")
    return value or None


def _text(raw: Mapping[str, Any], field: str) -> str | None:
    value = raw.get(field)
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidParameter(field, "must be a string")
    return value.strip()[:MAX_TEXT] or None


def _object(raw: Mapping[str, Any], field: str) -> Mapping[str, Any]:
    value = raw.get(field)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise InvalidParameter(field, "must be an object")
    return value


def _merged(batch: Mapping[str, Any], raw: Mapping[str, Any], field: str) -> dict[str, Any]:
    """Batch-level context (or integrations) merged under the message's own, key by key (the message's
    keys win)."""
    outer, inner = batch.get(field), raw.get(field)
    merged = dict(outer) if isinstance(outer, dict) else {}
    if inner is not None and not isinstance(inner, dict):
        raise InvalidParameter(field, "must be an object")
    merged.update(inner or {})
    return merged


def _message_id(raw: Mapping[str, Any]) -> str:
    """The message's own id; a missing one is derived from the content (so an identical retry matches)."""
    value = raw.get("messageId")
    if isinstance(value, int | Decimal) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str) or not value.strip():
        canonical = json.dumps(raw, sort_keys=True, separators=(",", ":"), default=str)
        return "tl-" + hashlib.sha256(canonical.encode()).hexdigest()[:40]
    value = value.strip()
    if len(value) > MAX_ID:
        return "tl-" + hashlib.sha256(value.encode()).hexdigest()[:40]
    return value


def _times(
    raw: Mapping[str, Any], batch: Mapping[str, Any], received_at: datetime, trusted: bool, sent_header: str | None
) -> tuple[datetime, datetime, datetime | None, datetime]:
    """(originalTimestamp, timestamp, sentAt, receivedAt) per the module docstring; `trusted`: Segment's."""
    given = parse_timestamp(raw.get("timestamp"), "timestamp")
    stamped = parse_timestamp(raw.get("originalTimestamp"), "originalTimestamp")
    original = stamped or given or received_at
    sent = (parse_timestamp(raw.get("sentAt"), "sentAt") or parse_timestamp(batch.get("sentAt"), "sentAt")
            or parse_timestamp(sent_header, "sentAt"))  # fmt: skip
    if trusted:
        received = parse_timestamp(raw.get("receivedAt"), "receivedAt") or received_at
        return original, given or original, sent, received
    if given is not None and stamped is not None:  # the app's own timestamp beside the library's stamp
        return original, given, sent, received_at
    if sent is None:
        return original, original, None, received_at
    return original, corrected_timestamp(received_at, sent, original), sent, received_at


def corrected_timestamp(received_at: datetime, sent_at: datetime, original: datetime) -> datetime:
    """`receivedAt - (sentAt - originalTimestamp)`: the event time on the server's clock."""
    try:
        return received_at - (sent_at - original)
    except OverflowError:
        raise InvalidParameter("timestamp", f"corrected by sentAt, falls outside {_RANGE}") from None


def parse_timestamp(value: object, field: str) -> datetime | None:
    """ISO 8601 with `Z`, `±hh:mm` or no offset (UTC), 0-9 fraction digits, unpadded month and day accepted."""
    if value is None or value == "":
        return None
    match = _TIMESTAMP.match(value.strip()) if isinstance(value, str) else None
    if match is None:
        raise InvalidParameter(field, "must be an ISO 8601 date-time")
    year, month, day, hour, minute, second, fraction, zone = match.groups()
    micro = int((fraction or "0")[:6].ljust(6, "0"))
    try:
        moment = datetime(int(year), int(month), int(day), int(hour), int(minute), int(second or 0), micro,
                          tzinfo=UTC)  # fmt: skip
    except ValueError:
        raise InvalidParameter(field, "is not a valid date-time") from None
    try:
        return moment - _offset(zone, field)
    except OverflowError:
        raise InvalidParameter(field, f"falls outside {_RANGE}") from None


_RANGE = "years 1 to 9999 in UTC"


def _offset(zone: str | None, field: str) -> timedelta:
    if zone is None or zone in ("Z", "z"):
        return timedelta(0)
    sign = -1 if zone[0] == "-" else 1
    digits = zone[1:].replace(":", "")
    hours, minutes = int(digits[:2]), int(digits[2:] or 0)
    if hours > 23 or minutes > 59:
        raise InvalidParameter(field, "has an offset outside -23:59 to +23:59")
    return sign * timedelta(hours=hours, minutes=minutes)
