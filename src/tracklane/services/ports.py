"""The ports the use cases need: a transactional repository, a database that runs work on it, a clock.

`Database.write` runs a function inside one transaction that is committed before the call returns
(the storage may commit many such functions together: group commit). `Database.read` runs a function
on a consistent read connection.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Protocol, TypeVar

from tracklane.domain.caps import CapCounterKey
from tracklane.domain.delivery import Delivery, DeliveryAttempt, DeliveryKind, DeliveryStatus
from tracklane.domain.errors import DuplicateKey as DuplicateKey  # what a write port raises for a taken key
from tracklane.domain.errors import TracklaneError
from tracklane.domain.model import (
    Advertiser,
    ApiKey,
    Click,
    ClickDevice,
    Conversion,
    ConversionStatus,
    LinkKind,
    Offer,
    OfferAccess,
    OfferEvent,
    Partner,
    PartnerPayout,
    Role,
    User,
    UserStatus,
)
from tracklane.domain.partner_postbacks import PartnerPostback, PostbackStatus
from tracklane.domain.segment.model import Customer, MessageOutcome, Source, StoredMessage
from tracklane.domain.trace import TraceStep
from tracklane.domain.traffic import Blocklist, TrafficBlock, TrafficRule, TrafficStat, TrafficVariable
from tracklane.domain.webhooks import EndpointStatus, WebhookEndpoint
from tracklane.resources.advertisers import AdvertiserUpdate
from tracklane.resources.fields import UNSET, Unset
from tracklane.resources.offers import (
    OfferAccessCreate,
    OfferAccessUpdate,
    OfferCreate,
    OfferEventCreate,
    OfferEventUpdate,
    OfferUpdate,
    PartnerPayoutCreate,
)
from tracklane.resources.partner_postbacks import PartnerPostbackCreate, PartnerPostbackUpdate
from tracklane.resources.partners import PartnerUpdate
from tracklane.resources.reports import ReportLine, ReportQuery
from tracklane.resources.sources import SourceUpdate
from tracklane.resources.traffic import TrafficRuleCreate, TrafficRuleUpdate
from tracklane.resources.webhooks import WebhookCreate, WebhookUpdate

T = TypeVar("T")

#: The key of the version that stands for every hour's (`Repository.report_versions`).
EVERY_HOUR = datetime(1970, 1, 1, tzinfo=UTC)

Clock = Callable[[], datetime]


@dataclass(frozen=True, slots=True)
class Page:
    """Which slice of a list to read: newest first, before the cursor, within a time range."""

    limit: int = 50
    cursor: int | None = None
    created_from: datetime | None = None
    created_to: datetime | None = None
    filters: Mapping[str, object] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class NewClick:
    transaction_id: str
    offer_id: int
    partner_id: int
    advertiser_id: int | None
    subs: tuple[str | None, str | None, str | None, str | None, str | None]
    source_id: str | None
    ip: str | None
    user_agent: str | None
    device: ClickDevice
    country: str | None
    referrer: str | None
    verdict: str
    reject_reason: str | None
    revenue: Decimal
    payout: Decimal
    created_at: datetime


@dataclass(frozen=True, slots=True)
class NewConversion:
    transaction_id: str
    click_id: int
    offer_id: int
    partner_id: int
    advertiser_id: int
    event_id: int | None
    event_name: str | None
    status: ConversionStatus
    status_reason: str | None
    revenue: Decimal
    payout: Decimal
    revenue_type: str
    payout_type: str
    amount: Decimal | None
    currency: str
    order_id: str | None
    advs: tuple[str | None, ...]
    origin: str
    dedup_key: str | None
    trace: tuple[TraceStep, ...]
    created_at: datetime


class CatalogRepository(Protocol):
    """Advertisers, partners, offers, events, access, partner payouts and API keys."""

    def insert_advertiser(
        self, name: str, postback_token: str, now: datetime, status: str = "active"
    ) -> Advertiser: ...
    def get_advertiser(self, advertiser_id: int) -> Advertiser | None: ...
    def find_advertiser_by_token(self, token: str) -> Advertiser | None: ...
    def list_advertisers(self, page: Page) -> list[Advertiser]: ...
    def update_advertiser(
        self, advertiser_id: int, changes: AdvertiserUpdate, postback_token: str | None, now: datetime
    ) -> None:
        """Apply the fields sent; a new postback token when one is given."""
        ...

    def insert_partner(self, name: str, email: str, status: str, now: datetime) -> Partner: ...
    def get_partner(self, partner_id: int) -> Partner | None: ...
    def find_partner_by_email(self, email: str) -> Partner | None: ...
    def list_partners(self, page: Page) -> list[Partner]: ...
    def update_partner(self, partner_id: int, changes: PartnerUpdate, now: datetime) -> None: ...

    def insert_offer(self, offer: OfferCreate, now: datetime) -> Offer: ...
    def get_offer(self, offer_id: int) -> Offer | None: ...
    def list_offers(self, page: Page) -> list[Offer]: ...

    def list_offers_visible_to(self, partner_id: int, page: Page) -> list[Offer]:
        """Offers that are not private, and private offers the partner was approved for."""
        ...

    def update_offer(self, offer_id: int, changes: OfferUpdate, now: datetime) -> None:
        """Apply the fields sent; caps that did not change keep their ids (and so their counters)."""
        ...

    def insert_offer_event(self, offer_id: int, event: OfferEventCreate, now: datetime) -> OfferEvent: ...
    def list_offer_events(self, offer_id: int) -> list[OfferEvent]: ...
    def update_offer_event(self, event_id: int, changes: OfferEventUpdate) -> None: ...

    def get_access(self, offer_id: int, partner_id: int) -> OfferAccess | None: ...
    def get_access_by_id(self, access_id: int) -> OfferAccess | None: ...
    def save_access(self, access: OfferAccessCreate, now: datetime) -> OfferAccess:
        """Give the partner this access to the offer, replacing the status and reason of an earlier one."""
        ...

    def update_access(self, access_id: int, changes: OfferAccessUpdate, now: datetime) -> None: ...
    def list_access(self, page: Page) -> list[OfferAccess]: ...

    def insert_partner_payout(self, offer_id: int, payout: PartnerPayoutCreate, now: datetime) -> PartnerPayout:
        """Store the payout, replacing the partner's earlier one for the same offer and event."""
        ...

    def list_partner_payouts(self, offer_id: int) -> list[PartnerPayout]: ...
    def delete_partner_payout(self, offer_id: int, payout_id: int) -> bool:
        """False when the offer has no such payout."""
        ...

    def insert_api_key(
        self,
        role: str,
        advertiser_id: int | None,
        partner_id: int | None,
        key_hash: str,
        prefix: str,
        now: datetime,
    ) -> ApiKey: ...
    def find_api_key(self, key_hash: str) -> ApiKey | None: ...
    def list_api_keys(self, page: Page) -> list[ApiKey]: ...
    def revoke_api_key(self, key_id: int, now: datetime) -> bool: ...


