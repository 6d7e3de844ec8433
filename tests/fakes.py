"""An in-memory implementation of the storage ports, so that the use cases get fast unit tests.

`FakeDatabase` implements `services.ports.Database` and `FakeRepository` implements `Repository`, with no SQL.
It is a second implementation of what the SQL stores do, not a mock: the suite in `tests/contract` runs
against it, SQLite and PostgreSQL alike. The tables are those of `storage/schema.py`, held as rows in
dictionaries, with what the databases enforce: NOT NULL, unique keys (NULLs never collide), foreign keys (on
insert, update and delete); money columns exact to the storage scale, time columns aware and in UTC, JSON
columns copied through JSON. Every `write` and every `read` is one transaction, and an exception undoes all
it did (an undo log, which also gives savepoints and all-or-none cap counters). A read that tries to write,
or a repository used after its transaction ended, is an error. Rows become domain values through
`storage/rows.py` (users: `storage/users.py`), the mappings the SQL stores use.
"""

from __future__ import annotations

import copy
import hashlib
import json
import secrets
from collections.abc import Awaitable, Callable, Generator, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, fields, replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from enum import Enum
from typing import Any, Generic, TypeVar

import msgspec
from sqlalchemy import JSON, Boolean, Table, UniqueConstraint

from tracklane.domain.caps import Cap, CapCounterKey, CapRule
from tracklane.domain.delivery import Delivery, DeliveryAttempt, DeliveryStatus
from tracklane.domain.errors import Conflict, DuplicateKey
from tracklane.domain.model import (
    AccessStatus,
    Advertiser,
    ApiKey,
    Click,
    Conversion,
    ConversionMethod,
    ConversionStatus,
    LinkKind,
    Offer,
    OfferAccess,
    OfferEvent,
    Partner,
    PartnerPayout,
    User,
    Visibility,
)
from tracklane.domain.money import STORAGE_PLACES
from tracklane.domain.partner_postbacks import PartnerPostback, PostbackStatus
from tracklane.domain.segment.model import Customer, MessageOutcome, Source, StoredMessage
from tracklane.domain.targeting import to_document
from tracklane.domain.trace import TraceStep, stored_steps
from tracklane.domain.traffic import Blocklist, blocklist
from tracklane.domain.webhooks import EndpointStatus, WebhookEndpoint
from tracklane.resources.advertisers import AdvertiserUpdate
from tracklane.resources.decoding import decode
from tracklane.resources.offers import (
    OfferAccessCreate,
    OfferAccessUpdate,
    OfferCreate,
    OfferEventCreate,
    OfferEventUpdate,
    OfferUpdate,
    PartnerPayoutCreate,
    PriceRuleBody,
    TargetingBody,
)
from tracklane.resources.partner_postbacks import PartnerPostbackCreate, PartnerPostbackUpdate
from tracklane.resources.partners import PartnerUpdate
from tracklane.resources.reports import (
    CLICK_DIMENSIONS,
    REPORT_CURRENCY,
    TIME_DIMENSIONS,
    ReportLine,
    ReportQuery,
    ZoneOffsets,
)
from tracklane.resources.sources import SourceUpdate
from tracklane.resources.webhooks import WebhookCreate, WebhookUpdate
from tracklane.services.ports import (
    EVERY_HOUR,
    CustomerChanges,
    Database,
    EndpointState,
    MessageResult,
    NewAttempt,
    NewClick,
    NewConversion,
    NewCustomerActivity,
    NewDelivery,
    NewLink,
    NewSegmentMessage,
    NewSession,
    NewSource,
    NewUser,
    Page,
    PostbackState,
    Release,
    Repository,
    Requeue,
    SecretRotation,
    UserChanges,
    UserLink,
    UserSession,
)
from tracklane.storage import rows
from tracklane.storage import users as stored_users
from tracklane.storage.delivery import DELETED_POSTBACK
from tracklane.storage.rollups import UNIQUE_CLICK_WINDOW
from tracklane.storage.schema import metadata
from tracklane.storage.types import Money, UtcDateTime

T = TypeVar("T")
Row = dict[str, Any]
Key = tuple[Any, ...]

_SCALE = Decimal(10) ** STORAGE_PLACES
_PLACES = Decimal(1).scaleb(-STORAGE_PLACES)
_ZERO = Decimal(0).quantize(_PLACES)
_SENDING = DeliveryStatus.SENDING.value
_PENDING = DeliveryStatus.PENDING.value


class IntegrityViolation(Exception):
    """A write broke a NOT NULL, unique or foreign-key constraint (the driver's `IntegrityError`).

    Like the SQL database, the fake's `write` and `read` turn a unique violation into `DuplicateKey`
    naming the key's last column; the others reach the caller as they are.
    """

    def __init__(self, table: str, constraint: tuple[str, ...], message: str, unique: bool = False) -> None:
        super().__init__(f"{table}: {message}")
        self.table = table
        self.constraint = constraint
        self.unique = unique

    def translated(self) -> Exception:
        if not self.unique:
            return self
        *scope, column = self.constraint
        within = f" for this {', '.join(scope)}" if scope else ""
        return DuplicateKey(f"{column}: this value is already taken{within}", field=column)


# --- the tables ------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Column:
    name: str
    kind: str  # money, time, json, bool or plain
    nullable: bool


@dataclass(frozen=True, slots=True)
class _Spec:
    """What the fake keeps of one table of the schema."""

    name: str
    columns: dict[str, _Column]
    key: tuple[str, ...]
    serial: bool  # an autoincrement `id` key
    uniques: tuple[tuple[str, ...], ...]
    references: tuple[tuple[str, str, str], ...]  # (column, table, column)

    @classmethod
    def of(cls, table: Table) -> _Spec:
        columns = {c.name: _Column(c.name, _kind(c.type), bool(c.nullable)) for c in table.columns}
        key = tuple(c.name for c in table.primary_key.columns)
        uniques: list[tuple[str, ...]] = [(c.name,) for c in table.columns if c.unique]
        uniques += [tuple(c.name for c in u.columns) for u in table.constraints if isinstance(u, UniqueConstraint)]
        references = tuple((fk.parent.name, fk.column.table.name, fk.column.name) for fk in table.foreign_keys)
        return cls(table.name, columns, key, key == ("id",), tuple(dict.fromkeys(uniques)), references)


def _kind(column_type: object) -> str:
    for kind, types in (("money", Money), ("time", UtcDateTime), ("json", JSON), ("bool", Boolean)):
        if isinstance(column_type, types):
            return kind
    return "plain"


def _stored(column: _Column, value: Any) -> Any:
    """A value as the column type binds it and reads it back."""
    if isinstance(value, Enum):
        value = value.value
    if value is None:
        return None
    if column.kind == "money":
        scaled = Decimal(value) * _SCALE
        if scaled != scaled.to_integral_value():
            raise ValueError(f"money {value} has more than {STORAGE_PLACES} decimal places")
        return (Decimal(int(scaled)) / _SCALE).quantize(_PLACES)
    if column.kind == "time":
        if not isinstance(value, datetime) or value.tzinfo is None:
            raise ValueError("naive datetimes are not stored; pass an aware UTC datetime")
        return value.astimezone(UTC)
    if column.kind == "json":
        return json.loads(json.dumps(value))
    if column.kind == "bool":
        return bool(value)
    return value


