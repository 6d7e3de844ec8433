"""A Segment request body read into its messages, each one readable or not on its own, and each message's
text as it was sent (kept with the record of a refused message).

The body is decoded as UTF-8 with every invalid byte kept as a lone surrogate, which the per-message check
refuses, so a string cut in the middle of a character costs only its own message. The body is parsed
whole; when that fails (a message that is not valid JSON, nested deeper than the parser goes, a number
too long to read), a batch is split at its top level without parsing inside its messages, and each
message is parsed on its own: only the bad ones are unreadable. A body whose outer shape cannot be read
(or a single-message body that cannot be parsed) is refused whole with a 400.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, replace
from decimal import Decimal
from functools import partial

from tracklane.domain.errors import IntakeError, InvalidParameter
from tracklane.domain.segment.messages import Envelope, Unreadable, read_envelope

#: What is kept of a refused message's text: at most this many UTF-8 bytes.
RAW_TEXT_BYTES = 8 * 1024

# Strings (escapes included) and the punctuation that gives JSON its structure; everything else (numbers,
# literals, blanks) lies between them and never changes the nesting.
_TOKEN = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"|[\[\]{},:]', re.DOTALL)
_CLOSES = {"]": "[", "}": "{"}


def decode(data: bytes) -> str:
    """The body as text; an invalid UTF-8 byte becomes a lone surrogate (U+DC80-U+DCFF), refused later."""
    text = data.decode("utf-8", "surrogateescape")
    return text.removeprefix("\ufeff")


def parse(text: str) -> object:
    """JSON with exact decimals; `NaN` and `Infinity` come out as floats, which the message check refuses."""
    return json.loads(text, parse_float=Decimal)


def read_request(data: bytes, path_type: str | None, *, relayed: bool = False) -> Envelope:
    """The envelope of a request body; `path_type` as for `read_envelope`. `relayed` (Segment's Webhooks
    destination): one message object, or a JSON array of them. Raises `IntakeError` (400) when the body as a
    whole cannot be read."""
    text = decode(data)
    try:
        body = parse(text)
    except RecursionError:
        failure = IntakeError(400, "nested_too_deep", "the body is nested too deeply to read")
    except ValueError:
        failure = IntakeError(400, "invalid_json", "the body is not valid JSON")
    else:
        single = path_type is not None or (relayed and isinstance(body, dict) and "batch" not in body)
        if relayed and single:
            body = [body]
        return replace(_envelope(body, path_type), text_of=partial(_text_of, text, single))
    layout = None if path_type is not None else _layout(text)
    if layout is None:
        raise failure
    return _read_split(text, layout)


def _envelope(body: object, path_type: str | None) -> Envelope:
    try:
        return read_envelope(body, path_type)
    except InvalidParameter as error:
        raise IntakeError(400, "invalid_body", error.message) from None


@dataclass(frozen=True, slots=True)
class _Layout:
    """Where a batch's messages are in the body: the array holding them (None: the body is that array)
    and each message's span."""

    array: tuple[int, int] | None
    spans: list[tuple[int, int]]


def _read_split(text: str, layout: _Layout) -> Envelope:
    if layout.array is None:
        outer: object = []
    else:
        start, end = layout.array
        try:
            outer = parse(text[:start] + "[]" + text[end + 1 :])
        except (RecursionError, ValueError):
            raise IntakeError(400, "invalid_json", "the body is not valid JSON outside its messages") from None
    items: list[object] = []
    for begin, finish in layout.spans:
        try:
            items.append(parse(text[begin:finish]))
        except RecursionError:
            items.append(Unreadable(InvalidParameter("message", "is nested too deeply to read")))
        except ValueError as error:
            items.append(Unreadable(InvalidParameter("message", f"is not valid JSON ({str(error)[:120]})")))
    envelope = _envelope({**outer, "batch": items} if isinstance(outer, dict) else items, None)
    return replace(envelope, text_of=partial(_span_text, text, layout.spans))


def _text_of(text: str, single: bool, index: int) -> str:
    if single:
        return text.strip()
    layout = _layout(text)
    if layout is None or index >= len(layout.spans):
        return ""
    return _span_text(text, layout.spans, index)