class TrackingRepository(Protocol):
    """Clicks, cap counters and conversions."""

    def insert_click(self, click: NewClick) -> Click: ...
    def get_click(self, transaction_id: str) -> Click | None: ...

    def list_clicks(self, page: Page) -> list[Click]: ...
    def take_caps(self, counters: Sequence[tuple[CapCounterKey, int]]) -> bool:
        """Count one action against every (counter, limit); all or none, false when one is full."""
        ...

    def find_conversion_by_dedup_key(self, key: str) -> Conversion | None: ...
    def has_base_conversion(self, click_id: int) -> bool: ...
    def base_conversion_statuses(self, click_id: int) -> frozenset[ConversionStatus]:
        """The statuses of the click's base conversions (empty: it has none)."""
        ...

    def insert_conversion(self, conversion: NewConversion) -> Conversion: ...
    def get_conversion(self, conversion_id: int) -> Conversion | None: ...
    def hold_conversion(self, conversion_id: int) -> Conversion | None:
        """The conversion as last committed; no other writer changes it until this one commits (a change
        made from it undoes no other writer's change)."""
        ...

    def list_conversions(self, page: Page) -> list[Conversion]: ...
    def update_conversion_status(
        self,
        conversion_id: int,
        status: ConversionStatus,
        reason: str | None,
        trace: Sequence[TraceStep],
        now: datetime,
    ) -> None:
        """Set the status and its reason, and replace the trace (the old steps and the change)."""
        ...

    def update_conversion_money(
        self,
        conversion_id: int,
        amount: Decimal | None,
        revenue: Decimal,
        payout: Decimal,
        trace: Sequence[TraceStep],
        now: datetime,
    ) -> None:
        """Set the sale amount, revenue and payout, and replace the trace (the old steps and the adjustment)."""
        ...

    def report(self, query: ReportQuery) -> list[ReportLine]:
        """One line per group and currency with data, in the order of the group's values (time buckets in
        time, none last), then of their currency."""
        ...

    def report_with_totals(self, query: ReportQuery) -> tuple[list[ReportLine], list[ReportLine]]:
        """The report's lines and its totals, a line per currency (what `report` gives grouped by nothing)."""
        ...

    def report_versions(self, first: datetime, last: datetime) -> Mapping[datetime, int]:
        """The version of each UTC hour from `first` to `last` (their starts) that has one, and that of
        `EVERY_HOUR`: an hour's is raised by every write that changes what a report counts in it, every
        hour's at once by a change to them all (an offer's currency, a recount); never lowered. An hour
        without one has 0."""
        ...