class Tables:
    """The rows of every table, the id sequences, and the undo log of the open transaction."""

    def __init__(self) -> None:
        self.specs = {name: _Spec.of(table) for name, table in metadata.tables.items()}
        self.rows: dict[str, dict[Key, Row]] = {name: {} for name in self.specs}
        self._serials = dict.fromkeys(self.specs, 0)
        self._undo: list[tuple[str, Key, Row | None]] = []
        self.open = False  # a transaction is running
        self.writable = False  # ... and it may write
        self.changes = 0  # rows written, ever (never lowered, as a report day's version)

    # transactions: a mark is a position in the undo log
    def mark(self) -> int:
        return len(self._undo)

    def undo_to(self, mark: int) -> None:
        while len(self._undo) > mark:
            table, key, before = self._undo.pop()
            if before is None:
                del self.rows[table][key]
            else:
                self.rows[table][key] = before

    def forget(self) -> None:
        """Commit: nothing done so far can be undone."""
        self._undo.clear()

    # reads
    def select(self, table: str, where: Callable[[Row], bool] | None = None) -> list[Row]:
        """Matching rows in key order, as copies the caller may keep."""
        found = sorted((k, r) for k, r in self.rows[table].items() if where is None or where(r))
        return [self._copy(table, row) for _, row in found]

    def get(self, table: str, *key: Any) -> Row | None:
        row = self.rows[table].get(tuple(key))
        return None if row is None else self._copy(table, row)

    def _copy(self, table: str, row: Row) -> Row:
        columns = self.specs[table].columns
        return {name: copy.deepcopy(value) if columns[name].kind == "json" else value for name, value in row.items()}

    # writes
    def insert(self, table: str, values: Mapping[str, Any]) -> Row:
        spec = self._writing(table, values)
        row = {name: _stored(column, values.get(name)) for name, column in spec.columns.items()}
        if spec.serial and row["id"] is None:
            self._serials[table] += 1
            row["id"] = self._serials[table]
        elif spec.serial:
            self._serials[table] = max(self._serials[table], row["id"])
        key = tuple(row[name] for name in spec.key)
        if key in self.rows[table]:
            raise IntegrityViolation(table, spec.key, f"UNIQUE constraint failed: {', '.join(spec.key)}", True)
        self._check(spec, row, given=values)
        self._undo.append((table, key, None))
        self.rows[table][key] = row
        return self._copy(table, row)

    def update(self, table: str, where: Callable[[Row], bool], changes: Mapping[str, Any]) -> int:
        """Change every matching row; the number changed (a statement's rowcount)."""
        spec = self._writing(table, changes)
        stored = {name: _stored(spec.columns[name], value) for name, value in changes.items()}
        matched = [(k, r) for k, r in self.rows[table].items() if where(r)]
        for key, before in matched:
            after = {**before, **stored}
            new_key = tuple(after[name] for name in spec.key)
            if new_key != key:
                raise NotImplementedError("the fake does not change primary keys")
            self._check(spec, after, given=stored, updating=key)
            self._undo.append((table, key, before))
            self.rows[table][key] = after
        return len(matched)

    def delete(self, table: str, where: Callable[[Row], bool]) -> int:
        spec = self._writing(table, {})
        matched = [(k, r) for k, r in self.rows[table].items() if where(r)]
        for key, row in matched:
            self._referenced(spec, row)
            self._undo.append((table, key, row))
            del self.rows[table][key]
        return len(matched)

    def _writing(self, table: str, values: Mapping[str, Any]) -> _Spec:
        if not self.writable:
            raise RuntimeError("a read transaction must not write")
        self.changes += 1
        spec = self.specs[table]
        unknown = set(values) - set(spec.columns)
        if unknown:
            raise ValueError(f"{table}: unconsumed column names: {', '.join(sorted(unknown))}")
        return spec

    def _check(self, spec: _Spec, row: Row, given: Mapping[str, Any], updating: Key | None = None) -> None:
        for name, column in spec.columns.items():
            # An explicit None in a JSON column is stored as JSON null, as SQLAlchemy does.
            explicit_json_null = column.kind == "json" and name in given
            if row[name] is None and not column.nullable and not explicit_json_null:
                raise IntegrityViolation(spec.name, (name,), f"NOT NULL constraint failed: {name}")
        for unique in spec.uniques:
            values = tuple(row[name] for name in unique)
            if any(v is None for v in values):
                continue
            for key, other in self.rows[spec.name].items():
                if key != updating and tuple(other[name] for name in unique) == values:
                    raise IntegrityViolation(spec.name, unique, f"UNIQUE constraint failed: {', '.join(unique)}", True)
        for name, table, target in spec.references:
            value = row[name]
            if value is not None and not self._exists(table, target, value):
                raise IntegrityViolation(spec.name, (name,), f"FOREIGN KEY constraint failed: {name}")

    def _exists(self, table: str, column: str, value: Any) -> bool:
        if self.specs[table].key == (column,):
            return (value,) in self.rows[table]
        return any(r[column] == value for r in self.rows[table].values())

    def _referenced(self, spec: _Spec, row: Row) -> None:
        for other in self.specs.values():
            for column, table, target in other.references:
                if table == spec.name and any(r[column] == row[target] for r in self.rows[other.name].values()):
                    raise IntegrityViolation(spec.name, (target,), f"FOREIGN KEY constraint failed: {other.name}")


class _Attributes:
    """A row read through attributes and `_mapping`, the way `storage/rows.py` reads SQLAlchemy rows."""

    def __init__(self, row: Row) -> None:
        self._mapping = row

    def __getattr__(self, name: str) -> Any:
        try:
            return self._mapping[name]
        except KeyError:
            raise AttributeError(name) from None


def _r(row: Row) -> Any:
    return _Attributes(row)


def _paged(found: list[Row], page: Page) -> list[Row]:
    """Newest first, before the cursor (the last id seen), `created_from` inclusive, `created_to` exclusive."""
    start = _stored(_TIME, page.created_from)
    end = _stored(_TIME, page.created_to)
    kept = [
        r for r in found
        if (page.cursor is None or r["id"] < page.cursor)
        and (start is None or r["created_at"] >= start)
        and (end is None or r["created_at"] < end)
        and all(r[name] == _plain(value) for name, value in page.filters.items() if value is not None)
    ]  # fmt: skip
    return sorted(kept, key=lambda r: r["id"], reverse=True)[: max(page.limit, 0)]


_TIME = _Column("at", "time", True)


def _plain(value: Any) -> Any:
    return value.value if isinstance(value, Enum) else value


def _columns(values: Mapping[str, Any]) -> dict[str, Any]:
    """Resource values to columns: price rules over their three columns, conversion methods as a list in
    their declared order."""
    columns: dict[str, Any] = {}
    for name, value in values.items():
        if isinstance(value, PriceRuleBody):
            columns.update(rows.price_columns(name, value.rule()))
        elif isinstance(value, TargetingBody):
            columns[name] = to_document(value.targeting())
        elif name == "conversion_methods":
            columns[name] = [m.value for m in ConversionMethod if m in value]
        else:
            columns[name] = _plain(value)
    return columns


def _fields(command: Any) -> dict[str, Any]:
    """A write port's dataclass or a request body as values by field name (named after the columns)."""
    if isinstance(command, msgspec.Struct):
        return msgspec.structs.asdict(command)
    return {f.name: getattr(command, f.name) for f in fields(command)}


def jsonable(value: Any) -> Any:
    """JSON columns get exact decimals as strings, never floats (as the SQL stores write them)."""
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    return value


# --- the repository --------------------------------------------------------------------------------------------


