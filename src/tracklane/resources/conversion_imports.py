"""A conversion import's answer (`POST /api/v1/conversions/import`, `tracklane conversions import`): how many
data rows the file had, which were recorded (or would be, in a dry run) and which were refused, row by row.

It names no money: the conversions it recorded are read, each as the caller's role sees it, from
`GET /api/v1/conversions` (their `origin` is `api`).
"""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

from tracklane.domain.conversion_import import RowError
from tracklane.domain.model import ConversionStatus
from tracklane.resources.fields import View

Row = Annotated[int, msgspec.Meta(ge=2, description="the line of the file the row starts on (the header is 1)")]


class ImportedConversion(View, frozen=True):
    """A row that was recorded (`accepted`), or was already recorded before (`duplicate`: the first
    conversion's id and status; nothing new is written). In a dry run, `conversion_id` is null."""

    row: Row
    conversion_id: int | None
    status: ConversionStatus
    result: Literal["accepted", "duplicate"]


class ImportRowError(View, frozen=True, omit_defaults=True):
    """A row that records nothing: the refusal code `/postback` would answer (`invalid_parameter`,
    `unknown_transaction`, `unknown_event`, `no_prior_conversion`, `outside_window`, ...), the field at
    fault when one is, and a sentence."""

    row: Row
    transaction_id: str | None
    error: str
    message: str
    field: str | None = None

    @classmethod
    def of(cls, error: RowError) -> ImportRowError:
        return cls(row=error.row, transaction_id=error.transaction_id, error=error.error, message=error.message,
                   field=error.field)  # fmt: skip


class ConversionImportView(View, frozen=True):
    """What an import did (or, with `dry_run`, would do: then nothing at all was written). `rows` counts the
    data rows: `accepted + duplicates + rejected`. Every row is in `conversions` or in `errors`, in file
    order."""

    dry_run: bool
    rows: int
    accepted: int
    duplicates: int
    rejected: int
    conversions: list[ImportedConversion]
    errors: list[ImportRowError]