@dataclass(frozen=True, slots=True)
class NewSource:
    name: str
    advertiser_id: int
    preset: str
    write_key: str
    webhook_secret: str
    settings: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class NewSegmentMessage:
    """A message as received; it is stored with outcome `ignored` until `MessageResult` says what it did."""

    source_id: int
    message_id: str
    type: str
    event: str | None
    user_id: str | None
    anonymous_id: str | None
    timestamp: datetime
    original_timestamp: datetime
    sent_at: datetime | None
    received_at: datetime
    relayed: bool
    payload: Mapping[str, Any]
    created_at: datetime


@dataclass(frozen=True, slots=True)
class MessageResult:
    outcome: MessageOutcome
    detail: str
    conversion_id: int | None
    customer_id: int | None
    mapped: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class CustomerChanges:
    """The customer fields to change; a field left `UNSET` keeps its value."""

    user_id: str | Unset | None = UNSET
    traits: Mapping[str, Any] | Unset = UNSET
    group_id: str | Unset | None = UNSET
    group_traits: Mapping[str, Any] | Unset = UNSET
    audiences: Sequence[str] | Unset = UNSET
    previous_ids: Sequence[str] | Unset = UNSET
    status: str | Unset = UNSET
    transaction_id: str | Unset | None = UNSET
    offer_id: int | Unset | None = UNSET
    partner_id: int | Unset | None = UNSET
    visits: int | Unset = UNSET
    signed_up_at: datetime | Unset | None = UNSET
    churned_at: datetime | Unset | None = UNSET

    def given(self) -> dict[str, Any]:
        """The fields set, by name (the names of the customer's attributes and columns)."""
        return {f.name: getattr(self, f.name) for f in fields(self) if getattr(self, f.name) is not UNSET}


@dataclass(frozen=True, slots=True)
class NewCustomerActivity:
    source_id: int
    customer_id: int
    kind: str  # signup, payment, refund, churn, event (a custom event)
    amount: Decimal | None
    currency: str | None
    offer_id: int | None
    partner_id: int | None
    message_id: str
    occurred_at: datetime
    created_at: datetime
    dedup_key: str  # one activity per (source, kind, dedup_key): `domain/segment/activity.py`
    event: str | None = None  # the custom event's name