class FakeRepository:
    """Implements `services.ports.Repository` on the in-memory tables, inside one transaction."""

    def __init__(self, tables: Tables) -> None:
        self._tables: Tables | None = tables

    @property
    def t(self) -> Tables:
        if self._tables is None:
            raise RuntimeError("the repository of a finished transaction was used")
        return self._tables

    def close(self) -> None:
        self._tables = None

    def _one(self, table: str, **where: Any) -> Row | None:
        found = self.t.select(table, lambda r: all(r[k] == v for k, v in where.items()))
        if len(found) > 1:
            raise LookupError(f"{table}: more than one row for {where}")
        return found[0] if found else None

    def _by_id(self, table: str, row_id: int) -> Row | None:
        return self.t.get(table, row_id)

    def _update(self, table: str, row_id: int, changes: Mapping[str, Any]) -> int:
        if not changes:
            return 0
        return self.t.update(table, lambda r: r["id"] == row_id, _columns(changes))

    # advertisers
    def insert_advertiser(self, name: str, postback_token: str, now: datetime, status: str = "active") -> Advertiser:
        values = {"name": name, "status": status, "postback_token": postback_token,
                  "postback_token_hash": _token_hash(postback_token), "created_at": now, "updated_at": now}  # fmt: skip
        return rows.advertiser(_r(self.t.insert("advertisers", values)))

    def get_advertiser(self, advertiser_id: int) -> Advertiser | None:
        row = self._by_id("advertisers", advertiser_id)
        return None if row is None else rows.advertiser(_r(row))

    def find_advertiser_by_token(self, token: str) -> Advertiser | None:
        row = self._one("advertisers", postback_token=token)
        return None if row is None else rows.advertiser(_r(row))

    def list_advertisers(self, page: Page) -> list[Advertiser]:
        return [rows.advertiser(_r(r)) for r in _paged(self.t.select("advertisers"), page)]

    def update_advertiser(
        self, advertiser_id: int, changes: AdvertiserUpdate, postback_token: str | None, now: datetime
    ) -> None:
        values = rows.set_fields(changes, exclude=frozenset({"rotate_postback_token"}))
        if postback_token is not None:
            values.update(postback_token=postback_token, postback_token_hash=_token_hash(postback_token))
        self._update("advertisers", advertiser_id, {**values, "updated_at": now})

    # partners
    def insert_partner(self, name: str, email: str, status: str, now: datetime) -> Partner:
        values = {"name": name, "email": email, "status": status, "created_at": now, "updated_at": now}
        return rows.partner(_r(self.t.insert("partners", values)))

    def get_partner(self, partner_id: int) -> Partner | None:
        row = self._by_id("partners", partner_id)
        return None if row is None else rows.partner(_r(row))

    def find_partner_by_email(self, email: str) -> Partner | None:
        row = self._one("partners", email=email)
        return None if row is None else rows.partner(_r(row))

    def list_partners(self, page: Page) -> list[Partner]:
        return [rows.partner(_r(r)) for r in _paged(self.t.select("partners"), page)]

    def update_partner(self, partner_id: int, changes: PartnerUpdate, now: datetime) -> None:
        self._update("partners", partner_id, {**rows.set_fields(changes), "updated_at": now})

    # offers
    def insert_offer(self, offer: OfferCreate, now: datetime) -> Offer:
        values = _fields(offer)
        caps = [c.rule() for c in values.pop("caps")]
        row = self.t.insert("offers", _columns({**values, "created_at": now, "updated_at": now}))
        self._replace_caps(row["id"], caps)
        return rows.offer(_r(row), self._caps(row["id"]))

    def get_offer(self, offer_id: int) -> Offer | None:
        row = self._by_id("offers", offer_id)
        return None if row is None else rows.offer(_r(row), self._caps(offer_id))

    def list_offers(self, page: Page) -> list[Offer]:
        return [rows.offer(_r(r), self._caps(r["id"])) for r in _paged(self.t.select("offers"), page)]

    def list_offers_visible_to(self, partner_id: int, page: Page) -> list[Offer]:
        approved = {
            r["offer_id"]
            for r in self.t.select(
                "offer_access", lambda r: r["partner_id"] == partner_id and r["status"] == AccessStatus.APPROVED.value
            )
        }
        visible = self.t.select("offers", lambda r: r["visibility"] != Visibility.PRIVATE.value or r["id"] in approved)
        return [rows.offer(_r(r), self._caps(r["id"])) for r in _paged(visible, page)]

    def update_offer(self, offer_id: int, changes: OfferUpdate, now: datetime) -> None:
        values = rows.set_fields(changes, exclude=frozenset({"advertiser_id"}))
        caps = values.pop("caps", None)
        self._update("offers", offer_id, {**values, "updated_at": now})
        if caps is not None:
            self._replace_caps(offer_id, [c.rule() for c in caps])

    def _caps(self, offer_id: int) -> list[Cap]:
        return [rows.cap(_r(r)) for r in self.t.select("offer_caps", lambda r: r["offer_id"] == offer_id)]

    def _replace_caps(self, offer_id: int, caps: Sequence[CapRule]) -> None:
        """Keep the ids (and so the counters) of caps that did not change; replace the others."""
        existing = {c.rule: c.id for c in self._caps(offer_id)}
        keep = {existing[rule] for rule in caps if rule in existing}
        drop = {cap_id for cap_id in existing.values() if cap_id not in keep}
        if drop:
            self.t.delete("offer_caps", lambda r: r["id"] in drop)
        for rule in caps:
            if rule not in existing:
                self.t.insert(
                    "offer_caps",
                    {
                        "offer_id": offer_id,
                        "metric": rule.metric,
                        "period": rule.period,
                        "cap_limit": rule.limit,
                        "per_partner": rule.per_partner,
                    },
                )

    # offer events
    def insert_offer_event(self, offer_id: int, event: OfferEventCreate, now: datetime) -> OfferEvent:
        values = {**_fields(event), "offer_id": offer_id, "created_at": now}
        return rows.offer_event(_r(self.t.insert("offer_events", _columns(values))))

    def list_offer_events(self, offer_id: int) -> list[OfferEvent]:
        return [rows.offer_event(_r(r)) for r in self.t.select("offer_events", lambda r: r["offer_id"] == offer_id)]

    def update_offer_event(self, event_id: int, changes: OfferEventUpdate) -> None:
        self._update("offer_events", event_id, rows.set_fields(changes))

    # offer access
    def get_access(self, offer_id: int, partner_id: int) -> OfferAccess | None:
        row = self._one("offer_access", offer_id=offer_id, partner_id=partner_id)
        return None if row is None else rows.access(_r(row))

    def get_access_by_id(self, access_id: int) -> OfferAccess | None:
        row = self._by_id("offer_access", access_id)
        return None if row is None else rows.access(_r(row))

    def save_access(self, access: OfferAccessCreate, now: datetime) -> OfferAccess:
        current = self.get_access(access.offer_id, access.partner_id)
        if current is None:
            values = {**_fields(access), "created_at": now, "updated_at": now}
            return rows.access(_r(self.t.insert("offer_access", _columns(values))))
        self._update("offer_access", current.id, {"status": access.status, "reason": access.reason, "updated_at": now})
        row = self._by_id("offer_access", current.id)
        assert row is not None
        return rows.access(_r(row))

    def update_access(self, access_id: int, changes: OfferAccessUpdate, now: datetime) -> None:
        self._update("offer_access", access_id, {**rows.set_fields(changes), "updated_at": now})

    def list_access(self, page: Page) -> list[OfferAccess]:
        return [rows.access(_r(r)) for r in _paged(self.t.select("offer_access"), page)]

    # partner payouts
    def insert_partner_payout(self, offer_id: int, payout: PartnerPayoutCreate, now: datetime) -> PartnerPayout:
        """Store the payout, replacing the partner's earlier one for the same offer and event."""
        same = (offer_id, payout.partner_id, payout.event_id)
        self.t.delete("partner_payouts", lambda r: (r["offer_id"], r["partner_id"], r["event_id"]) == same)
        values = {**_fields(payout), "offer_id": offer_id, "created_at": now}
        return rows.partner_payout(_r(self.t.insert("partner_payouts", _columns(values))))

    def list_partner_payouts(self, offer_id: int) -> list[PartnerPayout]:
        found = self.t.select("partner_payouts", lambda r: r["offer_id"] == offer_id)
        return [rows.partner_payout(_r(r)) for r in found]

    def delete_partner_payout(self, offer_id: int, payout_id: int) -> bool:
        return bool(self.t.delete("partner_payouts", lambda r: (r["id"], r["offer_id"]) == (payout_id, offer_id)))

    # API keys
    def insert_api_key(
        self,
        role: str,
        advertiser_id: int | None,
        partner_id: int | None,
        key_hash: str,
        prefix: str,
        now: datetime,
    ) -> ApiKey:
        values = {"role": role, "advertiser_id": advertiser_id, "partner_id": partner_id,
                  "key_hash": key_hash, "prefix": prefix, "created_at": now}  # fmt: skip
        return rows.api_key(_r(self.t.insert("api_keys", values)))

    def find_api_key(self, key_hash: str) -> ApiKey | None:
        row = self._one("api_keys", key_hash=key_hash, revoked_at=None)
        return None if row is None else rows.api_key(_r(row))

    def list_api_keys(self, page: Page) -> list[ApiKey]:
        live = self.t.select("api_keys", lambda r: r["revoked_at"] is None)
        return [rows.api_key(_r(r)) for r in _paged(live, page)]

    def revoke_api_key(self, key_id: int, now: datetime) -> bool:
        revoked = self.t.update("api_keys", lambda r: r["id"] == key_id and r["revoked_at"] is None,
                                {"revoked_at": now})  # fmt: skip
        return bool(revoked)

    # clicks and caps
    def insert_click(self, click: NewClick) -> Click:
        values: dict[str, Any] = {
            "transaction_id": click.transaction_id, "offer_id": click.offer_id, "partner_id": click.partner_id,
            "advertiser_id": click.advertiser_id, "source_id": click.source_id, "ip": click.ip,
            "user_agent": click.user_agent, "device_type": click.device.device_type, "os": click.device.os,
            "browser": click.device.browser, "is_bot": click.device.is_bot, "country": click.country,
            "referrer": click.referrer, "verdict": click.verdict, "reject_reason": click.reject_reason,
            "revenue": click.revenue, "payout": click.payout, "created_at": click.created_at,
        }  # fmt: skip
        values.update({f"sub{i}": sub for i, sub in enumerate(click.subs, start=1)})
        since = click.created_at - UNIQUE_CLICK_WINDOW
        values["is_unique"] = click.ip is not None and not self.t.select("clicks", lambda r: (
            r["offer_id"], r["partner_id"], r["ip"]) == (click.offer_id, click.partner_id, click.ip)
            and r["created_at"] > since)  # fmt: skip
        return rows.click(_r(self.t.insert("clicks", values)))

    def get_click(self, transaction_id: str) -> Click | None:
        row = self._one("clicks", transaction_id=transaction_id)
        return None if row is None else rows.click(_r(row))

    def list_clicks(self, page: Page) -> list[Click]:
        return [rows.click(_r(r)) for r in _paged(self.t.select("clicks"), page)]

    def take_caps(self, counters: Sequence[tuple[CapCounterKey, int]]) -> bool:
        """Count one action against every counter, or against none when one of them is full."""
        mark = self.t.mark()
        for key, limit in counters:
            if not self._take(key, limit):
                self.t.undo_to(mark)
                return False
        return True

    def _take(self, key: CapCounterKey, limit: int) -> bool:
        if self.t.get("cap_counters", key.cap_id, key.scope, key.period_start) is None:
            self.t.insert("cap_counters", {"cap_id": key.cap_id, "scope": key.scope,
                                           "period_start": key.period_start, "used": 0})  # fmt: skip
        counter = self.t.rows["cap_counters"][(key.cap_id, key.scope, key.period_start)]
        if counter["used"] >= limit:
            return False
        match = (key.cap_id, key.scope, key.period_start)
        self.t.update("cap_counters", lambda r: (r["cap_id"], r["scope"], r["period_start"]) == match,
                      {"used": counter["used"] + 1})  # fmt: skip
        return True

    # conversions
    def find_conversion_by_dedup_key(self, key: str) -> Conversion | None:
        row = self._one("conversions", dedup_key=key)
        return None if row is None else rows.conversion(_r(row))

    def has_base_conversion(self, click_id: int) -> bool:
        return bool(self.t.select("conversions", lambda r: r["click_id"] == click_id and r["event_id"] is None))

    def base_conversion_statuses(self, click_id: int) -> frozenset[ConversionStatus]:
        found = self.t.select("conversions", lambda r: r["click_id"] == click_id and r["event_id"] is None)
        return frozenset(ConversionStatus(r["status"]) for r in found)

    def insert_conversion(self, conversion: NewConversion) -> Conversion:
        values = {name: value for name, value in _fields(conversion).items() if name != "advs"}
        values["trace"] = stored_steps(conversion.trace)
        values["updated_at"] = conversion.created_at
        values.update({f"adv{i}": adv for i, adv in enumerate(conversion.advs, start=1)})
        if conversion.dedup_key is not None and self._one("conversions", dedup_key=conversion.dedup_key):
            raise DuplicateKey(str(conversion.dedup_key))  # as a concurrent writer that took the key first
        return rows.conversion(_r(self.t.insert("conversions", values)))

    def get_conversion(self, conversion_id: int) -> Conversion | None:
        row = self._by_id("conversions", conversion_id)
        return None if row is None else rows.conversion(_r(row))

    def hold_conversion(self, conversion_id: int) -> Conversion | None:
        return self.get_conversion(conversion_id)  # one writer at a time: nothing else changes it meanwhile

    def list_conversions(self, page: Page) -> list[Conversion]:
        return [rows.conversion(_r(r)) for r in _paged(self.t.select("conversions"), page)]

    def update_conversion_status(
        self,
        conversion_id: int,
        status: ConversionStatus,
        reason: str | None,
        trace: Sequence[TraceStep],
        now: datetime,
    ) -> None:
        changes = {"status": status, "status_reason": reason, "trace": stored_steps(trace), "updated_at": now}
        self.t.update("conversions", lambda r: r["id"] == conversion_id, changes)

    def update_conversion_money(
        self,
        conversion_id: int,
        amount: Decimal | None,
        revenue: Decimal,
        payout: Decimal,
        trace: Sequence[TraceStep],
        now: datetime,
    ) -> None:
        changes = {"amount": amount, "revenue": revenue, "payout": payout, "trace": stored_steps(trace),
                   "updated_at": now}  # fmt: skip
        self.t.update("conversions", lambda r: r["id"] == conversion_id, changes)

    def report(self, query: ReportQuery) -> list[ReportLine]:
        return _performance_report(self.t, query)

    def report_with_totals(self, query: ReportQuery) -> tuple[list[ReportLine], list[ReportLine]]:
        return _performance_report(self.t, query), _performance_report(self.t, replace(query, group_by=()))

    def report_versions(self, first: datetime, last: datetime) -> dict[datetime, int]:
        """Every hour changes with every write (the fake keeps no rollups)."""
        return {EVERY_HOUR: self.t.changes}

    # sources
    @contextmanager
    def savepoint(self) -> Iterator[None]:
        mark = self.t.mark()
        try:
            yield
        except BaseException:
            self.t.undo_to(mark)
            raise

    def insert_source(self, source: NewSource, now: datetime) -> Source:
        values = {**_fields(source), "settings": jsonable(source.settings), "created_at": now, "updated_at": now}
        try:
            row = self.t.insert("sources", values)
        except IntegrityViolation:
            raise Conflict("write_key: another source has this write key") from None
        return _source(row)

    def get_source(self, source_id: int) -> Source | None:
        row = self._by_id("sources", source_id)
        return None if row is None else _source(row)

    def find_source_by_write_key(self, write_key: str) -> Source | None:
        row = self._one("sources", write_key=write_key)
        return None if row is None else _source(row)

    def list_sources(self, page: Page) -> list[Source]:
        return [_source(r) for r in _paged(self.t.select("sources"), page)]

    def update_source(self, source_id: int, changes: SourceUpdate, now: datetime) -> None:
        values = {name: jsonable(value) for name, value in rows.set_fields(changes).items()}
        self.t.update("sources", lambda r: r["id"] == source_id, {**values, "updated_at": now})

    # messages
    def insert_segment_message(self, message: NewSegmentMessage, result: MessageResult | None = None) -> int | None:
        """Store a message; None when the source already has one with this messageId (a duplicate)."""
        values = {**_fields(message), "payload": jsonable(message.payload), "outcome": MessageOutcome.IGNORED,
                  "detail": None, "conversion_id": None, "customer_id": None, "mapped": {}}  # fmt: skip
        if result is not None:
            values |= {**_fields(result), "mapped": jsonable(result.mapped)}
        if self._one("segment_messages", source_id=message.source_id, message_id=message.message_id):
            return None
        row_id: int = self.t.insert("segment_messages", values)["id"]
        return row_id

    def stored_message_ids(self, source_id: int, message_ids: Sequence[str]) -> set[str]:
        wanted = set(message_ids)
        rows_ = self.t.select("segment_messages")
        return {r["message_id"] for r in rows_ if r["source_id"] == source_id and r["message_id"] in wanted}

    def update_segment_message(self, row_id: int, result: MessageResult) -> None:
        changes = {**_fields(result), "mapped": jsonable(result.mapped)}
        self.t.update("segment_messages", lambda r: r["id"] == row_id, changes)

    def list_segment_messages(self, page: Page) -> list[StoredMessage]:
        return [_message(r) for r in _paged(self.t.select("segment_messages"), page)]

    # customers
    def find_customers(self, source_id: int, identities: Sequence[str]) -> list[Customer]:
        wanted = set(identities)
        linked = {
            r["customer_id"]
            for r in self.t.select(
                "customer_identities", lambda r: r["source_id"] == source_id and r["identity"] in wanted
            )
        }
        return [self._customer(r) for r in self.t.select("customers", lambda r: r["id"] in linked)]

    def get_customer(self, customer_id: int) -> Customer | None:
        row = self._by_id("customers", customer_id)
        return None if row is None else self._customer(row)

    def list_customers(self, page: Page) -> list[Customer]:
        filters = dict(page.filters)
        identity = filters.pop("identity", None)
        event = filters.pop("event", None)
        found = self.t.select("customers")
        if identity is not None:
            linked = {
                r["customer_id"] for r in self.t.select("customer_identities", lambda r: r["identity"] == identity)
            }
            found = [r for r in found if r["id"] in linked]
        if event is not None:
            sent = {
                r["customer_id"]
                for r in self.t.select("customer_activities", lambda r: r["kind"] == "event" and r["event"] == event)
            }
            found = [r for r in found if r["id"] in sent]
        narrowed = Page(page.limit, page.cursor, page.created_from, page.created_to, filters)
        return [self._customer(r) for r in _paged(found, narrowed)]

    def insert_customer(self, source_id: int, now: datetime) -> Customer:
        values = {"source_id": source_id, "previous_ids": [], "traits": {}, "group_traits": {}, "audiences": [],
                  "status": "active", "visits": 0, "created_at": now, "updated_at": now}  # fmt: skip
        return self._customer(self.t.insert("customers", values))

    def link_identity(self, source_id: int, identity: str, customer_id: int) -> None:
        mark = self.t.mark()
        try:
            self.t.insert(
                "customer_identities", {"source_id": source_id, "identity": identity, "customer_id": customer_id}
            )
        except IntegrityViolation as error:
            self.t.undo_to(mark)
            raise DuplicateKey(identity) from error

    def update_customer(self, customer_id: int, changes: CustomerChanges, now: datetime) -> None:
        values = {k: jsonable(v) if isinstance(v, Mapping | list | tuple) else v for k, v in changes.given().items()}
        self.t.update("customers", lambda r: r["id"] == customer_id, {**values, "updated_at": now})

    def merge_customers(self, keep_id: int, drop_id: int) -> None:
        """Move the dropped customer's identities, activity and messages to the kept one, then delete it; the
        kept one keeps its earliest signup and churn (keyed as its own), its activity counts for its click."""
        for table in ("customer_identities", "customer_activities", "segment_messages"):
            self.t.update(table, lambda r: r["customer_id"] == drop_id, {"customer_id": keep_id})
        self.t.delete("customers", lambda r: r["id"] == drop_id)
        for kind in ("signup", "churn"):
            rows = sorted(self.t.select("customer_activities", lambda r, kind=kind: (r["customer_id"], r["kind"])
                                        == (keep_id, kind)), key=lambda r: (r["occurred_at"], r["id"]))  # fmt: skip
            later = {r["id"] for r in rows[1:]}
            self.t.delete("customer_activities", lambda r, later=later: r["id"] in later)  # type: ignore[misc]
            if rows:
                self.t.update("customer_activities", lambda r, first=rows[0]["id"]: r["id"] == first,  # type: ignore[misc]
                              {"dedup_key": f"customer:{keep_id}"})  # fmt: skip
        kept = self._by_id("customers", keep_id)
        if kept is not None and kept["partner_id"] is not None:
            self.t.update("customer_activities", lambda r: r["customer_id"] == keep_id,
                          {"offer_id": kept["offer_id"], "partner_id": kept["partner_id"]})  # fmt: skip

    def insert_customer_activity(self, activity: NewCustomerActivity) -> bool:
        key = (activity.source_id, activity.kind, activity.dedup_key)
        if self.t.select("customer_activities", lambda r: (r["source_id"], r["kind"], r["dedup_key"]) == key):
            return False
        self.t.insert("customer_activities", _fields(activity))
        return True

    def set_activity_attribution(self, customer_id: int, offer_id: int, partner_id: int) -> None:
        """Activity recorded before the customer's click was known now counts for that click's partner."""
        self.t.update("customer_activities", lambda r: r["customer_id"] == customer_id and r["partner_id"] is None,
                      {"offer_id": offer_id, "partner_id": partner_id})  # fmt: skip

    def customer_report(
        self, group_by: str, created_from: datetime | None, created_to: datetime | None, filters: Mapping[str, int]
    ) -> list[dict[str, Any]]:
        return _customer_report(self.t, group_by, created_from, created_to, filters)

    def customer_event_report(
        self, group_by: str, created_from: datetime | None, created_to: datetime | None, filters: Mapping[str, Any]
    ) -> list[dict[str, Any]]:
        return _customer_event_report(self.t, group_by, created_from, created_to, filters)

    def _customer(self, row: Row) -> Customer:
        identities = sorted(
            r["identity"] for r in self.t.select("customer_identities", lambda r: r["customer_id"] == row["id"])
        )
        events: dict[str, int] = {}
        for r in self.t.select("customer_activities", lambda r: r["customer_id"] == row["id"] and r["kind"] == "event"):
            events[r["event"]] = events.get(r["event"], 0) + 1
        return Customer(
            id=row["id"], source_id=row["source_id"], user_id=row["user_id"],
            anonymous_ids=[i.partition(":")[2] for i in identities if i.startswith("anonymous:")],
            previous_ids=list(row["previous_ids"]), traits=dict(row["traits"]), group_id=row["group_id"],
            group_traits=dict(row["group_traits"]), audiences=list(row["audiences"]), status=row["status"],
            transaction_id=row["transaction_id"], offer_id=row["offer_id"], partner_id=row["partner_id"],
            visits=row["visits"], signed_up_at=row["signed_up_at"], churned_at=row["churned_at"],
            created_at=row["created_at"], updated_at=row["updated_at"], identities=identities,
            events=dict(sorted(events.items())),
        )  # fmt: skip

    # webhook endpoints
    def insert_webhook_endpoint(self, endpoint: WebhookCreate, secret: str, now: datetime) -> WebhookEndpoint:
        values = {
            "url": endpoint.url,
            "description": endpoint.description,
            "event_types": endpoint.event_types,
            "status": EndpointStatus.ACTIVE,
            "secret": secret,
            "created_at": now,
            "updated_at": now,
        }
        return rows.webhook_endpoint(_r(self.t.insert("webhook_endpoints", values)))

    def get_webhook_endpoint(self, endpoint_id: int) -> WebhookEndpoint | None:
        row = self._by_id("webhook_endpoints", endpoint_id)
        return None if row is None else rows.webhook_endpoint(_r(row))

    def list_webhook_endpoints(self, page: Page) -> list[WebhookEndpoint]:
        return [rows.webhook_endpoint(_r(r)) for r in _paged(self.t.select("webhook_endpoints"), page)]

    def all_webhook_endpoints(self) -> list[WebhookEndpoint]:
        return [rows.webhook_endpoint(_r(r)) for r in self.t.select("webhook_endpoints")]

    def update_webhook_endpoint(self, endpoint_id: int, changes: WebhookUpdate, now: datetime) -> None:
        values = rows.set_fields(changes, exclude=frozenset({"status"}))
        self._update("webhook_endpoints", endpoint_id, {**values, "updated_at": now})

    def set_webhook_endpoint_state(self, endpoint_id: int, state: EndpointState, now: datetime) -> None:
        self._update("webhook_endpoints", endpoint_id, {**_fields(state), "updated_at": now})

    def clear_webhook_endpoint_failure(self, endpoint_id: int, now: datetime) -> None:
        endpoint = self.get_webhook_endpoint(endpoint_id)
        if endpoint is not None and endpoint.failing_since is not None:
            self._update("webhook_endpoints", endpoint_id, {"failing_since": None, "updated_at": now})

    def rotate_webhook_secret(self, endpoint_id: int, rotation: SecretRotation, now: datetime) -> None:
        self._update("webhook_endpoints", endpoint_id, {
            "secret": rotation.secret, "previous_secret": rotation.previous_secret,
            "previous_secret_expires_at": rotation.previous_expires_at, "updated_at": now,
        })  # fmt: skip

    # partner postbacks
    def insert_partner_postback(
        self, partner_id: int, postback: PartnerPostbackCreate, now: datetime
    ) -> PartnerPostback:
        values = {
            **rows.set_fields(postback, exclude=frozenset({"partner_id"})), "partner_id": partner_id,
            "status": PostbackStatus.ACTIVE, "failure_count": 0, "created_at": now, "updated_at": now,
        }  # fmt: skip
        return rows.partner_postback(_r(self.t.insert("partner_postbacks", _columns(values))))

    def get_partner_postback(self, postback_id: int) -> PartnerPostback | None:
        row = self._by_id("partner_postbacks", postback_id)
        return None if row is None or row["status"] == DELETED_POSTBACK else rows.partner_postback(_r(row))

    def list_partner_postbacks(self, page: Page) -> list[PartnerPostback]:
        live = self.t.select("partner_postbacks", lambda r: r["status"] != DELETED_POSTBACK)
        return [rows.partner_postback(_r(r)) for r in _paged(live, page)]

    def postbacks_of_partner(self, partner_id: int) -> list[PartnerPostback]:
        found = self.t.select(
            "partner_postbacks", lambda r: r["partner_id"] == partner_id and r["status"] != DELETED_POSTBACK
        )
        return [rows.partner_postback(_r(r)) for r in found]

    # traffic rules: what a click reads of them
    def blocklist_for(self, offer_id: int, partner_id: int) -> Blocklist:
        def applies(r: Row) -> bool:
            return r["offer_id"] in (None, offer_id) and r["partner_id"] in (None, partner_id)

        rules = [rows.traffic_rule(_r(r)) for r in self.t.select("traffic_rules", applies)]
        blocks = self.t.select("traffic_blocks", lambda r: (r["offer_id"], r["partner_id"]) == (offer_id, partner_id))
        return blocklist(rules, [rows.traffic_block(_r(r)) for r in blocks])

    def delete_partner_postback(self, postback_id: int, now: datetime) -> None:
        if self.get_partner_postback(postback_id) is not None:
            self._update("partner_postbacks", postback_id, {"status": DELETED_POSTBACK, "updated_at": now})

    def update_partner_postback(self, postback_id: int, changes: PartnerPostbackUpdate, now: datetime) -> None:
        values = rows.set_fields(changes, exclude=frozenset({"partner_id", "status"}))
        self._update("partner_postbacks", postback_id, {**values, "updated_at": now})

    def set_partner_postback_state(self, postback_id: int, state: PostbackState, now: datetime) -> None:
        self._update("partner_postbacks", postback_id, {**_fields(state), "updated_at": now})

    def clear_partner_postback_failures(self, postback_id: int, now: datetime) -> None:
        postback = self.get_partner_postback(postback_id)
        if postback is not None and postback.failure_count:
            self._update("partner_postbacks", postback_id, {"failure_count": 0, "failure_started_at": None,
                                                             "updated_at": now})  # fmt: skip

    # the outbox
    def insert_delivery(self, delivery: NewDelivery) -> Delivery | None:
        values = {
            "message_id": "msg_" + secrets.token_hex(16), "kind": delivery.kind, "endpoint_id": delivery.endpoint_id,
            "postback_id": delivery.postback_id, "event_type": delivery.event_type, "method": delivery.method,
            "url": delivery.url, "body": delivery.body, "dedup_key": delivery.dedup_key, "status": delivery.status,
            "attempts": 0, "next_attempt_at": delivery.next_attempt_at, "created_at": delivery.created_at,
            "updated_at": delivery.created_at,
        }  # fmt: skip
        try:
            return rows.delivery(_r(self.t.insert("deliveries", values)))
        except IntegrityViolation as error:
            if delivery.dedup_key is None or error.constraint != ("dedup_key",):  # the port's only None
                raise
            return None

    def get_delivery(self, delivery_id: int) -> Delivery | None:
        row = self._by_id("deliveries", delivery_id)
        return None if row is None else rows.delivery(_r(row))

    def list_deliveries(self, page: Page) -> list[Delivery]:
        return [rows.delivery(_r(r)) for r in _paged(self.t.select("deliveries"), page)]

    def list_attempts(self, delivery_id: int) -> list[DeliveryAttempt]:
        found = self.t.select("delivery_attempts", lambda r: r["delivery_id"] == delivery_id)
        return [rows.delivery_attempt(_r(r)) for r in found]

    def claim_deliveries(self, worker: str, now: datetime, lease_until: datetime, limit: int) -> list[Delivery]:
        """Due pending deliveries and those whose lease expired, earliest first; leased to `worker`."""

        def due(r: Row) -> bool:
            pending = r["status"] == _PENDING and r["next_attempt_at"] <= now
            return bool(pending or (r["status"] == _SENDING and r["lease_expires_at"] < now))

        found = sorted(self.t.select("deliveries", due), key=lambda r: (r["next_attempt_at"], r["id"]))[:limit]
        chosen = {r["id"] for r in found}
        lease = {"status": _SENDING, "lease_owner": worker, "lease_expires_at": lease_until, "updated_at": now}
        self.t.update("deliveries", lambda r: r["id"] in chosen, lease)
        claimed = self.t.select("deliveries", lambda r: r["id"] in chosen)
        return sorted((rows.delivery(_r(r)) for r in claimed), key=lambda d: (d.next_attempt_at, d.id))

    def release_delivery(self, delivery_id: int, worker: str, release: Release, now: datetime) -> bool:
        def held(r: Row) -> bool:
            return bool(r["id"] == delivery_id and r["status"] == _SENDING and r["lease_owner"] == worker)

        values = {**release.columns(), "lease_owner": None, "lease_expires_at": None, "updated_at": now}
        return bool(self.t.update("deliveries", held, values))

    def release_deliveries(self, releases: Sequence[tuple[int, Release]], worker: str, now: datetime) -> list[bool]:
        return [self.release_delivery(delivery_id, worker, release, now) for delivery_id, release in releases]

    def insert_attempts(self, attempts: Sequence[NewAttempt]) -> None:
        for attempt in attempts:
            self.t.insert("delivery_attempts", _fields(attempt))

    def requeue_delivery(self, delivery_id: int, now: datetime) -> bool:
        """Send again (same message id) with a fresh series of attempts; not while it is being sent."""
        return bool(self.t.update("deliveries", lambda r: r["id"] == delivery_id and r["status"] != _SENDING,
                                  _fresh(now)))  # fmt: skip

    def requeue_deliveries(self, requeue: Requeue, now: datetime) -> int:
        start, end = _stored(_TIME, requeue.created_from), _stored(_TIME, requeue.created_to)
        statuses = {s.value for s in requeue.statuses}

        def chosen(r: Row) -> bool:
            return (start <= r["created_at"] < end and r["status"] in statuses
                    and requeue.endpoint_id in (None, r["endpoint_id"])
                    and requeue.postback_id in (None, r["postback_id"]))  # fmt: skip

        return self.t.update("deliveries", chosen, _fresh(now))

    # users, their passwords, sessions and one-time links
    def insert_user(self, user: NewUser) -> User:
        values = {**_columns(_fields(user)), "updated_at": user.created_at}
        return stored_users.user(_r(self.t.insert("users", values)))

    def get_user(self, user_id: int) -> User | None:
        row = self._by_id("users", user_id)
        return None if row is None else stored_users.user(_r(row))

    def find_user_by_email(self, email: str) -> User | None:
        row = self._one("users", email=email)
        return None if row is None else stored_users.user(_r(row))

    def list_users(self, page: Page) -> list[User]:
        return [stored_users.user(_r(r)) for r in _paged(self.t.select("users"), page)]

    def update_user(self, user_id: int, changes: UserChanges, now: datetime) -> None:
        self.t.update("users", lambda r: r["id"] == user_id, {**_columns(changes.given()), "updated_at": now})

    def get_password_hash(self, user_id: int) -> str | None:
        row = self.t.get("user_passwords", user_id)
        return None if row is None else str(row["password_hash"])

    def set_password_hash(self, user_id: int, password_hash: str, now: datetime) -> None:
        values = {"password_hash": password_hash, "updated_at": now}
        if not self.t.update("user_passwords", lambda r: r["user_id"] == user_id, values):
            self.t.insert("user_passwords", {"user_id": user_id, **values})

    def insert_session(self, session: NewSession) -> None:
        self.t.insert("user_sessions", {**_fields(session), "last_seen_at": session.created_at})

    def find_session(self, token_hash: str) -> UserSession | None:
        row = self._one("user_sessions", token_hash=token_hash)
        return None if row is None else stored_users.session(_r(row))

    def touch_session(self, session_id: int, now: datetime) -> None:
        self.t.update("user_sessions", lambda r: r["id"] == session_id, {"last_seen_at": now})

    def delete_session(self, token_hash: str) -> None:
        self.t.delete("user_sessions", lambda r: r["token_hash"] == token_hash)

    def end_sessions(self, user_id: int, expired_by: datetime | None = None) -> None:
        by = _stored(_TIME, expired_by)
        self.t.delete("user_sessions", lambda r: r["user_id"] == user_id and (by is None or r["expires_at"] <= by))

    def insert_link(self, link: NewLink) -> None:
        self.t.insert("user_links", _columns(_fields(link)))

    def find_link(self, token_hash: str) -> UserLink | None:
        row = self._one("user_links", token_hash=token_hash)
        return None if row is None else stored_users.link(_r(row))

    def use_link(self, link_id: int, now: datetime) -> None:
        self.t.update("user_links", lambda r: r["id"] == link_id, {"used_at": now})

    def void_links(self, user_id: int, kind: LinkKind | None, now: datetime) -> None:
        at = _stored(_TIME, now)

        def open_link(r: Row) -> bool:
            return (r["user_id"] == user_id and r["used_at"] is None and r["expires_at"] > at
                    and kind in (None, r["kind"]))  # fmt: skip

        self.t.update("user_links", open_link, {"expires_at": now})


