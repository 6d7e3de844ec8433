"""Ingesting Segment messages: each valid message is stored once per (source, messageId) and applied to
customers, conversions, events and refunds inside the same transaction, committed before the answer.

A message that cannot be read (malformed, unstorable, too large: `domain/segment/messages.py`) is refused on
its own: it is stored with outcome `refused`, the reason (a JSON path and why) as its detail and the start
of its text as sent as its payload, and the rest of its batch is kept. A message whose
conversion attribution refuses (unknown click, no prior conversion, outside the window) is still stored
with the refusal as its outcome, and its customer data is kept; a message with bad input (a malformed
amount, a currency that is not the offer's) is stored as refused and nothing else of it is applied.

A source belongs to one advertiser and sees only that advertiser's clicks and conversions: a click of
another advertiser is treated exactly like a click that does not exist (it converts nothing, links no
customer, and the message's detail reveals nothing of it), a refund rejects only that advertiser's
conversions, and only offers that accept the `segment` conversion method convert. A source without an
advertiser (migrated without one) attributes nothing.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from functools import partial
from typing import Any

from tracklane.domain.errors import InvalidParameter, PostbackRefused, TracklaneError
from tracklane.domain.ids import MAX_ID
from tracklane.domain.model import Click, Conversion, ConversionMethod, ConversionStatus, Origin
from tracklane.domain.postback import ConversionRequest
from tracklane.domain.segment.activity import CHURN, SIGNUP, customer_activity
from tracklane.domain.segment.body import printable
from tracklane.domain.segment.mapping import ConversionIntent, Meaning, map_message
from tracklane.domain.segment.messages import TYPES, Envelope, Message, read_message
from tracklane.domain.segment.model import Customer, MessageOutcome, Source
from tracklane.domain.segment.settings import SourceSettings, source_settings
from tracklane.resources.fields import UNSET
from tracklane.services.conversions import _change_status, _record
from tracklane.services.ports import (
    Clock,
    CustomerChanges,
    Database,
    DuplicateKey,
    MessageResult,
    NewCustomerActivity,
    NewSegmentMessage,
    Page,
    Repository,
)


@dataclass(frozen=True, slots=True)
class IngestReport:
    """How many messages were stored (refused ones included), how many were duplicates, how many were
    stored with outcome `refused`, and why each message that could not be read was refused."""

    stored: int = 0
    duplicates: int = 0
    refused: int = 0
    reasons: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class _RefusedMessage:
    """A message that could not be read: stored as `refused` with its reason and its text."""

    row: NewSegmentMessage
    detail: str


@dataclass(slots=True)
class _Applied:
    outcome: MessageOutcome = MessageOutcome.IGNORED
    detail: str = ""
    conversion_id: int | None = None
    customer_id: int | None = None


SOURCE_CACHE_SECONDS = 5
#: A batch is written in transactions of at most this many messages, so that a large one does not hold the
#: writer (or pass the write timeout) at once; it is answered once every part is committed.
MESSAGES_PER_WRITE = 250
MAX_WRITE_KEY = 64
NO_ADVERTISER = "this source belongs to no advertiser: it attributes nothing until an admin sets its advertiser_id"
NOT_THIS_ADVERTISERS = "no click of an offer of this source's advertiser"
MAX_RACE_RETRIES = 3
SOURCE_CACHE_SIZE = 1024


class SegmentService:
    def __init__(self, db: Database, clock: Clock) -> None:
        self._db = db
        self._clock = clock
        self._sources: dict[str, tuple[Source, datetime]] = {}

    async def source_for_write_key(self, write_key: str) -> Source | None:
        """The source of a write key; kept for a few seconds per process (settings changes apply within that)."""
        if not _plausible_key(write_key):
            return None  # nothing the database could hold (or be asked about) is a write key
        now = self._clock()
        cached = self._sources.get(write_key)
        if cached is not None and cached[1] > now:
            return cached[0]
        source = await self._db.read(lambda repo: repo.find_source_by_write_key(write_key))
        if source is not None:
            if len(self._sources) >= SOURCE_CACHE_SIZE:
                self._sources.clear()
            self._sources[write_key] = (source, now + timedelta(seconds=SOURCE_CACHE_SECONDS))
        return source

    async def get_source(self, source_id: int) -> Source | None:
        if not 0 < source_id <= MAX_ID:
            return None
        return await self._db.read(lambda repo: repo.get_source(source_id))

    async def preview(self, source: Source, raw: object) -> MessagePreview:
        """What one message (a decoded JSON object, as a client sends it) would do on this source now: it
        is mapped and applied with the same code as a real one (the click found, the event, the money, the
        conversion's status and trace) inside a savepoint that is then rolled back, so nothing is stored,
        counted against a cap, or delivered. A message that could not be read is `InvalidParameter`."""
        now = self._clock()
        message = read_message(raw, {}, now, trusted=True)
        return await self._db.write(partial(_preview, source=source, message=message, now=now))

    async def ingest(
        self,
        source: Source,
        envelope: Envelope,
        received_at: datetime,
        *,
        relayed: bool,
        sent_header: str | None = None,
        client_ip: str | None = None,
    ) -> IngestReport:
        """Read every message, store each valid one (once) and apply it, and store each unreadable one as
        refused; durable when this returns."""
        work: list[Message | _RefusedMessage] = []
        reasons: list[str] = []
        now = self._clock()
        for index, raw in enumerate(envelope.items):
            try:
                work.append(read_message(raw, envelope.batch, received_at, trusted=relayed,
                                         sent_header=sent_header, client_ip=client_ip))  # fmt: skip
            except InvalidParameter as error:
                reasons.append(f"message {index}: {error.message}")
                work.append(_refused(source, envelope, index, error, received_at, relayed, now))
        if not work:
            return IngestReport()
        settings = source_settings(source.preset, source.settings)
        stored = duplicates = refused = 0
        for start in range(0, len(work), MESSAGES_PER_WRITE):
            part = work[start : start + MESSAGES_PER_WRITE]
            done = partial(_ingest, source=source, settings=settings, work=part, relayed=relayed, now=now)
            counts = await self._db.write(done)
            stored, duplicates, refused = stored + counts[0], duplicates + counts[1], refused + counts[2]
        return IngestReport(stored, duplicates, refused, reasons)


@dataclass(frozen=True, slots=True)
class MessagePreview:
    """What a message would do if it were sent now, found by doing it and undoing it: the mapping's summary
    and parameters, the outcome and its detail, and the conversion it would record (None if none)."""

    outcome: MessageOutcome
    detail: str
    summary: str | None = None
    click_reference: str | None = None
    parameters: dict[str, Any] = field(default_factory=dict)
    conversion: Conversion | None = None


class _Undone(Exception):
    """Raised inside the preview's savepoint to roll it back, carrying what the message did."""

    def __init__(self, preview: MessagePreview) -> None:
        super().__init__("preview")
        self.preview = preview


def _preview(repo: Repository, source: Source, message: Message, now: datetime) -> MessagePreview:
    settings = source_settings(source.preset, source.settings)
    try:
        with repo.savepoint():
            done = _apply_once(repo, source, settings, message, now)
            assert done is not None, "a preview stores no message, so none is stored meanwhile"
            meaning, applied = done
            conversion = repo.get_conversion(applied.conversion_id) if applied.conversion_id else None
            raise _Undone(MessagePreview(
                outcome=applied.outcome, detail=applied.detail,
                summary=meaning.summary if meaning else None,
                click_reference=meaning.click_reference if meaning else None,
                parameters=dict(meaning.parameters) if meaning else {}, conversion=conversion,
            ))  # fmt: skip
    except _Undone as undone:
        return undone.preview
    raise AssertionError("unreachable: the preview always undoes itself")


def _plausible_key(key: str) -> bool:
    """A write key the sources table could hold: 1 to 64 characters, no NUL, encodable (no lone surrogate)."""
    if not 0 < len(key) <= MAX_WRITE_KEY or "\x00" in key:
        return False
    try:
        key.encode()
    except UnicodeEncodeError:
        return False
    return True


def _refused(
    source: Source,
    envelope: Envelope,
    index: int,
    error: InvalidParameter,
    received_at: datetime,
    relayed: bool,
    now: datetime,
) -> _RefusedMessage:
    """The record of an unreadable message: its id is derived from its text (an identical retry is a
    duplicate, and the client's own messageId stays free for a corrected message); its type is kept when
    it is one."""
    text = envelope.raw_text(index)
    shown, size = printable(text)
    raw = envelope.items[index]
    kind = raw.get("type") if isinstance(raw, dict) else None
    digest = hashlib.sha256(text.encode("utf-8", "surrogateescape")).hexdigest()[:40]
    row = NewSegmentMessage(
        source_id=source.id, message_id=f"tl-refused-{digest}", type=kind if kind in TYPES else "unknown",
        event=None, user_id=None, anonymous_id=None, timestamp=received_at, original_timestamp=received_at,
        sent_at=None, received_at=received_at, relayed=relayed, payload={"raw": shown, "raw_bytes": size},
        created_at=now,
    )  # fmt: skip
    return _RefusedMessage(row, f"invalid_message: {error.message}")


def _ingest(
    repo: Repository,
    source: Source,
    settings: SourceSettings,
    work: Sequence[Message | _RefusedMessage],
    relayed: bool,
    now: datetime,
) -> tuple[int, int, int]:
    """(stored, duplicates, stored as refused). Each message is stored once, with what it did; the
    messageIds the source already has are asked for once, so that a retried batch costs one query."""
    stored = duplicates = refused = 0
    known = repo.stored_message_ids(source.id, [_message_id(message) for message in work])
    for message in work:
        if _message_id(message) in known:
            duplicates += 1
            continue
        known.add(_message_id(message))
        if isinstance(message, _RefusedMessage):
            result = MessageResult(MessageOutcome.REFUSED, message.detail[:2000], None, None, {})
            outcome: MessageOutcome | None = result.outcome
            if repo.insert_segment_message(message.row, result) is None:
                outcome = None
        else:
            done = _apply_once(repo, source, settings, message, now, _received(source, message, relayed, now))
            outcome = None if done is None else done[1].outcome
        if outcome is None:  # stored meanwhile by another process
            duplicates += 1
            continue
        stored += 1
        refused += outcome is MessageOutcome.REFUSED
    return stored, duplicates, refused


def _message_id(message: Message | _RefusedMessage) -> str:
    return message.row.message_id if isinstance(message, _RefusedMessage) else message.message_id


class _StoredMeanwhile(Exception):
    """Raised inside a message's savepoint when its messageId was stored by another process meanwhile."""


def _apply_once(
    repo: Repository, source: Source, settings: SourceSettings, message: Message, now: datetime,
    row: NewSegmentMessage | None = None,
) -> tuple[Meaning | None, _Applied] | None:  # fmt: skip
    """Map and apply the message in its own savepoint, and store `row` (the message as received) with what it
    did; None, with nothing kept, when its messageId was stored meanwhile. When another process created the
    same customer at the same moment, the savepoint is undone and the message applied again to the customer
    now visible."""
    meaning: Meaning | None = None
    for _ in range(MAX_RACE_RETRIES):
        try:
            with repo.savepoint():
                meaning = map_message(message, settings)
                applied = _apply(repo, source, message, meaning, now)
                if row is not None and repo.insert_segment_message(row, _result(meaning, applied)) is None:
                    raise _StoredMeanwhile
                return meaning, applied
        except _StoredMeanwhile:
            return None
        except DuplicateKey:
            continue
        except TracklaneError as error:
            applied = _Applied(MessageOutcome.REFUSED, f"{error.code}: {error.message}")
            if row is not None and repo.insert_segment_message(row, _result(meaning, applied)) is None:
                return None
            return meaning, applied
    raise PostbackRefused("busy", "the customer is being changed concurrently; retry")


def _result(meaning: Meaning | None, applied: _Applied) -> MessageResult:
    mapped = {} if meaning is None else {
        "summary": meaning.summary, "click_reference": meaning.click_reference, "click_path": meaning.click_path,
        "parameters": dict(meaning.parameters), "items": [dict(i) for i in meaning.items],
    }  # fmt: skip
    return MessageResult(
        outcome=applied.outcome, detail=applied.detail[:2000], conversion_id=applied.conversion_id,
        customer_id=applied.customer_id, mapped=mapped,
    )  # fmt: skip


def _received(source: Source, message: Message, relayed: bool, now: datetime) -> NewSegmentMessage:
    return NewSegmentMessage(
        source_id=source.id, message_id=message.message_id, type=message.type, event=message.event,
        user_id=message.user_id, anonymous_id=message.anonymous_id, timestamp=message.timestamp,
        original_timestamp=message.original_timestamp, sent_at=message.sent_at, received_at=message.received_at,
        relayed=relayed or message.relayed, payload=message.payload, created_at=now,
    )  # fmt: skip


def _apply(repo: Repository, source: Source, message: Message, meaning: Meaning, now: datetime) -> _Applied:
    applied = _Applied(detail=meaning.summary)
    customer = _customer(repo, source, message, meaning, now)
    click, customer = _linked_click(repo, source, customer, meaning, now)
    if customer is not None:
        applied.customer_id = customer.id
        customer, note = _update_customer(repo, customer, message, meaning, now)
        applied.detail += note
        if _touches_customer(meaning):
            applied.outcome = MessageOutcome.CUSTOMER
    if source.advertiser_id is None:
        _attribute_nothing(meaning, applied)
        return applied
    # The click the message names; else (none named, or not one of this advertiser's) the click its customer
    # came from, unless the preset attributes only by the click named; else the reference as named, which
    # finds no click.
    if click is None and customer is not None and customer.transaction_id is not None and not meaning.strict_click:
        click = _own_click(repo, source, customer.transaction_id)
    transaction_id = click.transaction_id if click else meaning.click_reference
    if meaning.refunds_order:
        applied.outcome, applied.detail = MessageOutcome.REFUND, _refund(repo, source, meaning, transaction_id, now)
    if meaning.conversion is not None:
        _convert(repo, meaning.conversion, click, transaction_id, applied, now, meaning.click_missing)
    return applied


def _own_click(repo: Repository, source: Source, transaction_id: str) -> Click | None:
    """The click if it is one of the source's advertiser's; a click of another advertiser is not found."""
    click = repo.get_click(transaction_id)
    if click is None or source.advertiser_id is None or click.advertiser_id != source.advertiser_id:
        return None
    return click


def _attribute_nothing(meaning: Meaning, applied: _Applied) -> None:
    """A source without an advertiser: customer data applies, attribution and refunds do not."""
    intent = meaning.conversion
    if meaning.refunds_order:
        applied.outcome = MessageOutcome.REFUND
    elif intent is not None and intent.if_no_event != "skip":
        applied.outcome = MessageOutcome.UNATTRIBUTED
    elif meaning.click_reference is None and intent is None:
        return
    applied.detail += f"; {NO_ADVERTISER}"


def _touches_customer(meaning: Meaning) -> bool:
    return bool(
        meaning.activity
        or meaning.visit
        or meaning.traits
        or meaning.audiences
        or meaning.group
        or meaning.alias
        or meaning.links_click
    )


def _customer(repo: Repository, source: Source, message: Message, meaning: Meaning, now: datetime) -> Customer | None:
    """The person the message is about: found by any of its ids, created when new; ids seen together are
    stitched (two customers that turn out to be one are merged, the one with a click kept)."""
    identities = list(message.identities)
    if meaning.alias is not None:
        previous, _ = meaning.alias
        identities = [f"user:{previous}", f"anonymous:{previous}", *identities]
    found = repo.find_customers(source.id, identities)
    if not found:
        if not message.identities or not _worth_a_customer(message, meaning):
            return None
        customer = repo.insert_customer(source.id, now)
    else:
        found.sort(key=lambda c: (c.transaction_id is None, c.id))
        customer = found[0]
        for other in found[1:]:
            _merge(repo, customer, other, now)
        if len(found) > 1:
            customer = repo.get_customer(customer.id) or customer
    wanted = list(message.identities)
    if meaning.alias is not None:
        previous, _ = meaning.alias
        if f"user:{previous}" not in customer.identities and f"anonymous:{previous}" not in customer.identities:
            wanted.append(f"user:{previous}")  # an alias is permanent: later calls under the old id find them
    new = [identity for identity in wanted if identity not in customer.identities]
    for identity in new:
        repo.link_identity(source.id, identity, customer.id)
    if not new:
        return customer
    identities_now = sorted({*customer.identities, *new})
    anonymous = [i.partition(":")[2] for i in identities_now if i.startswith("anonymous:")]
    return replace(customer, identities=identities_now, anonymous_ids=anonymous)


def _worth_a_customer(message: Message, meaning: Meaning) -> bool:
    """A new person is recorded once something about them is known: a click, two ids to stitch, traits,
    audiences, a group, an alias, a visit or activity. A lone track from an unknown id records none."""
    return bool(
        meaning.click_reference
        or len(message.identities) > 1
        or meaning.traits
        or meaning.audiences
        or meaning.group
        or meaning.alias
        or meaning.visit
        or meaning.activity
        or (meaning.conversion and meaning.conversion.if_no_event != "skip")
    )


def _merge(repo: Repository, keep: Customer, other: Customer, now: datetime) -> None:
    """One person seen as two: the kept customer takes the other's ids, attributes and visits, and signed up
    (or churned) at the earliest of the two (the storage keeps one signup and one churn activity)."""
    user_id = other.user_id if keep.user_id is None and other.user_id is not None else UNSET
    signed_up = [t for t in (keep.signed_up_at, other.signed_up_at) if t is not None]
    churned = [t for t in (keep.churned_at, other.churned_at) if t is not None]
    group: dict[str, Any] = {}
    if keep.group_id is None and other.group_id is not None:
        group = {"group_id": other.group_id, "group_traits": {**other.group_traits, **keep.group_traits}}
    changes = CustomerChanges(
        traits={**other.traits, **keep.traits}, audiences=sorted({*keep.audiences, *other.audiences}),
        previous_ids=list(dict.fromkeys([*keep.previous_ids, *other.previous_ids])),
        visits=keep.visits + other.visits, user_id=user_id,
        signed_up_at=min(signed_up) if signed_up else UNSET, churned_at=min(churned) if churned else UNSET,
        status="churned" if churned else UNSET, **group,
    )  # fmt: skip
    repo.merge_customers(keep.id, other.id)
    repo.update_customer(keep.id, changes, now)


def _linked_click(
    repo: Repository, source: Source, customer: Customer | None, meaning: Meaning, now: datetime
) -> tuple[Click | None, Customer | None]:
    """The click the message names, if it is the source's advertiser's; the first click linked to a customer
    is the one that acquired them."""
    if meaning.click_reference is None:
        return None, customer
    click = _own_click(repo, source, meaning.click_reference)
    if click is None or customer is None or customer.transaction_id is not None or not meaning.links_click:
        return click, customer
    link = CustomerChanges(transaction_id=click.transaction_id, offer_id=click.offer_id, partner_id=click.partner_id)
    repo.update_customer(customer.id, link, now)
    repo.set_activity_attribution(customer.id, click.offer_id, click.partner_id)
    return click, replace(customer, **link.given())


def _update_customer(
    repo: Repository, customer: Customer, message: Message, meaning: Meaning, now: datetime
) -> tuple[Customer, str]:
    """Apply the message's customer data and record its activity (a signup and a churn once per customer, a
    payment or refund once per its id, a custom event once per message); the note says what did not count."""
    changes: dict[str, Any] = {}
    if (message.user_id and customer.user_id != message.user_id and meaning.alias is None
            and message.user_id not in customer.previous_ids):  # fmt: skip
        changes["user_id"] = message.user_id  # a call under an id an alias replaced keeps the new one
    if meaning.traits:
        changes["traits"] = {**customer.traits, **meaning.traits}
    if meaning.audiences:
        members = set(customer.audiences)
        members |= {name for name, member in meaning.audiences.items() if member}
        members -= {name for name, member in meaning.audiences.items() if not member}
        changes["audiences"] = sorted(members)
    if meaning.group is not None:
        changes["group_id"], group_traits = meaning.group
        changes["group_traits"] = {**customer.group_traits, **group_traits}
    if meaning.alias is not None:
        previous, new = meaning.alias
        changes["user_id"] = new
        kept = [i for i in customer.previous_ids if i != new]
        changes["previous_ids"] = kept if previous in kept or previous == new else [*kept, previous]
    if meaning.visit:
        changes["visits"] = customer.visits + 1
    note = ""
    activity = customer_activity(message, meaning.activity, customer.id)
    if activity is not None:
        counted = repo.insert_customer_activity(NewCustomerActivity(
            source_id=customer.source_id, customer_id=customer.id, kind=activity.kind,
            amount=meaning.activity_amount, currency=meaning.activity_currency, offer_id=customer.offer_id,
            partner_id=customer.partner_id, message_id=message.message_id, occurred_at=message.timestamp,
            created_at=now, dedup_key=activity.dedup_key, event=activity.event,
        ))  # fmt: skip
        if not counted:
            note = f"; {activity.kind} already counted for customer #{customer.id} ({activity.dedup_key})"
        elif activity.kind == SIGNUP and customer.signed_up_at is None:
            changes["signed_up_at"] = message.timestamp
        elif activity.kind == CHURN:
            changes.update(status="churned", churned_at=message.timestamp)
    if changes:
        repo.update_customer(customer.id, CustomerChanges(**changes), now)
    return (replace(customer, **changes) if changes else customer), note


def _convert(
    repo: Repository,
    intent: ConversionIntent,
    click: Click | None,
    transaction_id: str | None,
    applied: _Applied,
    now: datetime,
    missing: Sequence[str] = (),
) -> None:
    """Record the conversion or event with the same rules as a postback (origin `segment`) on `click`, the
    source's advertiser's click (None when `transaction_id` names none), if its offer accepts the method.
    Without a click the detail names each field that was looked at and why it gave none (`missing`)."""
    if transaction_id is None:
        if intent.if_no_event == "skip":
            return  # a track that may name an offer event, with no click to find the offer by
        applied.outcome = MessageOutcome.UNATTRIBUTED
        applied.detail += "; no click: " + "; ".join((*missing, "no customer linked to a click"))
        return
    if click is None:
        if intent.if_no_event == "skip":
            return  # no offer to look the event up on
        # Whether the click does not exist or is another advertiser's, the answer is the same.
        applied.outcome = MessageOutcome.REFUSED
        applied.detail = f"unknown_transaction: {NOT_THIS_ADVERTISERS} has transaction_id {transaction_id}"
        return
    records, event_name = _event_to_record(repo, intent, click, applied)
    if not records:
        return
    offer = repo.get_offer(click.offer_id)
    if offer is not None and not offer.accepts(ConversionMethod.SEGMENT):
        applied.outcome = MessageOutcome.REFUSED
        applied.detail = f"method_not_enabled: offer #{offer.id} does not enable the segment conversion method"
        return
    request = ConversionRequest(
        transaction_id=transaction_id, token=None, event_id=intent.event_id, event_name=event_name,
        amount=intent.amount, order_id=intent.order_id, currency=intent.currency, advs=intent.advs,
    )  # fmt: skip
    for _ in range(2):
        try:
            with repo.savepoint():
                outcome = _record(repo, request, Origin.SEGMENT, now)
        except DuplicateKey:
            continue
        except PostbackRefused as error:  # bad input (InvalidParameter) undoes the whole message instead
            applied.outcome, applied.detail = MessageOutcome.REFUSED, f"{error.code}: {error.message}"
            return
        applied.outcome, applied.conversion_id = MessageOutcome.CONVERSION, outcome.conversion.id
        applied.detail += f"; conversion #{outcome.conversion.id} {outcome.result}"
        return
    applied.outcome, applied.detail = MessageOutcome.REFUSED, "busy: recorded concurrently"


def _event_to_record(
    repo: Repository, intent: ConversionIntent, click: Click, applied: _Applied
) -> tuple[bool, str | None]:
    """Whether to record, and the offer event name to record (None: the event by id, or the base conversion).
    Nothing is recorded when the offer has no event by the intent's name and the intent does not fall back to
    the base conversion (an `unpaid` one says so in the detail)."""
    name = intent.event_name
    if name is None or intent.if_no_event == "refuse":
        return True, name
    if any(e.name == name for e in repo.list_offer_events(click.offer_id)):
        return True, name
    if intent.if_no_event == "unpaid":
        applied.detail += (f"; not paid: offer #{click.offer_id} has no event {name!r} "
                           f"(settings.{intent.setting} names the one to record)")  # fmt: skip
    return intent.if_no_event == "base", None


def _refund(repo: Repository, source: Source, meaning: Meaning, transaction_id: str | None, now: datetime) -> str:
    """Reject the conversions of the refunded order (the reason and the message go into their trace)."""
    if meaning.refund_order_id is None:
        return "refund without an order id: nothing to reject"
    filters: dict[str, object] = {"order_id": meaning.refund_order_id, "advertiser_id": source.advertiser_id}
    if transaction_id is not None:
        filters["transaction_id"] = transaction_id
    found = repo.list_conversions(Page(limit=20, filters=filters))
    refunded = [c for c in found if c.origin is Origin.SEGMENT or transaction_id is not None]
    for conversion in refunded:
        if conversion.status is not ConversionStatus.REJECTED:
            _change_status(repo, conversion.id, ConversionStatus.REJECTED, "refunded", f"segment source #{source.id}",
                           now)  # fmt: skip
    return f"order {meaning.refund_order_id} refunded: {len(refunded)} conversion(s) rejected"
