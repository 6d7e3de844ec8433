"""Importing offline conversions from a CSV file (the API's `POST /conversions/import` and
`tracklane conversions import`): each data row attributed exactly as an API conversion (`origin` `api`,
by `record_or_refuse`: the same channel check, window, events needing a prior conversion, duplicates,
caps, money and trace), the good rows recorded and the bad ones reported row by row.

The whole file is read (`tracklane.domain.conversion_import`) before anything is attributed: a problem
with the file itself refuses it and writes nothing. The rows are then attributed in file order, so a row
sees the rows before it (an event after its conversion, a repeated order id), in writes of `CHUNK_ROWS`
rows each: a refused row writes nothing, so it never costs the rows beside it theirs, and every write is
committed before the next begins.

A dry run does the same work in the same chunks, each one rehearsed (`rehearse`: run as a write, then
rolled back), so it writes nothing at all: no conversion, no cap counted, no outbox message. So that each
chunk still sees the rows before it as the import would, it works on a `_RehearsalRepository`, which shows
it what the earlier, rolled-back chunks recorded wherever attribution reads what conversions recorded: the
duplicate keys taken, the base conversions of each click, the cap counters counted. The answer is then
what the import would answer (but for traffic recorded meanwhile); a large file never holds the writer
longer than one chunk.

An admin key imports conversions of any click; an advertiser key only of its own offers' clicks (another
advertiser's click is refused as `unknown_transaction`, the answer for a click that does not exist); a
partner key imports nothing.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from typing import Any, Literal, Protocol, cast

from tracklane.domain.caps import CapCounterKey
from tracklane.domain.conversion_import import ImportFile, ImportRow, read_import, row_error
from tracklane.domain.errors import DuplicateKey, Forbidden, PostbackRefused, StorageUnavailable, TracklaneError
from tracklane.domain.model import Conversion, ConversionStatus, Origin, Role
from tracklane.domain.postback import ClickClaim, ConversionRequest, Proof
from tracklane.domain.tenancy import Scope
from tracklane.resources.conversion_imports import ConversionImportView, ImportedConversion, ImportRowError
from tracklane.services.ports import Database, NewConversion, Refused, Repository

CHUNK_ROWS = 100
"""Rows attributed in one write: few enough that a write stays far inside the writer's deadline."""
CHUNK_ATTEMPTS = 3
"""How often a chunk is written again after a concurrent write took one of its unique keys."""


class Recorded(Protocol):
    """What attributing a row recorded (`accepted`), or found recorded before (`duplicate`)."""

    @property
    def result(self) -> str: ...
    @property
    def conversion(self) -> Conversion: ...


class Attribution(Protocol):
    """How one conversion request is attributed and recorded inside a write, a refusal returned
    (`tracklane.services.conversions.record_or_refuse`)."""

    def __call__(
        self, repo: Repository, request: ConversionRequest, origin: Origin, now: datetime, *, claim: ClickClaim
    ) -> Recorded | Refused: ...


async def import_file(
    db: Database, attribute: Attribution, scope: Scope, data: bytes, now: datetime, *, dry_run: bool
) -> ConversionImportView:
    """Import the CSV file `data` at `now` (or, with `dry_run`, report what importing it would do)."""
    if scope.role is Role.PARTNER:
        raise Forbidden("a partner key cannot import conversions")
    file = read_import(data)
    claim = ClickClaim(Proof.API_KEY, advertiser_id=scope.advertiser_id if scope.role is Role.ADVERTISER else None)
    work = partial(_attribute, attribute=attribute, claim=claim, now=now)
    if dry_run:
        outcomes = await _rehearse(db, work, file.rows)
    else:
        outcomes = await _record(db, work, file.rows)
    return _report(file, outcomes, dry_run)


Outcome = Recorded | Refused
Work = Callable[..., list[Outcome]]


async def _record(db: Database, work: Work, rows: Sequence[ImportRow]) -> list[Outcome]:
    """Every row's outcome, chunk by chunk. Once a chunk cannot be written (storage unavailable, or busy
    with concurrent writes to the same clicks), the rows from it on are refused with that error: the rows
    recorded before it stay recorded and the report says which. When no row could be written, the error
    is raised instead (a 503: send the file again)."""
    outcomes: list[Outcome] = []
    for start in range(0, len(rows), CHUNK_ROWS):
        try:
            outcomes += await _write_chunk(db, partial(work, rows=rows[start : start + CHUNK_ROWS]))
        except (StorageUnavailable, PostbackRefused) as error:
            if start == 0:
                raise
            outcomes += [Refused(_not_written(error)) for _ in rows[start:]]
            break
    return outcomes


async def _write_chunk(db: Database, work: Callable[[Repository], list[Outcome]]) -> list[Outcome]:
    """One write of a chunk; a concurrent duplicate loses the unique key, and the chunk is attributed
    again (its repeat is then answered as the duplicate it is)."""
    for _ in range(CHUNK_ATTEMPTS):
        try:
            return await db.write(work)
        except DuplicateKey:
            continue
    raise PostbackRefused("busy", "the rows are being recorded concurrently; import them again")