def _fresh(now: datetime) -> dict[str, Any]:
    return {"status": _PENDING, "attempts": 0, "next_attempt_at": now, "lease_owner": None,
            "lease_expires_at": None, "updated_at": now}  # fmt: skip


def _source(row: Row) -> Source:
    return Source(row["id"], row["name"], row["preset"], row["write_key"], row["webhook_secret"],
                  dict(row["settings"]), row["created_at"], row["updated_at"], row["advertiser_id"])  # fmt: skip


def _message(row: Row) -> StoredMessage:
    values = {f.name: row[f.name] for f in fields(StoredMessage)}
    return StoredMessage(
        **{
            **values,
            "outcome": MessageOutcome(row["outcome"]),
            "mapped": dict(row["mapped"]),
            "payload": dict(row["payload"]),
        }
    )


# --- reports ---------------------------------------------------------------------------------------------------

_OWN_DIMENSIONS = {"offer": "offer_id", "partner": "partner_id", "advertiser": "advertiser_id"}
_CLICK_COLUMNS = {**{d: d for d in CLICK_DIMENSIONS}, "device": "device_type"}
_CONVERSION_COLUMNS = {"event": "event_name", "status": "status", "origin": "origin"}


def _within(row: Row, column: str, start: datetime | None, end: datetime | None) -> bool:
    return (start is None or row[column] >= start) and (end is None or row[column] < end)