def _span_text(text: str, spans: list[tuple[int, int]], index: int) -> str:
    begin, end = spans[index]
    return text[begin:end]


def first_element(text: str) -> str | None:
    """The text of the first element of a top-level JSON array (Segment signs only that one in batch mode)."""
    if not text.lstrip().startswith("["):
        return None
    layout = _layout(text)
    if layout is None or layout.array is not None or not layout.spans:
        return None
    return _span_text(text, layout.spans, 0)


def _layout(text: str) -> _Layout | None:
    """Split a batch (`[...]` or an object with a `batch` array) into its messages' spans, reading only its
    structure; None when the structure is broken or holds no batch."""
    start = len(text) - len(text.lstrip())
    if start == len(text) or text[start] not in "[{":
        return None
    scan = _Scan(text, start)
    for token in _TOKEN.finditer(text, start):
        if not scan.step(token.group(), token.start()):
            break
    if scan.broken or scan.end < 0 or text[scan.end + 1 :].strip():
        return None
    if text[start] == "[":
        return _Layout(None, _trimmed(text, scan.spans))
    return scan.found


class _Scan:
    """The state of `_layout` while it reads the structure token by token."""

    def __init__(self, text: str, start: int) -> None:
        self.text = text
        self.stack: list[str] = []
        self.target = 1 if text[start] == "[" else 0  # the depth of the messages' array, 0 until it is found
        self.spans: list[tuple[int, int]] = []
        self.cursor = start + 1
        self.key: str | None = None  # the last string at the top of an object: a key if ':' follows
        self.batch_value = -1  # just after the ':' of a top-level "batch" key
        self.array_start = -1
        self.found: _Layout | None = None
        self.end = -1
        self.broken = False

    def step(self, mark: str, pos: int) -> bool:
        """Take one token; False once the top-level value has ended (or is broken)."""
        depth = len(self.stack)
        batch_value, self.batch_value = self.batch_value, -1
        if mark[0] == '"':
            if depth == 1 and self.stack[0] == "{":
                self.key = mark
        elif mark in "[{":
            if mark == "[" and depth == 1 and batch_value >= 0 and not self.text[batch_value:pos].strip():
                self.target, self.spans, self.cursor, self.array_start = 2, [], pos + 1, pos
            self.stack.append(mark)
        elif mark in "]}":
            return self._close(mark, pos, depth)
        elif mark == ":":
            if depth == 1 and _is_batch_key(self.key):
                self.batch_value = pos + 1
            self.key = None
        else:  # ","
            if depth == self.target:
                self.spans.append((self.cursor, pos))
                self.cursor = pos + 1
            self.key = None
        return True

    def _close(self, mark: str, pos: int, depth: int) -> bool:
        if not self.stack or self.stack[-1] != _CLOSES[mark]:
            self.broken = True
            return False
        if depth == self.target:
            self.spans.append((self.cursor, pos))
            if self.target == 2:
                self.found = _Layout((self.array_start, pos), _trimmed(self.text, self.spans))
                self.target = 0
        self.stack.pop()
        if not self.stack:
            self.end = pos
            return False
        return True


def _is_batch_key(key: str | None) -> bool:
    try:
        return key is not None and json.loads(key) == "batch"
    except ValueError:
        return False


def _trimmed(text: str, spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Spans without surrounding blanks; an empty array has no messages."""
    result = []
    for begin, end in spans:
        piece = text[begin:end]
        result.append((begin + len(piece) - len(piece.lstrip()), end - len(piece) + len(piece.rstrip())))
    if len(result) == 1 and result[0][0] == result[0][1]:
        return []
    return result


def printable(text: str, limit: int = RAW_TEXT_BYTES) -> tuple[str, int]:
    """(the text cut to `limit` UTF-8 bytes at a character boundary, its full size in bytes), storable on
    every database: an invalid byte is shown as `\\xNN` and a NUL character as `\\x00`."""
    data = text.encode("utf-8", "surrogateescape")
    end = min(limit, len(data))
    while 0 < end < len(data) and data[end] & 0xC0 == 0x80:  # do not cut inside a character
        end -= 1
    shown = data[:end].decode("utf-8", "backslashreplace").replace("\x00", "\\x00")
    return shown, len(data)