async def _rehearse(db: Database, work: Work, rows: Sequence[ImportRow]) -> list[Outcome]:
    """Every row's outcome in a dry run: chunk by chunk, each rehearsed and shown the earlier ones."""
    outcomes: list[Outcome] = []
    earlier = _Recorded()
    for start in range(0, len(rows), CHUNK_ROWS):
        chunk = partial(work, rows=rows[start : start + CHUNK_ROWS])
        done, recorded = await db.rehearse(partial(_in_rehearsal, work=chunk, earlier=earlier))
        outcomes += done
        earlier.add(recorded)
    return outcomes


def _in_rehearsal(
    repo: Repository, work: Callable[[Repository], list[Outcome]], earlier: _Recorded
) -> tuple[list[Outcome], _Recorded]:
    rehearsal = _RehearsalRepository(repo, earlier)
    return work(cast(Repository, rehearsal)), rehearsal.recorded


@dataclass(slots=True)
class _Recorded:
    """What rehearsed chunks recorded, of what attribution reads back: conversions by duplicate key, the
    base conversions' statuses by click, and the actions counted against each cap counter."""

    by_key: dict[str, Conversion] = field(default_factory=dict)
    base_statuses: dict[int, set[ConversionStatus]] = field(default_factory=dict)
    counted: Counter[CapCounterKey] = field(default_factory=Counter)

    def add(self, other: _Recorded) -> None:
        self.by_key.update(other.by_key)
        for click_id, statuses in other.base_statuses.items():
            self.base_statuses.setdefault(click_id, set()).update(statuses)
        self.counted.update(other.counted)


class _RehearsalRepository:
    """A dry-run chunk's repository: the real one (rolled back once the chunk is done), showing it what the
    earlier, already rolled-back chunks recorded too; it keeps what this chunk records (`recorded`)."""

    def __init__(self, repo: Repository, earlier: _Recorded) -> None:
        self._repo = repo
        self._earlier = earlier
        self.recorded = _Recorded()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._repo, name)

    def find_conversion_by_dedup_key(self, key: str) -> Conversion | None:
        return self._repo.find_conversion_by_dedup_key(key) or self._earlier.by_key.get(key)

    def base_conversion_statuses(self, click_id: int) -> frozenset[ConversionStatus]:
        earlier = self._earlier.base_statuses.get(click_id, set())
        return self._repo.base_conversion_statuses(click_id) | earlier

    def take_caps(self, counters: Sequence[tuple[CapCounterKey, int]]) -> bool:
        """Count against each counter as if the earlier chunks' actions were counted on it too."""
        taken = self._repo.take_caps([(key, limit - self._earlier.counted[key]) for key, limit in counters])
        if taken:
            self.recorded.counted.update(key for key, _ in counters)
        return taken

    def insert_conversion(self, conversion: NewConversion) -> Conversion:
        inserted = self._repo.insert_conversion(conversion)
        if conversion.dedup_key is not None:
            self.recorded.by_key[conversion.dedup_key] = inserted
        if inserted.event_id is None:
            self.recorded.base_statuses.setdefault(inserted.click_id, set()).add(inserted.status)
        return inserted


def _attribute(
    repo: Repository, rows: Sequence[ImportRow], attribute: Attribution, claim: ClickClaim, now: datetime
) -> list[Outcome]:
    """Attribute each row in turn on `repo` (each seeing those before it); a refused row writes nothing."""
    return [attribute(repo, row.request, Origin.API, now, claim=claim) for row in rows]


def _not_written(error: TracklaneError) -> TracklaneError:
    if isinstance(error, PostbackRefused):
        return error
    return PostbackRefused("busy", f"not recorded: {error.message}; import this row again")


def _report(file: ImportFile, outcomes: Sequence[Outcome], dry_run: bool) -> ConversionImportView:
    conversions: list[ImportedConversion] = []
    errors = [ImportRowError.of(error) for error in file.errors]
    for row, outcome in zip(file.rows, outcomes, strict=True):
        if isinstance(outcome, Refused):
            errors.append(ImportRowError.of(row_error(row.row, row.request.transaction_id, outcome.error)))
            continue
        conversion_id = None if dry_run else outcome.conversion.id
        result: Literal["accepted", "duplicate"] = "duplicate" if outcome.result == "duplicate" else "accepted"
        conversions.append(ImportedConversion(row=row.row, conversion_id=conversion_id,
                                              status=outcome.conversion.status, result=result))  # fmt: skip
    errors.sort(key=lambda error: error.row)
    return ConversionImportView(
        dry_run=dry_run,
        rows=file.count,
        accepted=sum(c.result == "accepted" for c in conversions),
        duplicates=sum(c.result == "duplicate" for c in conversions),
        rejected=len(errors),
        conversions=conversions,
        errors=errors,
    )