def _performance_report(tables: Tables, query: ReportQuery) -> list[ReportLine]:
    """Clicks and conversions grouped by the dimensions and currency, as `storage/reports.py` counts them in SQL
    (time buckets by the same `ZoneOffsets`, over the span of the clicks and conversions counted)."""
    return _PerformanceReport(tables, query).lines()


class _PerformanceReport:
    def __init__(self, tables: Tables, query: ReportQuery) -> None:
        self.query = query
        self.start, self.end = _stored(_TIME, query.created_from), _stored(_TIME, query.created_to)
        ids = {"offer_id": query.offer_id, "partner_id": query.partner_id, "advertiser_id": query.advertiser_id}
        self.ids = {name: value for name, value in ids.items() if value is not None}
        self.clicks = {r["id"]: r for r in tables.select("clicks")}
        self.currencies = {r["id"]: r["currency"] for r in tables.select("offers")}
        self.conversions = tables.select("conversions")
        self.found: dict[tuple[Any, ...], dict[str, Any]] = {}
        self.offsets: ZoneOffsets | None = None

    def currency(self, row: Row, conversion: bool) -> str:
        return str(row["currency"] if conversion else self.currencies.get(row["offer_id"], REPORT_CURRENCY))

    def kept(self, row: Row, click: Row, time: datetime, conversion: bool) -> bool:
        filters = self.query.filters
        return (
            (self.start is None or time >= self.start) and (self.end is None or time < self.end)
            and all(row[k] == v for k, v in self.ids.items())
            and all(click[_CLICK_COLUMNS[k]] == v for k, v in filters.items() if k in _CLICK_COLUMNS)
            and all(row[_CONVERSION_COLUMNS[k]] == v for k, v in filters.items()
                    if k in _CONVERSION_COLUMNS and conversion)
            and filters.get("currency", self.currency(row, conversion)) == self.currency(row, conversion)
        )  # fmt: skip

    def dimension(self, name: str, row: Row, click: Row, time: datetime, conversion: bool) -> Any:
        if name in _OWN_DIMENSIONS:
            return row[_OWN_DIMENSIONS[name]]
        if name in TIME_DIMENSIONS:
            assert self.offsets is not None
            return self.offsets.key(name, self.offsets.label(name, time), self.offsets.at(time))
        if name in _CONVERSION_COLUMNS:
            return row[_CONVERSION_COLUMNS[name]] if conversion else None
        if name == "currency":
            return self.currency(row, conversion)
        return click[_CLICK_COLUMNS[name]]

    def add(self, row: Row, click: Row, time: datetime, conversion: bool, **metrics: Any) -> None:
        group = {d: self.dimension(d, row, click, time, conversion) for d in self.query.group_by}
        key = (*group.values(), self.currency(row, conversion))
        line = self.found.setdefault(key, {"group": group, "currency": self.currency(row, conversion)})
        for name, value in metrics.items():
            line[name] = line.get(name, 0) + value

    def lines(self) -> list[ReportLine]:
        by_click = self.query.date_basis == "click"
        counted_clicks = [c for c in self.clicks.values() if self.kept(c, c, c["created_at"], False)]
        counted_conversions = [
            (conversion, click, time) for conversion in self.conversions
            if self.kept(conversion, click := self.clicks[conversion["click_id"]],
                         time := click["created_at"] if by_click else conversion["created_at"], True)
        ]  # fmt: skip
        times = [c["created_at"] for c in counted_clicks] + [time for _, _, time in counted_conversions]
        if times and self.query.times:
            self.offsets = ZoneOffsets.over(self.query.zone, min(times), max(times))
        for click in counted_clicks:
            self.add(click, click, click["created_at"], False, gross_clicks=1,
                     clicks=int(click["verdict"] == "accepted" and not click["is_bot"]),
                     unique_clicks=int(click["is_unique"]),
                     bot_clicks=int(click["is_bot"]), rejected_clicks=int(click["verdict"] == "rejected"),
                     revenue=click["revenue"], payout=click["payout"])  # fmt: skip
        for conversion, click, time in counted_conversions:
            status, base = conversion["status"], conversion["event_id"] is None
            approved, pending, counted = status == "approved", status == "pending", status != "rejected"
            self.add(conversion, click, time, True,
                     conversions=int(base and counted), events=int(not base and counted), pending=int(pending),
                     orders=int(counted and conversion["amount"] is not None), rejected=int(not counted),
                     revenue=conversion["revenue"] if approved else _ZERO,
                     payout=conversion["payout"] if approved else _ZERO,
                     pending_revenue=conversion["revenue"] if pending else _ZERO,
                     pending_payout=conversion["payout"] if pending else _ZERO,
                     sale_amount=(conversion["amount"] or _ZERO) if counted else _ZERO)  # fmt: skip
        lines = [_line(found) for found in self.found.values()]
        return _ordered(lines, self.query.group_by)