class SegmentRepository(Protocol):
    """Sources, received Segment messages, customers, their identities and activity."""

    def savepoint(self) -> AbstractContextManager[None]:
        """A nested transaction: work inside it that raises is undone alone."""
        ...

    def insert_source(self, source: NewSource, now: datetime) -> Source:
        """`Conflict` naming `write_key` when another source has it."""
        ...

    def get_source(self, source_id: int) -> Source | None: ...
    def find_source_by_write_key(self, write_key: str) -> Source | None: ...
    def list_sources(self, page: Page) -> list[Source]: ...
    def update_source(self, source_id: int, changes: SourceUpdate, now: datetime) -> None:
        """Apply the fields sent (settings already checked against the source's preset)."""
        ...

    def insert_segment_message(self, message: NewSegmentMessage, result: MessageResult | None = None) -> int | None:
        """The stored row's id, or None when the source already has this messageId; stored with `result`
        when it is known, else as `ignored` until `update_segment_message`."""
        ...

    def stored_message_ids(self, source_id: int, message_ids: Sequence[str]) -> set[str]:
        """Which of these messageIds the source has already stored."""
        ...

    def update_segment_message(self, row_id: int, result: MessageResult) -> None: ...
    def list_segment_messages(self, page: Page) -> list[StoredMessage]: ...

    def find_customers(self, source_id: int, identities: Sequence[str]) -> list[Customer]:
        """The customers known by any of the identities, as last committed; no other writer changes them
        until this one commits (what is changed from them undoes no other writer's change)."""
        ...

    def get_customer(self, customer_id: int) -> Customer | None: ...
    def list_customers(self, page: Page) -> list[Customer]: ...
    def insert_customer(self, source_id: int, now: datetime) -> Customer: ...
    def link_identity(self, source_id: int, identity: str, customer_id: int) -> None:
        """Point a new identity at the customer; `DuplicateKey`, with nothing changed, when it is linked already
        (by a concurrent writer): an identity is moved only by a merge."""
        ...

    def update_customer(self, customer_id: int, changes: CustomerChanges, now: datetime) -> None: ...
    def merge_customers(self, keep_id: int, drop_id: int) -> None:
        """Move the dropped customer's identities, activity and messages to the kept one and delete it; the
        kept one has one signup and one churn at most (the earliest), and its activity counts for its click."""
        ...

    def insert_customer_activity(self, activity: NewCustomerActivity) -> bool:
        """Record the activity; False (nothing written) when its source already has its kind and dedup key."""
        ...

    def set_activity_attribution(self, customer_id: int, offer_id: int, partner_id: int) -> None: ...
    def customer_report(
        self, group_by: str, created_from: datetime | None, created_to: datetime | None, filters: Mapping[str, int]
    ) -> list[dict[str, Any]]: ...
    def customer_event_report(
        self, group_by: str, created_from: datetime | None, created_to: datetime | None, filters: Mapping[str, Any]
    ) -> list[dict[str, Any]]:
        """Custom events per group (partner, offer, source or customer) and event name: `count`, `customers`."""
        ...


@dataclass(frozen=True, slots=True)
class NewTrafficBlock:
    rule_id: int
    offer_id: int
    partner_id: int
    variable: TrafficVariable
    value: str
    clicks: int
    conversions: int
    cvr_percent: Decimal
    created_at: datetime


@dataclass(frozen=True, slots=True)
class NewDelivery:
    kind: DeliveryKind
    event_type: str
    method: str
    body: str | None
    status: DeliveryStatus
    next_attempt_at: datetime
    created_at: datetime
    endpoint_id: int | None = None
    postback_id: int | None = None
    url: str | None = None
    dedup_key: str | None = None


@dataclass(frozen=True, slots=True)
class NewAttempt:
    delivery_id: int
    worker: str
    status_code: int | None
    error_class: str | None
    error: str | None
    latency_ms: int
    response_excerpt: str | None
    verdict: str
    created_at: datetime


@dataclass(frozen=True, slots=True)
class Release:
    """What a worker writes back when it gives up the lease of a delivery: the new status and, when an
    attempt was made, the attempt count, the last answer and when to try next."""

    status: DeliveryStatus
    attempts: int | None = None  # None: no attempt was made (e.g. the endpoint was disabled: skipped)
    last_status_code: int | None = None
    last_error: str | None = None
    next_attempt_at: datetime | None = None

    def columns(self) -> dict[str, object]:
        values: dict[str, object] = {"status": self.status.value}
        if self.attempts is not None:
            values.update(attempts=self.attempts, last_status_code=self.last_status_code, last_error=self.last_error)
        if self.next_attempt_at is not None:
            values["next_attempt_at"] = self.next_attempt_at
        return values


@dataclass(frozen=True, slots=True)
class Requeue:
    """Which deliveries a replay puts back in the queue: created in [created_from, created_to)."""

    created_from: datetime
    created_to: datetime
    statuses: frozenset[DeliveryStatus]
    endpoint_id: int | None = None
    postback_id: int | None = None


