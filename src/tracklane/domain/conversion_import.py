"""Reading a CSV file of offline conversions (an import): the file's limits, its header, and each data row
as the `ConversionRequest` it asks for or the error that row has.

The file is UTF-8 (a byte order mark is skipped) with a header row naming its columns, in any order and any
case: `transaction_id` (required), `event_id`, `event_name`, `amount`, `order_id`, `currency`,
`adv1`..`adv5`. A row is read exactly as `/postback` reads its parameters (`parse_conversion_request`),
so a bad value is that row's error naming its field; a problem with the file itself (too large, not
UTF-8 text, not CSV, no header, an unknown or repeated column, too many rows) is an `InvalidParameter`
for the whole file, raised before any row is attributed. Rows are numbered by the line of the file they
start on (the header is line 1), so a spreadsheet user finds them; blank lines are skipped.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from tracklane.domain.errors import InvalidParameter, TracklaneError
from tracklane.domain.postback import ADV_FIELDS, ConversionRequest, parse_conversion_request

MAX_ROWS = 10_000
MAX_FILE_BYTES = 5 * 1024 * 1024
COLUMNS = ("transaction_id", "event_id", "event_name", "amount", "order_id", "currency", *ADV_FIELDS)
_ECHOED_CHARS = 64  # of a row's transaction_id, repeated in its error


@dataclass(frozen=True, slots=True)
class RowError:
    """Why one data row of an import records nothing: a refusal code and its sentence, the field at fault."""

    row: int
    transaction_id: str | None
    error: str
    message: str
    field: str | None = None


@dataclass(frozen=True, slots=True)
class ImportRow:
    """A data row read into the conversion or event it asks for."""

    row: int
    request: ConversionRequest


@dataclass(frozen=True, slots=True)
class ImportFile:
    """The data rows of a file: those read into requests and those already in error, each in file order."""

    rows: tuple[ImportRow, ...]
    errors: tuple[RowError, ...]

    @property
    def count(self) -> int:
        return len(self.rows) + len(self.errors)


def row_error(row: int, transaction_id: str | None, error: TracklaneError) -> RowError:
    """The report entry of a row refused with `error` (its code; its field when it names one)."""
    field = error.field if isinstance(error, InvalidParameter) else None
    return RowError(row, transaction_id, str(error.code), error.message, field)


def read_import(data: bytes) -> ImportFile:
    """Every data row of the file; a problem with the file itself raises `InvalidParameter`."""
    if len(data) > MAX_FILE_BYTES:
        raise InvalidParameter("file", f"is {len(data)} bytes; an import takes at most {MAX_FILE_BYTES} bytes "
                                       "(5 MB): split it")  # fmt: skip
    records = _records(_text(data))
    header = _header(records)
    rows: list[ImportRow] = []
    errors: list[RowError] = []
    for line, cells in records:
        if len(rows) + len(errors) == MAX_ROWS:
            raise InvalidParameter("file", f"has more than {MAX_ROWS} data rows: split it")
        read = _row(line, header, cells)
        if isinstance(read, ImportRow):
            rows.append(read)
        else:
            errors.append(read)
    return ImportFile(tuple(rows), tuple(errors))


def _text(data: bytes) -> str:
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise InvalidParameter("file", f"is not UTF-8 text (byte {error.start} is not UTF-8)") from None
    if "\x00" in text:
        raise InvalidParameter("file", "is not CSV text: it contains NUL characters")
    return text


def _records(text: str) -> Iterator[tuple[int, list[str]]]:
    """Each non-blank record with the line it starts on; a record that is not CSV refuses the file."""
    # Lines split on "\n" alone with their ends kept, as a file opened with newline="" gives them: a quoted
    # cell keeps its line breaks and "\r\n" stays one record's end.
    reader = csv.reader((part + "\n" for part in text.split("\n")), strict=True)
    while True:
        line = reader.line_num + 1
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error as error:
            raise InvalidParameter("file", f"line {line} is not valid CSV: {error}") from None
        if any(cell.strip() for cell in cells):
            yield line, cells


def _header(records: Iterator[tuple[int, list[str]]]) -> tuple[str | None, ...]:
    """The column of each cell position (None: a column without a name, whose cells must stay empty)."""
    first = next(records, None)
    if first is None:
        raise InvalidParameter("file", "is empty: an import needs a header row naming its columns")
    names = tuple(cell.strip().lower() or None for cell in first[1])
    for name in names:
        if name is not None and name not in COLUMNS:
            raise InvalidParameter(name, f"is not a column of an import (the first row is the header; the "
                                         f"columns are {', '.join(COLUMNS)})")  # fmt: skip
        if name is not None and names.count(name) > 1:
            raise InvalidParameter(name, "appears twice in the header row")
    if "transaction_id" not in names:
        raise InvalidParameter("transaction_id", "the header row has no transaction_id column (the first "
                                                 "row of the file is its header)")  # fmt: skip
    return names


def _row(line: int, header: Sequence[str | None], cells: Sequence[str]) -> ImportRow | RowError:
    params, stray = _params(header, cells)
    transaction_id = params.get("transaction_id")
    echoed = transaction_id[:_ECHOED_CHARS] if transaction_id else None
    if stray is not None:
        return RowError(line, echoed, "invalid_parameter", f"cell {stray} has a value but no column of the "
                                                           "header row names it")  # fmt: skip
    try:
        return ImportRow(line, parse_conversion_request(params, token_required=False))
    except TracklaneError as error:
        return row_error(line, echoed, error)


def _params(header: Sequence[str | None], cells: Sequence[str]) -> tuple[dict[str, str], int | None]:
    """The row's non-empty values by column, and the position (from 1) of the first value in no named
    column, if any."""
    values: dict[str, str] = {}
    stray: int | None = None
    for position, cell in enumerate(cells):
        value = cell.strip()
        if not value:
            continue
        name = header[position] if position < len(header) else None
        if name is not None:
            values[name] = value
        elif stray is None:
            stray = position + 1
    return values, stray