def _line(found: dict[str, Any]) -> ReportLine:
    """A line of what was counted: money in storage units, the group without the currency (the line's own)."""
    group = {name: value for name, value in found.pop("group").items() if name != "currency"}
    units = {name: int(Decimal(found[name]) * _SCALE) for name in _MONEY_METRICS if name in found}
    return ReportLine(group, **{**found, **units})


_MONEY_METRICS = ("revenue", "payout", "pending_revenue", "pending_payout", "sale_amount")


def _ordered(lines: list[ReportLine], group_by: Sequence[str]) -> list[ReportLine]:
    """Lines in the order of their groups' values (time buckets in time, none last), then of their currency."""

    def order(dimension: str, value: object) -> tuple[bool, Any]:
        if value is None:
            return True, ""
        if dimension in TIME_DIMENSIONS and dimension != "date":
            return False, datetime.fromisoformat(str(value))
        return False, value

    names = [d for d in group_by if d != "currency"]
    return sorted(lines, key=lambda line: (*(order(d, line.group.get(d)) for d in names), line.currency or ""))


_CUSTOMER_DIMENSIONS = {"partner": "partner_id", "offer": "offer_id", "source": "source_id"}


def _customer_report(
    tables: Tables,
    group_by: str,
    created_from: datetime | None,
    created_to: datetime | None,
    filters: Mapping[str, int],
) -> list[dict[str, Any]]:
    """Per partner (or offer, or source): new, paying and churned customers (each once), payments, refunds,
    and the payout of the group's Segment conversions (a conversion's source: the first message naming it)."""
    start, end = _stored(_TIME, created_from), _stored(_TIME, created_to)
    column = _CUSTOMER_DIMENSIONS[group_by]
    groups: dict[Any, dict[str, Any]] = {}
    people: dict[tuple[Any, str], set[int]] = {}
    for activity in tables.select("customer_activities"):
        if activity["kind"] == "event" or not _within(activity, "occurred_at", start, end) or any(
                activity[k] != v for k, v in filters.items()):  # fmt: skip
            continue
        row = groups.setdefault(activity[column], {group_by: activity[column]})
        kind, amount = activity["kind"], activity["amount"] or 0
        people.setdefault((activity[column], kind), set()).add(activity["customer_id"])
        row["payments"] = row.get("payments", 0) + (kind == "payment")
        row["refunds"] = row.get("refunds", 0) + (kind == "refund")
        row["payment_amount"] = row.get("payment_amount", 0) + (amount if kind == "payment" else 0)
        row["refund_amount"] = row.get("refund_amount", 0) + (amount if kind == "refund" else 0)
    for key, row in groups.items():
        for name, kind in (("new_customers", "signup"), ("paying_customers", "payment"), ("churned", "churn")):
            row[name] = len(people.get((key, kind), ()))
    for key, paid in _segment_payouts(tables, column, start, end, filters).items():
        row = groups.setdefault(key, {group_by: key})
        row["payout"] = row.get("payout", 0) + paid
    result = []
    for key in sorted(groups, key=lambda k: (k is None, k or 0)):
        row = groups[key]
        for name in ("new_customers", "paying_customers", "payments", "refunds", "churned"):
            row[name] = int(row.get(name) or 0)
        for name in ("payment_amount", "refund_amount", "payout"):
            row[name] = Decimal(row.get(name) or 0).quantize(_PLACES)
        result.append(row)
    return result