@dataclass(frozen=True, slots=True)
class EndpointState:
    """Whether a webhook endpoint receives deliveries, why not, and since when every delivery fails."""

    status: EndpointStatus
    disabled_reason: str | None = None
    disabled_at: datetime | None = None
    failing_since: datetime | None = None

    @classmethod
    def of(cls, endpoint: WebhookEndpoint) -> EndpointState:
        return cls(endpoint.status, endpoint.disabled_reason, endpoint.disabled_at, endpoint.failing_since)


@dataclass(frozen=True, slots=True)
class SecretRotation:
    """A new signing secret; the previous one keeps signing too until `previous_expires_at` (all sealed)."""

    secret: str
    previous_secret: str
    previous_expires_at: datetime


@dataclass(frozen=True, slots=True)
class PostbackState:
    """Whether a partner postback fires, why not, and its current streak of failures."""

    status: PostbackStatus
    deactivated_reason: str | None = None
    failure_count: int = 0
    failure_started_at: datetime | None = None

    @classmethod
    def of(cls, postback: PartnerPostback) -> PostbackState:
        return cls(postback.status, postback.deactivated_reason, postback.failure_count, postback.failure_started_at)


class DeliveryRepository(Protocol):
    """Webhook endpoints, partner postbacks and the outbox of deliveries with their attempts."""

    def insert_webhook_endpoint(self, endpoint: WebhookCreate, secret: str, now: datetime) -> WebhookEndpoint:
        """A new active endpoint signing with `secret` (sealed)."""
        ...

    def get_webhook_endpoint(self, endpoint_id: int) -> WebhookEndpoint | None: ...
    def list_webhook_endpoints(self, page: Page) -> list[WebhookEndpoint]: ...
    def all_webhook_endpoints(self) -> list[WebhookEndpoint]: ...
    def update_webhook_endpoint(self, endpoint_id: int, changes: WebhookUpdate, now: datetime) -> None:
        """Apply the url, event types and description sent (the status goes through `set_webhook_endpoint_state`)."""
        ...

    def set_webhook_endpoint_state(self, endpoint_id: int, state: EndpointState, now: datetime) -> None: ...
    def clear_webhook_endpoint_failure(self, endpoint_id: int, now: datetime) -> None:
        """A success: the endpoint is no longer failing (nothing is written when it was not)."""
        ...

    def rotate_webhook_secret(self, endpoint_id: int, rotation: SecretRotation, now: datetime) -> None: ...

    def insert_partner_postback(
        self, partner_id: int, postback: PartnerPostbackCreate, now: datetime
    ) -> PartnerPostback:
        """A new active postback of `partner_id` (the body's own `partner_id` is not read)."""
        ...

    def get_partner_postback(self, postback_id: int) -> PartnerPostback | None: ...
    def list_partner_postbacks(self, page: Page) -> list[PartnerPostback]: ...
    def postbacks_of_partner(self, partner_id: int) -> list[PartnerPostback]: ...
    def update_partner_postback(self, postback_id: int, changes: PartnerPostbackUpdate, now: datetime) -> None:
        """Apply the template and options sent (the status goes through `set_partner_postback_state`)."""
        ...

    def set_partner_postback_state(self, postback_id: int, state: PostbackState, now: datetime) -> None: ...
    def clear_partner_postback_failures(self, postback_id: int, now: datetime) -> None:
        """A success ends the postback's failure streak (nothing is written when it had none)."""
        ...

    def delete_partner_postback(self, postback_id: int, now: datetime) -> None:
        """Delete the postback: no read finds it any more (get, lists, a partner's postbacks), so it never fires
        again; its deliveries are kept, with its id."""
        ...

    def insert_delivery(self, delivery: NewDelivery) -> Delivery | None:
        """None when a delivery with the same dedup key exists already."""
        ...

    def get_delivery(self, delivery_id: int) -> Delivery | None: ...
    def list_deliveries(self, page: Page) -> list[Delivery]: ...
    def list_attempts(self, delivery_id: int) -> list[DeliveryAttempt]: ...
    def claim_deliveries(self, worker: str, now: datetime, lease_until: datetime, limit: int) -> list[Delivery]:
        """Take due pending deliveries and those whose lease expired; no two workers get the same one."""
        ...

    def release_delivery(self, delivery_id: int, worker: str, release: Release, now: datetime) -> bool:
        """Apply the outcome of an attempt if `worker` still holds the lease; false when it lost it."""
        ...

    def insert_attempts(self, attempts: Sequence[NewAttempt]) -> None:
        """The attempts' rows, in one statement."""
        ...

    def release_deliveries(self, releases: Sequence[tuple[int, Release]], worker: str, now: datetime) -> list[bool]:
        """`release_delivery` of each (delivery id, release), in as few statements as their kinds of release."""
        ...

    def requeue_delivery(self, delivery_id: int, now: datetime) -> bool: ...
    def requeue_deliveries(self, requeue: Requeue, now: datetime) -> int: ...


