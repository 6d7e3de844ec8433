"""SQL for outbound delivery: webhook endpoints, partner postbacks, the outbox and its attempt log.

Claiming is one atomic statement, `WITH due AS MATERIALIZED (SELECT ... FOR UPDATE SKIP LOCKED)
UPDATE deliveries ... FROM due RETURNING *`: on PostgreSQL concurrent workers never take the same
delivery; on SQLite the writer's `BEGIN IMMEDIATE` serialises claims. Deliveries in `sending` whose lease
expired are claimed again (this is the sweeper: a worker that died mid-delivery strands nothing).

A deleted partner postback keeps its row, since its deliveries refer to it, with the status `deleted`; no read
returns such a row (`_live`), so it is found by nothing, lists with nothing and fires for nothing.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping, Sequence
from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import Connection, insert, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from tracklane.domain.delivery import Delivery, DeliveryAttempt, DeliveryStatus
from tracklane.domain.partner_postbacks import PartnerPostback, PostbackStatus
from tracklane.domain.webhooks import EndpointStatus, WebhookEndpoint
from tracklane.resources.partner_postbacks import PartnerPostbackCreate, PartnerPostbackUpdate
from tracklane.resources.webhooks import WebhookCreate, WebhookUpdate
from tracklane.services.ports import (
    EndpointState,
    NewAttempt,
    NewDelivery,
    Page,
    PostbackState,
    Release,
    Requeue,
    SecretRotation,
)
from tracklane.storage import rows
from tracklane.storage.driver import DriverStatement, DriverTable
from tracklane.storage.paging import paged
from tracklane.storage.schema import deliveries, delivery_attempts, partner_postbacks, webhook_endpoints
from tracklane.storage.types import naive_utc, stored_time

_SENDING = DeliveryStatus.SENDING.value
_PENDING = DeliveryStatus.PENDING.value
#: The status of a deleted partner postback's row (not a `PostbackStatus`: no reader ever sees it).
DELETED_POSTBACK = "deleted"
_live = partner_postbacks.c.status != DELETED_POSTBACK
_HAS_WEBHOOK_ENDPOINTS = DriverStatement("SELECT EXISTS (SELECT 1 FROM webhook_endpoints)")
_HAS_POSTBACKS = DriverStatement("SELECT EXISTS (SELECT 1 FROM partner_postbacks WHERE partner_id = ? AND status != ?)")


def new_message_id() -> str:
    """A `webhook-id`: random, never derived from user input, with no `.` in it."""
    return "msg_" + secrets.token_hex(16)


def _plain(values: Mapping[str, Any]) -> dict[str, Any]:
    return {k: (v.value if isinstance(v, StrEnum) else v) for k, v in values.items()}


_INSERT_DELIVERY = {
    name: upsert(deliveries).on_conflict_do_nothing(index_elements=["dedup_key"]).returning(*deliveries.c)
    for name, upsert in (("postgresql", pg_insert), ("sqlite", sqlite_insert))
}


class SqlDelivery:
    conn: Connection

    # webhook endpoints
    def insert_webhook_endpoint(self, endpoint: WebhookCreate, secret: str, now: datetime) -> WebhookEndpoint:
        values = {
            "url": endpoint.url,
            "description": endpoint.description,
            "event_types": endpoint.event_types,
            "status": EndpointStatus.ACTIVE.value,
            "secret": secret,
            "created_at": now,
            "updated_at": now,
        }
        row = self.conn.execute(insert(webhook_endpoints).values(**values).returning(*webhook_endpoints.c)).one()
        return rows.webhook_endpoint(row)

    def get_webhook_endpoint(self, endpoint_id: int) -> WebhookEndpoint | None:
        row = self.conn.execute(select(webhook_endpoints).where(webhook_endpoints.c.id == endpoint_id)).one_or_none()
        return None if row is None else rows.webhook_endpoint(row)

    def list_webhook_endpoints(self, page: Page) -> list[WebhookEndpoint]:
        query = paged(select(webhook_endpoints), webhook_endpoints, page)
        return [rows.webhook_endpoint(r) for r in self.conn.execute(query)]

    def all_webhook_endpoints(self) -> list[WebhookEndpoint]:
        """Every endpoint (asked first on the driver's cursor: each conversion, click or change emits, and a
        network has few endpoints or none)."""
        if not _HAS_WEBHOOK_ENDPOINTS.execute(self.conn, ()).fetchone()[0]:
            return []
        query = select(webhook_endpoints).order_by(webhook_endpoints.c.id)
        return [rows.webhook_endpoint(r) for r in self.conn.execute(query)]

    def update_webhook_endpoint(self, endpoint_id: int, changes: WebhookUpdate, now: datetime) -> None:
        self._update_endpoint(endpoint_id, rows.set_fields(changes, exclude=frozenset({"status"})), now)

    def set_webhook_endpoint_state(self, endpoint_id: int, state: EndpointState, now: datetime) -> None:
        self._update_endpoint(endpoint_id, {
            "status": state.status.value, "disabled_reason": state.disabled_reason, "disabled_at": state.disabled_at,
            "failing_since": state.failing_since,
        }, now)  # fmt: skip

    def rotate_webhook_secret(self, endpoint_id: int, rotation: SecretRotation, now: datetime) -> None:
        self._update_endpoint(endpoint_id, {
            "secret": rotation.secret, "previous_secret": rotation.previous_secret,
            "previous_secret_expires_at": rotation.previous_expires_at,
        }, now)  # fmt: skip

    def _update_endpoint(self, endpoint_id: int, values: Mapping[str, Any], now: datetime) -> None:
        query = update(webhook_endpoints).where(webhook_endpoints.c.id == endpoint_id)
        self.conn.execute(query.values(**_plain(values), updated_at=now))

    # partner postbacks
    def insert_partner_postback(
        self, partner_id: int, postback: PartnerPostbackCreate, now: datetime
    ) -> PartnerPostback:
        values = {
            **_plain(rows.set_fields(postback, exclude=frozenset({"partner_id"}))), "partner_id": partner_id,
            "status": PostbackStatus.ACTIVE.value, "failure_count": 0, "created_at": now, "updated_at": now,
        }  # fmt: skip
        row = self.conn.execute(insert(partner_postbacks).values(**values).returning(*partner_postbacks.c)).one()
        return rows.partner_postback(row)

    def get_partner_postback(self, postback_id: int) -> PartnerPostback | None:
        query = select(partner_postbacks).where(partner_postbacks.c.id == postback_id, _live)
        row = self.conn.execute(query).one_or_none()
        return None if row is None else rows.partner_postback(row)

    def list_partner_postbacks(self, page: Page) -> list[PartnerPostback]:
        query = paged(select(partner_postbacks).where(_live), partner_postbacks, page)
        return [rows.partner_postback(r) for r in self.conn.execute(query)]

    def postbacks_of_partner(self, partner_id: int) -> list[PartnerPostback]:
        """The partner's postbacks, not deleted (most partners have none: asked first, on the driver's cursor, for
        each conversion)."""
        if not _HAS_POSTBACKS.execute(self.conn, (partner_id, DELETED_POSTBACK)).fetchone()[0]:
            return []
        query = select(partner_postbacks).where(partner_postbacks.c.partner_id == partner_id, _live)
        return [rows.partner_postback(r) for r in self.conn.execute(query.order_by(partner_postbacks.c.id))]

    def update_partner_postback(self, postback_id: int, changes: PartnerPostbackUpdate, now: datetime) -> None:
        self._update_postback(postback_id, rows.set_fields(changes, exclude=frozenset({"partner_id", "status"})), now)

    def set_partner_postback_state(self, postback_id: int, state: PostbackState, now: datetime) -> None:
        self._update_postback(postback_id, {
            "status": state.status.value, "deactivated_reason": state.deactivated_reason,
            "failure_count": state.failure_count, "failure_started_at": state.failure_started_at,
        }, now)  # fmt: skip

    def delete_partner_postback(self, postback_id: int, now: datetime) -> None:
        self._update_postback(postback_id, {"status": DELETED_POSTBACK}, now)

    def _update_postback(self, postback_id: int, values: Mapping[str, Any], now: datetime) -> None:
        query = update(partner_postbacks).where(partner_postbacks.c.id == postback_id, _live)
        self.conn.execute(query.values(**_plain(values), updated_at=now))

    # the outbox
    def insert_delivery(self, delivery: NewDelivery) -> Delivery | None:
        values = {
            "message_id": new_message_id(), "kind": delivery.kind.value, "endpoint_id": delivery.endpoint_id,
            "postback_id": delivery.postback_id, "event_type": delivery.event_type, "method": delivery.method,
            "url": delivery.url, "body": delivery.body, "dedup_key": delivery.dedup_key,
            "status": delivery.status.value, "attempts": 0, "next_attempt_at": delivery.next_attempt_at,
            "created_at": delivery.created_at, "updated_at": delivery.created_at,
        }  # fmt: skip
        # Only a taken dedup key is a duplicate (no row returned); any other violation is an error.
        statement = _INSERT_DELIVERY[self.conn.dialect.name].values(**values)
        row = self.conn.execute(statement).one_or_none()
        return None if row is None else rows.delivery(row)

    def get_delivery(self, delivery_id: int) -> Delivery | None:
        row = self.conn.execute(select(deliveries).where(deliveries.c.id == delivery_id)).one_or_none()
        return None if row is None else rows.delivery(row)

    def list_deliveries(self, page: Page) -> list[Delivery]:
        return [rows.delivery(r) for r in self.conn.execute(paged(select(deliveries), deliveries, page))]

    def list_attempts(self, delivery_id: int) -> list[DeliveryAttempt]:
        query = select(delivery_attempts).where(delivery_attempts.c.delivery_id == delivery_id)
        return [rows.delivery_attempt(r) for r in self.conn.execute(query.order_by(delivery_attempts.c.id))]

    def claim_deliveries(self, worker: str, now: datetime, lease_until: datetime, limit: int) -> list[Delivery]:
        dialect = self.conn.dialect.name
        moment, until = _stored_time(dialect, now), _stored_time(dialect, lease_until)
        values = [moment, limit, moment, limit, limit, worker, until, moment, moment, moment]
        cursor = _CLAIM.execute(self.conn, values)
        claimed = (rows.delivery(_DELIVERIES.row(dialect, fetched)) for fetched in cursor.fetchall())  # type: ignore[arg-type]
        return sorted(claimed, key=lambda d: d.next_attempt_at)

    def release_delivery(self, delivery_id: int, worker: str, release: Release, now: datetime) -> bool:
        return self.release_deliveries([(delivery_id, release)], worker, now)[0]

    def release_deliveries(self, releases: Sequence[tuple[int, Release]], worker: str, now: datetime) -> list[bool]:
        if not releases:
            return []
        dialect = self.conn.dialect.name
        ids = [delivery_id for delivery_id, _ in releases]
        # Which leases this worker still holds (locked on PostgreSQL until the commit, so none is lost
        # between this read and the updates): one read instead of a row count per update.
        held = {row[0] for row in _held(len(ids)).execute(self.conn, [*ids, worker]).fetchall()}
        updated = _stored_time(dialect, now)
        by_columns: dict[tuple[str, ...], list[list[Any]]] = {}
        for delivery_id, release in releases:
            if delivery_id in held:
                values = release.columns()
                if "next_attempt_at" in values:
                    values["next_attempt_at"] = _stored_time(dialect, values["next_attempt_at"])  # type: ignore[arg-type]
                by_columns.setdefault(tuple(values), []).append([*values.values(), updated, delivery_id, worker])
        for columns, rows_of in by_columns.items():
            _release_statement(columns).execute_many(self.conn, rows_of)
        return [delivery_id in held for delivery_id in ids]

    def insert_attempts(self, attempts: Sequence[NewAttempt]) -> None:
        dialect = self.conn.dialect.name
        rows_of = [_ATTEMPTS.values_of(dialect, {n: getattr(a, n) for n in _ATTEMPTS.written}) for a in attempts]
        if rows_of:
            _INSERT_ATTEMPT.execute_many(self.conn, rows_of)

    def clear_webhook_endpoint_failure(self, endpoint_id: int, now: datetime) -> None:
        _CLEAR_FAILURE.execute(self.conn, [_stored_time(self.conn.dialect.name, now), endpoint_id])

    def clear_partner_postback_failures(self, postback_id: int, now: datetime) -> None:
        _CLEAR_FAILURES.execute(self.conn, [_stored_time(self.conn.dialect.name, now), postback_id])

    def requeue_delivery(self, delivery_id: int, now: datetime) -> bool:
        """Send again (same message id) with a fresh series of attempts; not while it is being sent."""
        query = update(deliveries).where(deliveries.c.id == delivery_id, deliveries.c.status != _SENDING)
        return bool(self.conn.execute(query.values(**_fresh(now))).rowcount)

    def requeue_deliveries(self, requeue: Requeue, now: datetime) -> int:
        query = update(deliveries).where(
            deliveries.c.created_at >= requeue.created_from,
            deliveries.c.created_at < requeue.created_to,
            deliveries.c.status.in_([s.value for s in requeue.statuses]),
        )
        if requeue.endpoint_id is not None:
            query = query.where(deliveries.c.endpoint_id == requeue.endpoint_id)
        if requeue.postback_id is not None:
            query = query.where(deliveries.c.postback_id == requeue.postback_id)
        return int(self.conn.execute(query.values(**_fresh(now))).rowcount)


def _fresh(now: datetime) -> dict[str, Any]:
    return {
        "status": _PENDING,
        "attempts": 0,
        "next_attempt_at": now,
        "lease_owner": None,
        "lease_expires_at": None,
        "updated_at": now,
    }


# The outbox worker's claims, attempts and releases, on the driver's cursor (`storage/driver.py`): through
# SQLAlchemy they were most of a delivery's cost.
_DELIVERIES = DriverTable(deliveries)
_DUE = f"((status = '{_PENDING}' AND next_attempt_at <= ?) OR (status = '{_SENDING}' AND lease_expires_at < ?))"


def _claim_statement(materialized: str, locked: str) -> str:
    """The due deliveries, leased: the first pending ones and those whose lease expired, each read in the
    order of the (status, next_attempt_at) index, so that a claim costs its own rows however deep the outbox
    is (one condition with OR had every pending row sorted for each claim). On PostgreSQL the candidates are
    MATERIALIZED (evaluated once: as a plain `IN (subquery)` they may be read again per row, and with SKIP
    LOCKED each reading can pick other rows) and locked; SQLite has one writer and no row locks."""
    candidates = "SELECT id, next_attempt_at FROM deliveries WHERE {} ORDER BY next_attempt_at LIMIT ?" + locked
    pending = candidates.format(f"status = '{_PENDING}' AND next_attempt_at <= ?")
    expired = candidates.format(f"status = '{_SENDING}' AND lease_expires_at < ?")
    return (
        f"WITH pending AS {materialized}({pending}), expired AS {materialized}({expired}),"
        f" due_deliveries AS {materialized}(SELECT id FROM (SELECT * FROM pending UNION ALL SELECT * FROM expired)"
        " AS candidates ORDER BY next_attempt_at LIMIT ?)"
        f" UPDATE deliveries SET status = '{_SENDING}', lease_owner = ?, lease_expires_at = ?, updated_at = ?"
        f" WHERE id IN (SELECT id FROM due_deliveries) AND {_DUE} RETURNING {', '.join(_DELIVERIES.columns)}"
    )


_CLAIM = DriverStatement(
    _claim_statement("", ""),
    postgresql=_claim_statement("MATERIALIZED ", " FOR UPDATE SKIP LOCKED").replace("?", "%s"),
)
_ATTEMPTS = DriverTable(delivery_attempts)
_INSERT_ATTEMPT = DriverStatement(  # no RETURNING: the driver runs it for many rows at once
    f"INSERT INTO delivery_attempts ({', '.join(_ATTEMPTS.written)})"
    f" VALUES ({', '.join('?' for _ in _ATTEMPTS.written)})"
)
_HELD: dict[int, DriverStatement] = {}


def _held(count: int) -> DriverStatement:
    """The ids among `count` deliveries whose lease a worker holds."""
    statement = _HELD.get(count)
    if statement is None:
        markers = ", ".join("?" for _ in range(count))
        sql = (
            f"SELECT id FROM deliveries WHERE id IN ({markers}) AND status = '{_SENDING}' AND lease_owner = ?"
            " ORDER BY id"
        )  # two workers lock the rows they share in one order: no deadlock
        statement = _HELD[count] = DriverStatement(sql, postgresql=(sql + " FOR UPDATE").replace("?", "%s"))
    return statement


_CLEAR_FAILURE = DriverStatement(
    "UPDATE webhook_endpoints SET failing_since = NULL, updated_at = ? WHERE id = ? AND failing_since IS NOT NULL"
)
_CLEAR_FAILURES = DriverStatement(
    "UPDATE partner_postbacks SET failure_count = 0, failure_started_at = NULL, updated_at = ?"
    " WHERE id = ? AND failure_count > 0"
)
_RELEASES: dict[tuple[str, ...], DriverStatement] = {}


def _release_statement(columns: tuple[str, ...]) -> DriverStatement:
    """`UPDATE` of a leased delivery: `columns` (a `Release`'s), the lease given up, if `worker` holds it."""
    statement = _RELEASES.get(columns)
    if statement is None:
        sets = "".join(f"{name} = ?, " for name in columns)
        statement = _RELEASES[columns] = DriverStatement(
            f"UPDATE deliveries SET {sets}lease_owner = NULL, lease_expires_at = NULL, updated_at = ?"
            f" WHERE id = ? AND status = '{_SENDING}' AND lease_owner = ?"
        )
    return statement


def _stored_time(dialect: str, moment: datetime) -> Any:
    return stored_time(dialect)(naive_utc(moment))