def _segment_payouts(
    tables: Tables, column: str, start: datetime | None, end: datetime | None, filters: Mapping[str, int]
) -> dict[Any, Decimal]:
    """The payout of the Segment conversions not rejected, per value of `column` (a conversion's source is
    that of the first message naming it; one no message names has none)."""
    recorded_by: dict[int, int] = {}
    for message in tables.select("segment_messages"):  # in id order
        if message["conversion_id"] is not None:
            recorded_by.setdefault(message["conversion_id"], message["source_id"])
    payouts: dict[Any, Decimal] = {}
    for conversion in tables.select("conversions"):
        where = {"partner_id": conversion["partner_id"], "offer_id": conversion["offer_id"],
                 "source_id": recorded_by.get(conversion["id"])}  # fmt: skip
        if (conversion["origin"] != "segment" or not _within(conversion, "created_at", start, end)
                or any(where[k] != v for k, v in filters.items())
                or (column == "source_id" and where["source_id"] is None)):  # fmt: skip
            continue
        paid = conversion["payout"] if conversion["status"] != "rejected" else Decimal(0)
        payouts[where[column]] = payouts.get(where[column], Decimal(0)) + paid
    return payouts


def _customer_event_report(
    tables: Tables,
    group_by: str,
    created_from: datetime | None,
    created_to: datetime | None,
    filters: Mapping[str, Any],
) -> list[dict[str, Any]]:
    """Custom events per group and event name: how many, and from how many customers."""
    start, end = _stored(_TIME, created_from), _stored(_TIME, created_to)
    column = {**_CUSTOMER_DIMENSIONS, "customer": "customer_id"}[group_by]
    counts: dict[tuple[Any, str], list[Any]] = {}
    for activity in tables.select("customer_activities"):
        if activity["kind"] != "event" or not _within(activity, "occurred_at", start, end) or any(
                activity[k] != v for k, v in filters.items()):  # fmt: skip
            continue
        counted = counts.setdefault((activity[column], activity["event"]), [0, set()])
        counted[0] += 1
        counted[1].add(activity["customer_id"])
    ordered = sorted(counts, key=lambda k: (k[0] is None, k[0] or 0, k[1]))
    return [{group_by: k[0], "event": k[1], "count": counts[k][0], "customers": len(counts[k][1])} for k in ordered]