@dataclass(frozen=True, slots=True)
class NewUser:
    email: str
    name: str
    role: Role
    advertiser_id: int | None
    partner_id: int | None
    status: UserStatus
    created_at: datetime


@dataclass(frozen=True, slots=True)
class UserChanges:
    """The user fields to change; a field left `UNSET` keeps its value."""

    email: str | Unset = UNSET
    name: str | Unset = UNSET
    status: UserStatus | Unset = UNSET
    last_sign_in_at: datetime | Unset = UNSET

    def given(self) -> dict[str, Any]:
        """The fields set, by name (the names of the user's columns)."""
        return {f.name: getattr(self, f.name) for f in fields(self) if getattr(self, f.name) is not UNSET}


@dataclass(frozen=True, slots=True)
class NewSession:
    token_hash: str  # the SHA-256 of the session token (the token itself is never stored)
    user_id: int
    csrf_token: str
    created_at: datetime
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class UserSession:
    id: int
    user_id: int
    csrf_token: str
    created_at: datetime
    expires_at: datetime
    last_seen_at: datetime


@dataclass(frozen=True, slots=True)
class NewLink:
    token_hash: str  # the SHA-256 of the one-time token
    user_id: int
    kind: LinkKind
    created_at: datetime
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class UserLink:
    id: int
    user_id: int
    kind: LinkKind
    created_at: datetime
    expires_at: datetime
    used_at: datetime | None


class UserRepository(Protocol):
    """Users, their password hashes, sessions and one-time links."""

    def insert_user(self, user: NewUser) -> User: ...
    def get_user(self, user_id: int) -> User | None: ...
    def find_user_by_email(self, email: str) -> User | None: ...
    def list_users(self, page: Page) -> list[User]: ...
    def update_user(self, user_id: int, changes: UserChanges, now: datetime) -> None: ...

    def get_password_hash(self, user_id: int) -> str | None:
        """The user's password hash (None: no password yet); read only by the sign-in step."""
        ...

    def set_password_hash(self, user_id: int, password_hash: str, now: datetime) -> None: ...

    def insert_session(self, session: NewSession) -> None: ...
    def find_session(self, token_hash: str) -> UserSession | None: ...
    def touch_session(self, session_id: int, now: datetime) -> None: ...
    def delete_session(self, token_hash: str) -> None: ...
    def end_sessions(self, user_id: int, expired_by: datetime | None = None) -> None:
        """Delete the user's sessions: every one, or only those expired by `expired_by`."""
        ...

    def insert_link(self, link: NewLink) -> None: ...
    def find_link(self, token_hash: str) -> UserLink | None: ...
    def use_link(self, link_id: int, now: datetime) -> None: ...
    def void_links(self, user_id: int, kind: LinkKind | None, now: datetime) -> None:
        """Make the user's unused links of this kind (of any kind: None) expire now."""
        ...


