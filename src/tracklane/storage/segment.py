"""SQL for Segment-compatible intake: sources, received messages (unique per source and messageId),
customers with their identities, customer activity (unique per source, kind and dedup key), the customer
report per partner, offer or source, and the custom events report."""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import fields
from datetime import datetime
from decimal import Decimal
from functools import cache
from typing import Any

from sqlalchemy import (
    BigInteger,
    Connection,
    bindparam,
    case,
    delete,
    distinct,
    func,
    insert,
    select,
    type_coerce,
    update,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError

from tracklane.domain.errors import Conflict
from tracklane.domain.segment.activity import EVENT, ONCE_PER_CUSTOMER, customer_key
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
from tracklane.storage.catalog_cache import CatalogCache
from tracklane.storage.driver import DriverStatement, DriverTable
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
EVENT_DIMENSIONS = {**CUSTOMER_DIMENSIONS, "customer": "customer_id"}

# The statements run for every message go to the driver's cursor (`storage/driver.py`), with their values in
# stored form: times as `stored_time` gives them, JSON as its text (cast on PostgreSQL, as SQLAlchemy does).
# A duplicate (source, messageId) inserts nothing and returns no row: no savepoint, no error to undo.
_MESSAGE_ROWS = DriverTable(segment_messages)
_INSERT_MESSAGE = _MESSAGE_ROWS.insert("ON CONFLICT (source_id, message_id) DO NOTHING")
_UPDATE_MESSAGE_SQL = (
    "UPDATE segment_messages SET outcome = ?, detail = ?, conversion_id = ?, customer_id = ?, mapped = {json} "
    "WHERE id = ?"
)
_UPDATE_MESSAGE = DriverStatement(
    _UPDATE_MESSAGE_SQL.format(json="?"), postgresql=_UPDATE_MESSAGE_SQL.replace("?", "%s").format(json="%s::json")
)
_SAVEPOINT = "tracklane_savepoint"  # one name: nested savepoints of one name are undone innermost first


@cache
def _stored_ids(count: int) -> DriverStatement:
    """Which of `count` messageIds a source has stored (by its unique key on source and messageId)."""
    markers = ", ".join("?" * count)
    return DriverStatement(f"SELECT message_id FROM segment_messages WHERE source_id = ? AND message_id IN ({markers})")


#: messageIds asked for at a time (well under either database's limit on parameters).
_IDS_AT_A_TIME = 500


@cache
def _has_identity(count: int) -> DriverStatement:
    """Whether a source knows any of `count` identities (by the primary key of `customer_identities`)."""
    markers = ", ".join("?" * count)
    return DriverStatement(
        f"SELECT EXISTS (SELECT 1 FROM customer_identities WHERE source_id = ? AND identity IN ({markers}))"
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
    # A writer changes a customer from the row it read: on PostgreSQL the row stays its own until it commits
    # (another server's writer waits, then reads the changed row), so neither undoes the other's change.
    # NO KEY: the rows that refer to the customer (its identities, its activity) can still be added meanwhile.
    .with_for_update(key_share=True)
)
_CUSTOMER_BY_ID = select(customers).where(customers.c.id == bindparam("customer_id"))
_INSERT_CUSTOMER = insert(customers).returning(*customers.c)
# An identity is never moved by linking it: one taken meanwhile (by a writer this one could not see yet) stays
# with its customer, and the message is applied again to what is now visible (only a merge moves identities).
_LINK_IDENTITY = {
    name: upsert(customer_identities)
    .on_conflict_do_nothing(index_elements=["source_id", "identity"])
    .returning(customer_identities.c.customer_id)
    for name, upsert in (("postgresql", pg_insert), ("sqlite", sqlite_insert))
}
_UPDATE_CUSTOMER = update(customers).where(customers.c.id == bindparam("customer_id"))
_INSERT_ACTIVITY = {
    name: upsert(customer_activities)
    .on_conflict_do_nothing(index_elements=["source_id", "kind", "dedup_key"])
    .returning(customer_activities.c.id)
    for name, upsert in (("postgresql", pg_insert), ("sqlite", sqlite_insert))
}
_EVENTS_OF = (
    select(customer_activities.c.customer_id, customer_activities.c.event, func.count())
    .where(
        customer_activities.c.kind == EVENT,
        customer_activities.c.customer_id.in_(bindparam("customer_ids", expanding=True)),
    )
    .group_by(customer_activities.c.customer_id, customer_activities.c.event)
)
_IDENTITIES_OF_ALL = select(customer_identities.c.customer_id, customer_identities.c.identity).where(
    customer_identities.c.customer_id.in_(bindparam("customer_ids", expanding=True))
)


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
    cache: CatalogCache | None

    @contextmanager
    def savepoint(self) -> Iterator[None]:
        """A SAVEPOINT issued on the driver's connection (SQLAlchemy's nested transaction costs as much as the
        message's own statements); undone when the block raises, which then goes on."""
        driver = self.conn.connection.driver_connection
        assert driver is not None, "a connection in use has its driver's connection"
        driver.execute(f"SAVEPOINT {_SAVEPOINT}")
        try:
            yield
        except BaseException:
            driver.execute(f"ROLLBACK TO SAVEPOINT {_SAVEPOINT}")
            driver.execute(f"RELEASE SAVEPOINT {_SAVEPOINT}")
            if self.cache is not None:  # what the undone writes changed may have been cached
                self.cache.clear()
            raise
        driver.execute(f"RELEASE SAVEPOINT {_SAVEPOINT}")

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
    def insert_segment_message(self, message: NewSegmentMessage, result: MessageResult | None = None) -> int | None:
        """Store a message (with its result when known, else as `ignored`); None when the source already has
        one with this messageId (a duplicate)."""
        values = {**_values(message), "payload": jsonable(message.payload)}
        if result is None:
            values |= {"outcome": MessageOutcome.IGNORED.value, "detail": None, "conversion_id": None,
                       "customer_id": None, "mapped": {}}  # fmt: skip
        else:
            values |= {"outcome": result.outcome.value, "detail": result.detail, "conversion_id": result.conversion_id,
                       "customer_id": result.customer_id, "mapped": jsonable(result.mapped)}  # fmt: skip
        row = _INSERT_MESSAGE.execute(self.conn, _MESSAGE_ROWS.values_of(self.conn.dialect.name, values)).fetchone()
        return None if row is None else int(row[0])

    def update_segment_message(self, row_id: int, result: MessageResult) -> None:
        values = (
            result.outcome.value, result.detail, result.conversion_id, result.customer_id,
            json.dumps(jsonable(result.mapped)), row_id,
        )  # fmt: skip
        _UPDATE_MESSAGE.execute(self.conn, values)

    def stored_message_ids(self, source_id: int, message_ids: Sequence[str]) -> set[str]:
        found: set[str] = set()
        wanted = list(dict.fromkeys(message_ids))
        for start in range(0, len(wanted), _IDS_AT_A_TIME):
            chunk = wanted[start : start + _IDS_AT_A_TIME]
            found.update(row[0] for row in _stored_ids(len(chunk)).execute(self.conn, (source_id, *chunk)).fetchall())
        return found

    def list_segment_messages(self, page: Page) -> list[StoredMessage]:
        query = paged(select(segment_messages), segment_messages, page)
        return [_message(r) for r in self.conn.execute(query)]

    # customers
    def find_customers(self, source_id: int, identities: Sequence[str]) -> list[Customer]:
        if not identities:
            return []
        # Most messages are about someone already known or nobody worth a customer: asked on the driver first.
        (known,) = _has_identity(len(identities)).execute(self.conn, (source_id, *identities)).fetchone()
        if not known:
            return []
        rows = self.conn.execute(_CUSTOMERS_BY_IDENTITY, {"source_id": source_id, "identities": list(identities)})
        return self._customers(list(rows))

    def get_customer(self, customer_id: int) -> Customer | None:
        row = self.conn.execute(_CUSTOMER_BY_ID, {"customer_id": customer_id}).one_or_none()
        return None if row is None else self._customers([row])[0]

    def list_customers(self, page: Page) -> list[Customer]:
        """Filters: the customers' columns, `identity` (one of their ids), `event` (a custom event they sent)."""
        filters = dict(page.filters)
        identity = filters.pop("identity", None)
        event = filters.pop("event", None)
        query = select(customers)
        if identity is not None:
            query = query.where(
                customers.c.id.in_(
                    select(customer_identities.c.customer_id).where(customer_identities.c.identity == identity)
                )
            )
        if event is not None:
            a = customer_activities.c
            query = query.where(customers.c.id.in_(select(a.customer_id).where(a.kind == EVENT, a.event == event)))
        narrowed = Page(page.limit, page.cursor, page.created_from, page.created_to, filters)
        return self._customers(list(self.conn.execute(paged(query, customers, narrowed))))

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
        return _customer(row, [], {})

    def link_identity(self, source_id: int, identity: str, customer_id: int) -> None:
        params = {"source_id": source_id, "identity": identity, "customer_id": customer_id}
        if self.conn.execute(_LINK_IDENTITY[self.conn.dialect.name], params).first() is None:
            raise DuplicateKey(identity)  # another process linked it first: the caller re-reads

    def update_customer(self, customer_id: int, changes: CustomerChanges, now: datetime) -> None:
        values = {k: jsonable(v) if isinstance(v, Mapping | list | tuple) else v for k, v in changes.given().items()}
        values["updated_at"] = now
        statement = _UPDATE_CUSTOMER.values(**{k: bindparam(k) for k in values})
        self.conn.execute(statement, {**values, "customer_id": customer_id})

    def merge_customers(self, keep_id: int, drop_id: int) -> None:
        """Move the dropped customer's identities, activity and messages to the kept one, then delete it. The
        kept one keeps its earliest signup and its earliest churn (re-keyed as its own), and all its activity
        counts for its click when it has one."""
        for table in (customer_identities, customer_activities):
            self.conn.execute(update(table).where(table.c.customer_id == drop_id).values(customer_id=keep_id))
        self.conn.execute(
            update(segment_messages).where(segment_messages.c.customer_id == drop_id).values(customer_id=keep_id)
        )
        self.conn.execute(delete(customers).where(customers.c.id == drop_id))
        a = customer_activities.c
        for kind in ONCE_PER_CUSTOMER:
            ids = list(self.conn.execute(
                select(a.id).where(a.customer_id == keep_id, a.kind == kind).order_by(a.occurred_at, a.id)
            ).scalars())  # fmt: skip
            if len(ids) > 1:
                self.conn.execute(delete(customer_activities).where(a.id.in_(ids[1:])))
            if ids:
                self.conn.execute(update(customer_activities).where(a.id == ids[0])
                                  .values(dedup_key=customer_key(keep_id)))  # fmt: skip
        click = self.conn.execute(
            select(customers.c.offer_id, customers.c.partner_id).where(customers.c.id == keep_id)
        ).one_or_none()
        if click is not None and click.partner_id is not None:
            self.conn.execute(
                update(customer_activities)
                .where(a.customer_id == keep_id)
                .values(offer_id=click.offer_id, partner_id=click.partner_id)
            )

    def insert_customer_activity(self, activity: NewCustomerActivity) -> bool:
        inserted = self.conn.execute(_INSERT_ACTIVITY[self.conn.dialect.name], _values(activity)).scalar()
        return inserted is not None

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
        """Sums per partner (or offer, or source): new, paying and churned customers (each customer once),
        payments, refunds, and the payout of the Segment conversions of the group (a conversion's source is
        the source of the message that recorded it)."""
        a = customer_activities.c
        dimension = a[CUSTOMER_DIMENSIONS[group_by]].label(group_by)
        query = (
            select(
                dimension,
                _customers_with(a.kind == "signup").label("new_customers"),
                _customers_with(a.kind == "payment").label("paying_customers"),
                func.sum(case((a.kind == "payment", 1), else_=0)).label("payments"),
                _units(case((a.kind == "payment", a.amount), else_=0)).label("payment_amount"),
                func.sum(case((a.kind == "refund", 1), else_=0)).label("refunds"),
                _units(case((a.kind == "refund", a.amount), else_=0)).label("refund_amount"),
                _customers_with(a.kind == "churn").label("churned"),
            )
            .where(a.kind != EVENT)
            .group_by(dimension)
        )
        query = _window(query, a.occurred_at, created_from, created_to)
        for name, value in filters.items():
            query = query.where(a[name] == value)
        rows = {row[0]: dict(row._mapping) for row in self.conn.execute(query)}
        for key, payout in self._payouts(group_by, created_from, created_to, filters).items():
            rows.setdefault(key, {group_by: key})["payout"] = payout
        result = []
        for key in sorted(rows, key=lambda k: (k is None, k or 0)):
            row = rows[key]
            for name in ("new_customers", "paying_customers", "payments", "refunds", "churned"):
                row[name] = int(row.get(name) or 0)
            for name in ("payment_amount", "refund_amount", "payout"):
                row[name] = from_units(row.get(name) or 0)
            result.append(row)
        return result

    def _payouts(
        self, group_by: str, created_from: datetime | None, created_to: datetime | None, filters: Mapping[str, int]
    ) -> dict[Any, int]:
        """The payout (stored units) of the Segment conversions that are not rejected, per group."""
        c = conversions.c
        columns: dict[str, Any] = {"partner_id": c.partner_id, "offer_id": c.offer_id}
        joined: Any = conversions
        if group_by == "source" or "source_id" in filters:
            m = segment_messages.c
            first = (
                select(m.conversion_id, func.min(m.id).label("first_id"))
                .where(m.conversion_id.is_not(None))
                .group_by(m.conversion_id)
                .subquery("first_message")
            )
            recorder = segment_messages.alias("recorder")
            joined = conversions.join(first, first.c.conversion_id == c.id).join(
                recorder, recorder.c.id == first.c.first_id
            )
            columns["source_id"] = recorder.c.source_id
        dimension = columns[CUSTOMER_DIMENSIONS[group_by]]
        paid = _units(case((c.status != "rejected", c.payout), else_=0))
        query = select(dimension, paid).select_from(joined).where(c.origin == "segment").group_by(dimension)
        query = _window(query, c.created_at, created_from, created_to)
        for name, value in filters.items():
            query = query.where(columns[name] == value)
        return {row[0]: row[1] for row in self.conn.execute(query)}

    def customer_event_report(
        self, group_by: str, created_from: datetime | None, created_to: datetime | None, filters: Mapping[str, Any]
    ) -> list[dict[str, Any]]:
        """Custom events per group and event name: how many (`count`) and from how many customers."""
        a = customer_activities.c
        dimension = a[EVENT_DIMENSIONS[group_by]].label(group_by)
        query = (
            select(dimension, a.event.label("event"), func.count().label("count"),
                   func.count(distinct(a.customer_id)).label("customers"))
            .where(a.kind == EVENT)
            .group_by(dimension, a.event)
        )  # fmt: skip
        query = _window(query, a.occurred_at, created_from, created_to)
        for name, value in filters.items():
            query = query.where(a[name] == value)
        rows = [dict(row._mapping) for row in self.conn.execute(query)]
        rows.sort(key=lambda r: (r[group_by] is None, r[group_by] or 0, r["event"]))
        return [{**r, "count": int(r["count"]), "customers": int(r["customers"])} for r in rows]

    def _customers(self, rows: Sequence[Any]) -> list[Customer]:
        """Customers from their rows, with their identities and custom event counts (two queries for all)."""
        if not rows:
            return []
        ids = [row.id for row in rows]
        identities: dict[int, list[str]] = {i: [] for i in ids}
        for customer_id, identity in self.conn.execute(_IDENTITIES_OF_ALL, {"customer_ids": ids}):
            identities[customer_id].append(identity)
        events: dict[int, dict[str, int]] = {i: {} for i in ids}
        for customer_id, event, count in self.conn.execute(_EVENTS_OF, {"customer_ids": ids}):
            events[customer_id][event] = int(count)
        return [_customer(row, sorted(identities[row.id]), dict(sorted(events[row.id].items()))) for row in rows]


def _customer(row: Any, identities: list[str], events: dict[str, int]) -> Customer:
    return Customer(
        id=row.id, source_id=row.source_id, user_id=row.user_id,
        anonymous_ids=[i.partition(":")[2] for i in identities if i.startswith("anonymous:")],
        previous_ids=list(row.previous_ids), traits=dict(row.traits), group_id=row.group_id,
        group_traits=dict(row.group_traits), audiences=list(row.audiences), status=row.status,
        transaction_id=row.transaction_id, offer_id=row.offer_id, partner_id=row.partner_id, visits=row.visits,
        signed_up_at=row.signed_up_at, churned_at=row.churned_at, created_at=row.created_at,
        updated_at=row.updated_at, identities=identities, events=events,
    )  # fmt: skip


def _customers_with(condition: Any) -> Any:
    """How many distinct customers have an activity matching the condition."""
    return func.count(distinct(case((condition, customer_activities.c.customer_id), else_=None)))


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