# --- the database ----------------------------------------------------------------------------------------------


class _Settled(Generic[T]):
    """The outcome of a transaction that has already run, to be awaited like the SQL database's future."""

    def __init__(self, value: T | None, error: BaseException | None) -> None:
        self._value = value
        self._error = error

    def __await__(self) -> Generator[Any, None, T]:
        if self._error is not None:
            raise self._error
        return self._value  # type: ignore[return-value]
        yield  # a generator, so that `await` accepts it


class FakeDatabase:
    """Implements `services.ports.Database` in memory.

    A write runs when it is submitted (as the SQL writer takes it from its queue), in submission order, each
    in its own transaction; awaiting gives its result or raises its error.
    """

    def __init__(self) -> None:
        self.tables = Tables()
        self.writes = 0  # committed writes

    def write(self, work: Callable[[Repository], T]) -> Awaitable[T]:
        try:
            return _Settled(self.write_now(work), None)
        except Exception as error:
            return _Settled(None, error)

    def read(self, work: Callable[[Repository], T]) -> Awaitable[T]:
        try:
            return _Settled(self.read_now(work), None)
        except Exception as error:
            return _Settled(None, error)

    def write_now(self, work: Callable[[Repository], T]) -> T:
        result = self._transaction(work, writable=True)
        self.writes += 1
        return result

    def read_now(self, work: Callable[[Repository], T]) -> T:
        return self._transaction(work, writable=False)

    def _transaction(self, work: Callable[[Repository], T], writable: bool) -> T:
        if self.tables.open:
            raise RuntimeError("a transaction was started inside another one")
        repository = FakeRepository(self.tables)
        self.tables.open, self.tables.writable = True, writable
        try:
            return work(repository)
        except IntegrityViolation as error:
            self.tables.undo_to(0)
            translated = error.translated()
            if translated is error:
                raise
            raise translated from error
        except BaseException:
            self.tables.undo_to(0)
            raise
        finally:
            self.tables.open = self.tables.writable = False
            self.tables.forget()
            repository.close()

    def close(self) -> None:
        """Nothing to release; here so that the fake is closed like the SQL database."""


# --- for service tests -----------------------------------------------------------------------------------------


class FakeClock:
    """A clock the test moves."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, delta: timedelta) -> datetime:
        self.now += delta
        return self.now


B = TypeVar("B")


def body(type_: type[B], **fields: Any) -> B:
    """A request body as the API decodes it from JSON (money may be given as text or `Decimal`)."""
    return decode(msgspec.json.encode(fields), type_)


@dataclass(frozen=True, slots=True)
class Program:
    """An advertiser, one offer of it and an active partner: what most service tests start from."""

    advertiser: Advertiser
    offer: Offer
    partner: Partner


def program(db: FakeDatabase, now: datetime, **offer_fields: Any) -> Program:
    """Write a program through the ports; `offer_fields` change the offer (CPA 10.00 revenue, 6.00 payout)."""

    def work(repo: Repository) -> Program:
        serial = len(repo.list_advertisers(Page(limit=1000))) + 1
        advertiser = repo.insert_advertiser(f"Advertiser {serial}", f"token-{serial}", now)
        offer = repo.insert_offer(body(OfferCreate, **{
            "advertiser_id": advertiser.id, "name": f"Offer {serial}",
            "destination_url": "https://shop.example/land?tid={transaction_id}&s1={sub1}",
            "revenue": {"type": "cpa", "amount": "10.00"}, "payout": {"type": "cpa", "amount": "6.00"},
            **offer_fields,
        }), now)  # fmt: skip
        partner = repo.insert_partner(f"Partner {serial}", f"p{serial}@example.com", "active", now)
        return Program(advertiser, offer, partner)

    return db.write_now(work)


def _implements(repository: FakeRepository, database: FakeDatabase) -> tuple[Repository, Database]:
    """Never called: mypy checks here that the fake still has the shape of every port."""
    return repository, database


def _token_hash(token: str) -> str:
    """The lookup column of a postback token (the SQL store keeps a keyed hash and the token sealed; the fake
    keeps it in clear, its rows never leave the process)."""
    return hashlib.sha256(token.encode()).hexdigest()
