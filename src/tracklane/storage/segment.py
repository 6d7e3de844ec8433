"""SQL for Segment-compatible intake: sources, received messages (unique per source and messageId),
customers with their identities, customer activity and the per-partner customer report."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import fields
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import BigInteger, Connection, bindparam, case, delete, func, insert, select, type_coerce, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError

from tracklane.domain.errors import Conflict
from tracklane.domain.segment.model import Customer, MessageOutcome, Source, StoredMessage
from tracklane.resources.sources import SourceUpdate
from tracklane.services.ports import (
    CustomerChanges,
    DuplicateKey,
    MessageResult,
    NewCustomerActivity,
    NewSegmentMessage,
    NewSource,
    Page,
)
from tracklane.storage.paging import paged
from tracklane.storage.rows import set_fields
from tracklane.storage.schema import (
    conversions,
    customer_activities,
    customer_identities,
    customers,
    segment_messages,
    sources,
)
from tracklane.storage.secret_box import FernetBox, box_of
from tracklane.storage.types import from_units

CUSTOMER_DIMENSIONS = {"partner": "partner_id", "offer": "offer_id", "source": "source_id"}

# Statements run for every message are built once, so SQLAlchemy reuses their compiled form.
# A duplicate (source, messageId) inserts nothing and returns no row: no savepoint, no error to undo.
_INSERT_MESSAGE = {
    name: upsert(segment_messages)
    .on_conflict_do_nothing(index_elements=["source_id", "message_id"])
    .returning(segment_messages.c.id)
    for name, upsert in (("postgresql", pg_insert), ("sqlite", sqlite_insert))
}
_UPDATE_MESSAGE = (
    update(segment_messages)
    .where(segment_messages.c.id == bindparam("row_id"))
    .values(**{name: bindparam(name) for name in ("outcome", "detail", "conversion_id", "customer_id", "mapped")})
)
_CUSTOMERS_BY_IDENTITY = (
    select(customers)
    .where(
        customers.c.id.in_(
            select(customer_identities.c.customer_id).where(
                customer_identities.c.source_id == bindparam("source_id"),
                customer_identities.c.identity.in_(bindparam("identities", expanding=True)),
            )
        )
    )
    .order_by(customers.c.id)
)
_CUSTOMER_BY_ID = select(customers).where(customers.c.id == bindparam("customer_id"))
_IDENTITIES_OF = select(customer_identities.c.identity).where(
    customer_identities.c.customer_id == bindparam("customer_id")
)
_INSERT_CUSTOMER = insert(customers).returning(*customers.c)
_UNLINK_IDENTITY = delete(customer_identities).where(
    customer_identities.c.source_id == bindparam("source_id"), customer_identities.c.identity == bindparam("identity")
)
_LINK_IDENTITY = insert(customer_identities)
_UPDATE_CUSTOMER = update(customers).where(customers.c.id == bindparam("customer_id"))
_INSERT_ACTIVITY = insert(customer_activities)


def jsonable(value: Any) -> Any:
    """JSON columns get exact decimals as strings (money in JSON is a decimal string), never floats."""
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    return value


class SqlSegment:
    conn: Connection

    @contextmanager
    def savepoint(self) -> Iterator[None]:
        with self.conn.begin_nested():
            yield

    # sources
    def insert_source(self, source: NewSource, now: datetime) -> Source:
        values = {**_values(source), "settings": jsonable(source.settings), "created_at": now, "updated_at": now,
                  "webhook_secret": box_of(self.conn).seal(source.webhook_secret)}  # fmt: skip
        try:
            with self.conn.begin_nested():
                row = self.conn.execute(insert(sources).values(**values).returning(*sources.c)).one()
        except IntegrityError as error:
            if "write_key" not in str(error.orig):
                raise
            raise Conflict("write_key: another source has this write key") from None
        return _source(row, box_of(self.conn))

    def get_source(self, source_id: int) -> Source | None:
        row = self.conn.execute(select(sources).where(sources.c.id == source_id)).one_or_none()
        return None if row is None else _source(row, box_of(self.conn))

    def find_source_by_write_key(self, write_key: str) -> Source | None:
        row = self.conn.execute(select(sources).where(sources.c.write_key == write_key)).one_or_none()
        return None if row is None else _source(row, box_of(self.conn))

    def list_sources(self, page: Page) -> list[Source]:
        return [_source(r, box_of(self.conn)) for r in self.conn.execute(paged(select(sources), sources, page))]

    def update_source(self, source_id: int, changes: SourceUpdate, now: datetime) -> None:
        values = {name: jsonable(value) for name, value in set_fields(changes).items()}
        self.conn.execute(update(sources).where(sources.c.id == source_id).values(**values, updated_at=now))

    # messages
    def insert_segment_message(self, message: NewSegmentMessage) -> int | None:
        """Store a message; None when the source already has one with this messageId (a duplicate)."""
        stored = {**_values(message), "payload": jsonable(message.payload), "outcome": MessageOutcome.IGNORED.value,
                  "detail": None, "mapped": {}}  # fmt: skip
        message_id: int | None = self.conn.execute(_INSERT_MESSAGE[self.conn.dialect.name], stored).scalar()
        return message_id

    def update_segment_message(self, row_id: int, result: MessageResult) -> None:
        values = {
            "outcome": result.outcome.value,
            "detail": result.detail,
            "conversion_id": result.conversion_id,
            "customer_id": result.customer_id,
            "mapped": jsonable(result.mapped),
            "row_id": row_id,
        }
        self.conn.execute(_UPDATE_MESSAGE, values)

    def list_segment_messages(self, page: Page) -> list[StoredMessage]:
        query = paged(select(segment_messages), segment_messages, page)
        return [_message(r) for r in self.conn.execute(query)]

    # customers
    def find_customers(self, source_id: int, identities: Sequence[str]) -> list[Customer]:
        if not identities:
            return []
        rows = self.conn.execute(_CUSTOMERS_BY_IDENTITY, {"source_id": source_id, "identities": list(identities)})
        return [self._customer(r) for r in rows]

    def get_customer(self, customer_id: int) -> Customer | None:
        row = self.conn.execute(_CUSTOMER_BY_ID, {"customer_id": customer_id}).one_or_none()
        return None if row is None else self._customer(row)

    def list_customers(self, page: Page) -> list[Customer]:
        filters = dict(page.filters)
        identity = filters.pop("identity", None)
        query = select(customers)
        if identity is not None:
            query = query.where(
                customers.c.id.in_(
                    select(customer_identities.c.customer_id).where(customer_identities.c.identity == identity)
                )
            )
        narrowed = Page(page.limit, page.cursor, page.created_from, page.created_to, filters)
        return [self._customer(r) for r in self.conn.execute(paged(query, customers, narrowed))]

    def insert_customer(self, source_id: int, now: datetime) -> Customer:
        values = {
            "source_id": source_id,
            "previous_ids": [],
            "traits": {},
            "group_traits": {},
            "audiences": [],
            "status": "active",
            "visits": 0,
            "created_at": now,
            "updated_at": now,
        }
        row = self.conn.execute(_INSERT_CUSTOMER, values).one()
        return self._customer(row, identities=[])

    def link_identity(self, source_id: int, identity: str, customer_id: int) -> None:
        params = {"source_id": source_id, "identity": identity, "customer_id": customer_id}
        try:
            with self.conn.begin_nested():
                self.conn.execute(_UNLINK_IDENTITY, params)
                self.conn.execute(_LINK_IDENTITY, params)
        except IntegrityError as error:  # another process linked it first: the caller re-reads
            raise DuplicateKey(identity) from error

    def update_customer(self, customer_id: int, changes: CustomerChanges, now: datetime) -> None:
        values = {k: jsonable(v) if isinstance(v, Mapping | list | tuple) else v for k, v in changes.given().items()}
        values["updated_at"] = now
        statement = _UPDATE_CUSTOMER.values(**{k: bindparam(k) for k in values})
        self.conn.execute(statement, {**values, "customer_id": customer_id})

    def merge_customers(self, keep_id: int, drop_id: int) -> None:
        """Move the dropped customer's identities and activity to the kept one, then delete it."""
        for table in (customer_identities, customer_activities):
            self.conn.execute(update(table).where(table.c.customer_id == drop_id).values(customer_id=keep_id))
        self.conn.execute(
            update(segment_messages).where(segment_messages.c.customer_id == drop_id).values(customer_id=keep_id)
        )
        self.conn.execute(delete(customers).where(customers.c.id == drop_id))

    def insert_customer_activity(self, activity: NewCustomerActivity) -> None:
        self.conn.execute(_INSERT_ACTIVITY, _values(activity))

    def set_activity_attribution(self, customer_id: int, offer_id: int, partner_id: int) -> None:
        """Activity recorded before the customer's click was known now counts for that click's partner."""
        self.conn.execute(
            update(customer_activities)
            .where(customer_activities.c.customer_id == customer_id, customer_activities.c.partner_id.is_(None))
            .values(offer_id=offer_id, partner_id=partner_id)
        )

    def customer_report(
        self, group_by: str, created_from: datetime | None, created_to: datetime | None, filters: Mapping[str, int]
    ) -> list[dict[str, Any]]:
        """Sums per partner (or offer, or source): signups, payments, refunds, churn, and conversion payout."""
        a = customer_activities.c
        dimension = a[CUSTOMER_DIMENSIONS[group_by]].label(group_by)
        query = select(
            dimension,
            func.sum(case((a.kind == "signup", 1), else_=0)).label("new_customers"),
            func.sum(case((a.kind == "payment", 1), else_=0)).label("payments"),
            _units(case((a.kind == "payment", a.amount), else_=0)).label("payment_amount"),
            func.sum(case((a.kind == "refund", 1), else_=0)).label("refunds"),
            _units(case((a.kind == "refund", a.amount), else_=0)).label("refund_amount"),
            func.sum(case((a.kind == "churn", 1), else_=0)).label("churned"),
        ).group_by(dimension)
        query = _window(query, a.occurred_at, created_from, created_to)
        for name, value in filters.items():
            query = query.where(a[name] == value)
        rows = {row[0]: dict(row._mapping) for row in self.conn.execute(query)}
        if group_by in ("partner", "offer"):
            self._add_payout(rows, group_by, created_from, created_to, filters)
        result = []
        for key in sorted(rows, key=lambda k: (k is None, k or 0)):
            row = rows[key]
            for name in ("new_customers", "payments", "refunds", "churned"):
                row[name] = int(row.get(name) or 0)
            for name in ("payment_amount", "refund_amount", "payout"):
                row[name] = from_units(row.get(name) or 0)
            result.append(row)
        return result

    def _add_payout(
        self,
        rows: dict[Any, dict[str, Any]],
        group_by: str,
        created_from: datetime | None,
        created_to: datetime | None,
        filters: Mapping[str, int],
    ) -> None:
        c = conversions.c
        dimension = c[CUSTOMER_DIMENSIONS[group_by]]
        query = select(dimension, _units(case((c.status != "rejected", c.payout), else_=0))).group_by(dimension)
        query = query.where(c.origin == "segment")
        query = _window(query, c.created_at, created_from, created_to)
        for name, value in filters.items():
            if name in c:
                query = query.where(c[name] == value)
        for key, payout in self.conn.execute(query):
            if key in rows:
                rows[key]["payout"] = payout

    def _customer(self, row: Any, identities: list[str] | None = None) -> Customer:
        if identities is None:
            identities = sorted(self.conn.execute(_IDENTITIES_OF, {"customer_id": row.id}).scalars())
        return Customer(
            id=row.id, source_id=row.source_id, user_id=row.user_id,
            anonymous_ids=[i.partition(":")[2] for i in identities if i.startswith("anonymous:")],
            previous_ids=list(row.previous_ids), traits=dict(row.traits), group_id=row.group_id,
            group_traits=dict(row.group_traits), audiences=list(row.audiences), status=row.status,
            transaction_id=row.transaction_id, offer_id=row.offer_id, partner_id=row.partner_id, visits=row.visits,
            signed_up_at=row.signed_up_at, churned_at=row.churned_at, created_at=row.created_at,
            updated_at=row.updated_at, identities=identities,
        )  # fmt: skip