class TrafficRepository(Protocol):
    """Traffic rules, the blocks optimization rules make, and the numbers they are judged on."""

    def insert_traffic_rule(self, rule: TrafficRuleCreate, now: datetime) -> TrafficRule: ...
    def get_traffic_rule(self, rule_id: int) -> TrafficRule | None: ...
    def list_traffic_rules(self, page: Page) -> list[TrafficRule]: ...
    def update_traffic_rule(self, rule_id: int, changes: TrafficRuleUpdate, now: datetime) -> None: ...
    def delete_traffic_rule(self, rule_id: int) -> None:
        """Delete the rule and its blocks."""
        ...

    def due_optimization_rules(self, evaluated_before: datetime) -> list[TrafficRule]:
        """Active optimization rules last evaluated before that time (or never)."""
        ...

    def mark_evaluated(self, rule_id: int, now: datetime) -> None: ...
    def traffic_stats(self, rule: TrafficRule, since: datetime) -> list[TrafficStat]:
        """Billable clicks since `since` and their base conversions (not rejected), by offer, partner and the
        rule's variable, within the rule's offer and partner; clicks without a value are left out."""
        ...

    def insert_traffic_block(self, block: NewTrafficBlock) -> TrafficBlock: ...
    def get_traffic_block(self, block_id: int) -> TrafficBlock | None: ...
    def list_traffic_blocks(self, page: Page) -> list[TrafficBlock]: ...
    def blocked_values(self, rule_id: int) -> set[tuple[int, int, str]]:
        """(offer, partner, value) of every block the rule made, lifted ones included."""
        ...

    def lift_traffic_block(self, block_id: int, by: str, reason: str, now: datetime) -> None: ...
    def blocklist_for(self, offer_id: int, partner_id: int) -> Blocklist:
        """What blocks this offer's clicks from this partner (cached like the catalogue)."""
        ...


class Repository(
    CatalogRepository,
    TrackingRepository,
    SegmentRepository,
    DeliveryRepository,
    UserRepository,
    TrafficRepository,
    Protocol,
):
    """Everything one transaction can read and write."""


class SecretBox(Protocol):
    """Seals secrets before they are stored, and opens them for use (webhook signing secrets)."""

    def seal(self, secret: str) -> str: ...
    def open(self, sealed: str) -> str: ...


@dataclass(frozen=True, slots=True)
class Refused:
    """What a write function returns, instead of raising, for a request it refuses before writing anything.

    An error raised inside a write is a fault to the storage: the group-commit writer rolls back the whole
    batch it ran in and runs it again with one savepoint per write. A refusal returned as a value commits
    with the batch like any other result (there is nothing to undo) and costs the other writes nothing; the
    service raises it once `Database.write` has returned (`raise_refused`).
    """

    error: TracklaneError

    def __post_init__(self) -> None:
        # Where the write decided it does not matter to its caller, and that traceback would keep the
        # write's frames (its repository, its rows) alive: measurably slowing the writer under refusals.
        self.error.with_traceback(None)


def refusing(work: Callable[[Repository], T]) -> Callable[[Repository], T | Refused]:
    """`work` with the refusals it raises (a `TracklaneError`) returned as `Refused` values.

    Only for write functions that check everything before their first write (as the catalogue's, partner
    postbacks', webhooks', sources' and API keys' do): what a refusal returned this way commits is what was
    written before it, so that must be nothing. Driver errors still raise: the storage undoes them.
    """

    def refused_or_done(repo: Repository) -> T | Refused:
        try:
            return work(repo)
        except TracklaneError as error:
            return Refused(error)

    return refused_or_done


def raise_refused(result: T | Refused) -> T:
    """The result of a write, or its refusal raised."""
    if isinstance(result, Refused):
        try:
            raise result.error
        finally:
            del result  # the raised error's traceback holds this frame: no cycle through `result`
    return result


class Database(Protocol):
    """Runs work in transactions; a `write` is committed before it returns.

    A write function refuses bad input by returning `Refused`, not by raising (see there): a refusal commits
    what the function wrote before it, so it must write nothing first. A write that cannot be done in
    time, or while the database is unavailable or the writer's queue full, raises `StorageUnavailable`.
    `rehearse` runs a write function as `write` would, then rolls it back whatever it returned: its result
    is what the write would have done, and nothing of it is kept (a dry run).
    """

    def write(self, work: Callable[[Repository], T]) -> Awaitable[T]: ...
    def rehearse(self, work: Callable[[Repository], T]) -> Awaitable[T]: ...
    def read(self, work: Callable[[Repository], T]) -> Awaitable[T]: ...