def _window(query: Any, column: Any, created_from: datetime | None, created_to: datetime | None) -> Any:
    if created_from is not None:
        query = query.where(column >= created_from)
    if created_to is not None:
        query = query.where(column < created_to)
    return query


def _units(expression: Any) -> Any:
    return func.sum(type_coerce(expression, BigInteger), type_=BigInteger)


def _values(command: Any) -> dict[str, Any]:
    """A write port's dataclass as column values (its fields are named after the columns)."""
    return {f.name: getattr(command, f.name) for f in fields(command)}


def _message(row: Any) -> StoredMessage:
    return StoredMessage(
        id=row.id, source_id=row.source_id, message_id=row.message_id, type=row.type, event=row.event,
        user_id=row.user_id, anonymous_id=row.anonymous_id, timestamp=row.timestamp,
        original_timestamp=row.original_timestamp, sent_at=row.sent_at, received_at=row.received_at,
        relayed=bool(row.relayed), outcome=MessageOutcome(row.outcome), detail=row.detail,
        conversion_id=row.conversion_id, customer_id=row.customer_id, mapped=dict(row.mapped),
        payload=dict(row.payload), created_at=row.created_at,
    )  # fmt: skip


def _source(row: Any, box: FernetBox) -> Source:
    """The source with its webhook secret opened (it is stored sealed)."""
    return Source(
        row.id,
        row.name,
        row.preset,
        row.write_key,
        box.open(row.webhook_secret),
        dict(row.settings),
        row.created_at,
        row.updated_at,
        row.advertiser_id,
    )
