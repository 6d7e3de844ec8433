"""The schema: the single source of the tables for both dialects (migrations are checked against it)."""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    UniqueConstraint,
    false,
)

from tracklane.storage.types import Money, UtcDateTime

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

Id = BigInteger().with_variant(Integer, "sqlite")


def _price_columns(prefix: str) -> list[Column[object]]:
    return [
        Column(f"{prefix}_type", String(16), nullable=False),
        Column(f"{prefix}_amount", Money),
        Column(f"{prefix}_percent", String(16)),
    ]


advertisers = Table(
    "advertisers", metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("name", String(200), nullable=False),
    Column("status", String(16), nullable=False),
    Column("postback_token", Text, nullable=False),  # sealed (storage/secret_box.py)
    Column("postback_token_hash", String(64), nullable=False, unique=True),  # its keyed hash, for lookups
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    # billing (domain/billing.py): null when not set
    Column("billing_frequency", String(16)),
    Column("payment_terms_days", Integer),
    Column("tax_id", String(64)),
    Column("status_reason", Text),  # why it is rejected or inactive: a verdict's reason
)  # fmt: skip

partners = Table(
    "partners", metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("name", String(200), nullable=False),
    Column("email", String(320), nullable=False, unique=True),
    Column("status", String(16), nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    # billing (domain/billing.py): null when not set
    Column("billing_frequency", String(16)),
    Column("payment_method", String(32)),
    Column("tax_id", String(64)),
    Column("status_reason", Text),  # why it is rejected or blocked: a verdict's reason
)  # fmt: skip

offers = Table(
    "offers", metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("advertiser_id", Id, ForeignKey("advertisers.id"), nullable=False, index=True),
    Column("name", String(200), nullable=False),
    Column("destination_url", Text, nullable=False),
    Column("fallback_url", Text),
    Column("status", String(16), nullable=False),
    Column("visibility", String(24), nullable=False),
    Column("currency", String(3), nullable=False),
    Column("attribution_window_days", Integer, nullable=False),
    *_price_columns("revenue"),
    *_price_columns("payout"),
    Column("allow_multiple_conversions", Boolean, nullable=False),
    Column("default_status", String(16), nullable=False),
    Column("conversion_methods", JSON, nullable=False),
    Column("share_amount_with_partners", Boolean, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    Column("targeting", JSON),  # null: anyone (see tracklane.domain.targeting)
)  # fmt: skip

offer_caps = Table(
    "offer_caps", metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("offer_id", Id, ForeignKey("offers.id"), nullable=False, index=True),
    Column("metric", String(16), nullable=False),
    Column("period", String(8), nullable=False),
    Column("cap_limit", BigInteger, nullable=False),
    Column("per_partner", Boolean, nullable=False),
)  # fmt: skip

cap_counters = Table(
    "cap_counters", metadata,
    Column("cap_id", Id, primary_key=True),
    Column("scope", Id, primary_key=True),
    Column("period_start", String(10), primary_key=True),
    Column("used", BigInteger, nullable=False),
)  # fmt: skip

offer_events = Table(
    "offer_events", metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("offer_id", Id, ForeignKey("offers.id"), nullable=False),
    Column("name", String(200), nullable=False),
    *_price_columns("revenue"),
    *_price_columns("payout"),
    Column("allow_multiple_per_click", Boolean, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    UniqueConstraint("offer_id", "name", name="uq_offer_events_offer_id_name"),
)  # fmt: skip

offer_access = Table(
    "offer_access", metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("offer_id", Id, ForeignKey("offers.id"), nullable=False),
    Column("partner_id", Id, ForeignKey("partners.id"), nullable=False, index=True),
    Column("status", String(16), nullable=False),
    Column("reason", Text),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    UniqueConstraint("offer_id", "partner_id", name="uq_offer_access_offer_id_partner_id"),
)  # fmt: skip

partner_payouts = Table(
    "partner_payouts", metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("offer_id", Id, ForeignKey("offers.id"), nullable=False, index=True),
    Column("partner_id", Id, ForeignKey("partners.id"), nullable=False),
    Column("event_id", Id, ForeignKey("offer_events.id")),
    *_price_columns("payout"),
    Column("created_at", UtcDateTime, nullable=False),
)  # fmt: skip

api_keys = Table(
    "api_keys", metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("role", String(16), nullable=False),
    Column("advertiser_id", Id, ForeignKey("advertisers.id")),
    Column("partner_id", Id, ForeignKey("partners.id")),
    Column("key_hash", String(64), nullable=False, unique=True),
    Column("prefix", String(16), nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("revoked_at", UtcDateTime),
)  # fmt: skip

# People who sign in (storage/users.py). The password hash has its own table, so that no read of a user
# carries it; session and one-time link tokens are stored as their SHA-256 only.
users = Table(
    "users", metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("email", String(320), nullable=False, unique=True),
    Column("name", String(200), nullable=False),
    Column("role", String(16), nullable=False),
    Column("advertiser_id", Id, ForeignKey("advertisers.id"), index=True),
    Column("partner_id", Id, ForeignKey("partners.id"), index=True),
    Column("status", String(16), nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    Column("last_sign_in_at", UtcDateTime),
)  # fmt: skip

user_passwords = Table(
    "user_passwords", metadata,
    Column("user_id", Id, ForeignKey("users.id"), primary_key=True),
    Column("password_hash", Text, nullable=False),  # argon2id, in its encoded form
    Column("updated_at", UtcDateTime, nullable=False),
)  # fmt: skip

user_sessions = Table(
    "user_sessions", metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("user_id", Id, ForeignKey("users.id"), nullable=False, index=True),
    Column("csrf_token", String(64), nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("expires_at", UtcDateTime, nullable=False),
    Column("last_seen_at", UtcDateTime, nullable=False),
)  # fmt: skip

user_links = Table(
    "user_links", metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("token_hash", String(64), nullable=False, unique=True),
    Column("user_id", Id, ForeignKey("users.id"), nullable=False, index=True),
    Column("kind", String(16), nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("expires_at", UtcDateTime, nullable=False),
    Column("used_at", UtcDateTime),
)  # fmt: skip

# Clicks carry no foreign keys on purpose: a click for an unknown offer or partner is still recorded.
clicks = Table(
    "clicks", metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("transaction_id", String(32), nullable=False, unique=True),
    Column("offer_id", Id, nullable=False),
    Column("partner_id", Id, nullable=False),
    Column("advertiser_id", Id),
    Column("sub1", String(255)), Column("sub2", String(255)), Column("sub3", String(255)),
    Column("sub4", String(255)), Column("sub5", String(255)),
    Column("source_id", String(255)),
    Column("ip", String(64)),
    Column("user_agent", Text),
    Column("device_type", String(16), nullable=False),
    Column("os", String(64)),
    Column("browser", String(64)),
    Column("is_bot", Boolean, nullable=False),
    Column("country", String(2)),
    Column("referrer", Text),
    Column("verdict", String(16), nullable=False),
    Column("reject_reason", String(64)),
    Column("revenue", Money, nullable=False),
    Column("payout", Money, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    # the first click from its IP address for its offer and partner in 24 hours (`UNIQUE_CLICK_WINDOW`)
    Column("is_unique", Boolean, nullable=False, server_default=false()),
    Index("ix_clicks_offer_partner_created", "offer_id", "partner_id", "created_at"),
    Index("ix_clicks_created_at", "created_at"),
    Index("ix_clicks_visitor", "offer_id", "partner_id", "ip", "created_at"),
)  # fmt: skip

conversions = Table(
    "conversions", metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("transaction_id", String(32), nullable=False, index=True),
    Column("click_id", Id, ForeignKey("clicks.id"), nullable=False, index=True),
    Column("offer_id", Id, nullable=False),
    Column("partner_id", Id, nullable=False),
    Column("advertiser_id", Id, nullable=False),
    Column("event_id", Id),
    Column("event_name", String(200)),
    Column("status", String(16), nullable=False),
    Column("status_reason", Text),
    Column("revenue", Money, nullable=False),
    Column("payout", Money, nullable=False),
    Column("revenue_type", String(16), nullable=False),
    Column("payout_type", String(16), nullable=False),
    Column("amount", Money),
    Column("currency", String(3), nullable=False),
    Column("order_id", String(255)),
    Column("adv1", String(255)), Column("adv2", String(255)), Column("adv3", String(255)),
    Column("adv4", String(255)), Column("adv5", String(255)),
    Column("origin", String(16), nullable=False),
    Column("dedup_key", String(400), unique=True),
    Column("trace", JSON, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    Index("ix_conversions_offer_partner_created", "offer_id", "partner_id", "created_at"),
    Index("ix_conversions_created_at", "created_at"),
)  # fmt: skip

# Report rollups (storage/rollups.py): clicks and conversions summed per cell. A cell is a shape (the one click
# dimension it is split by, "" for none), a grain (minutes: a UTC day or hour), the bucket it starts at and its
# keys; 0 stands for no advertiser and "" for no value. Money is in stored units.
_CELL = ("shape", "grain", "bucket", "offer_id", "partner_id", "advertiser_id", "value")


def _cell_columns() -> list[Column[object]]:
    return [
        Column("shape", String(16), nullable=False),
        Column("grain", Integer, nullable=False),
        Column("bucket", UtcDateTime, nullable=False),
        Column("offer_id", Id, nullable=False),
        Column("partner_id", Id, nullable=False),
        Column("advertiser_id", Id, nullable=False),
        Column("value", String(255), nullable=False),
    ]


def _sums(*names: str) -> list[Column[object]]:
    return [Column(name, BigInteger, nullable=False) for name in names]


click_rollups = Table(
    "click_rollups", metadata,
    *_cell_columns(),
    *_sums("gross_clicks", "unique_clicks", "clicks", "bot_clicks", "rejected_clicks", "revenue", "payout"),
    PrimaryKeyConstraint(*_CELL, name="pk_click_rollups"),
    sqlite_with_rowid=False,
)  # fmt: skip

conversion_rollups = Table(
    "conversion_rollups", metadata,
    *_cell_columns(),
    Column("currency", String(3), nullable=False),
    Column("is_event", Boolean, nullable=False),
    Column("event_name", String(200), nullable=False),
    Column("status", String(16), nullable=False),
    Column("origin", String(16), nullable=False),
    # conversions: rows (base conversions or events, as is_event says); with_amount: those with a sale amount
    *_sums("conversions", "with_amount", "revenue", "payout", "amount"),
    PrimaryKeyConstraint(*_CELL, "currency", "is_event", "event_name", "status", "origin",
                         name="pk_conversion_rollups"),
    sqlite_with_rowid=False,
)  # fmt: skip

# The version of each UTC hour's report data (storage/rollups.py): raised by every write that changes what a
# report counts in that hour, never lowered, so that a report's rows made earlier can be told still true. The
# row of `EVERY_HOUR` (1970-01-01) is every hour's, raised by a change to them all. Rows written by earlier
# releases were UTC days: such a row now stands for its day's first hour, and is still only ever raised.
report_versions = Table(
    "report_versions", metadata,
    Column("bucket", UtcDateTime, primary_key=True),
    Column("version", BigInteger, nullable=False),
    sqlite_with_rowid=False,
)  # fmt: skip

# Segment-compatible intake: sources, the messages they received (dedup on source + messageId), customers.
sources = Table(
    "sources", metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("name", String(200), nullable=False),
    Column("advertiser_id", Id, ForeignKey("advertisers.id"), index=True),
    Column("preset", String(32), nullable=False),
    Column("write_key", String(64), nullable=False, unique=True),
    Column("webhook_secret", Text, nullable=False),  # sealed
    Column("settings", JSON, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
)  # fmt: skip

segment_messages = Table(
    "segment_messages", metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("source_id", Id, ForeignKey("sources.id"), nullable=False),
    Column("message_id", String(100), nullable=False),
    Column("type", String(16), nullable=False),
    Column("event", String(255)),
    Column("user_id", String(255)),
    Column("anonymous_id", String(255)),
    Column("timestamp", UtcDateTime, nullable=False),
    Column("original_timestamp", UtcDateTime, nullable=False),
    Column("sent_at", UtcDateTime),
    Column("received_at", UtcDateTime, nullable=False),
    Column("relayed", Boolean, nullable=False),
    Column("outcome", String(16), nullable=False),
    Column("detail", Text),
    Column("conversion_id", Id),
    Column("customer_id", Id),
    Column("mapped", JSON, nullable=False),
    Column("payload", JSON, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    UniqueConstraint("source_id", "message_id", name="uq_segment_messages_source_id_message_id"),
)  # fmt: skip

customers = Table(
    "customers", metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("source_id", Id, ForeignKey("sources.id"), nullable=False, index=True),
    Column("user_id", String(255)),
    Column("previous_ids", JSON, nullable=False),
    Column("traits", JSON, nullable=False),
    Column("group_id", String(255)),
    Column("group_traits", JSON, nullable=False),
    Column("audiences", JSON, nullable=False),
    Column("status", String(16), nullable=False),
    Column("transaction_id", String(64)),
    Column("offer_id", Id),
    Column("partner_id", Id, index=True),
    Column("visits", Integer, nullable=False),
    Column("signed_up_at", UtcDateTime),
    Column("churned_at", UtcDateTime),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
)  # fmt: skip

# Outbound delivery: webhook endpoints, partner postbacks, the outbox of deliveries and their attempts.
webhook_endpoints = Table(
    "webhook_endpoints", metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("url", Text, nullable=False),
    Column("description", String(500)),
    Column("event_types", JSON),
    Column("status", String(16), nullable=False),
    Column("disabled_reason", Text),
    Column("disabled_at", UtcDateTime),
    Column("failing_since", UtcDateTime),
    Column("secret", Text, nullable=False),  # sealed, like previous_secret
    Column("previous_secret", Text),
    Column("previous_secret_expires_at", UtcDateTime),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
)  # fmt: skip

customer_identities = Table(
    "customer_identities", metadata,
    Column("source_id", Id, primary_key=True),
    Column("identity", String(300), primary_key=True),
    Column("customer_id", Id, ForeignKey("customers.id"), nullable=False, index=True),
)  # fmt: skip

customer_activities = Table(
    "customer_activities", metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("source_id", Id, nullable=False),
    Column("customer_id", Id, ForeignKey("customers.id"), nullable=False, index=True),
    Column("kind", String(16), nullable=False),
    Column("amount", Money),
    Column("currency", String(3)),
    Column("offer_id", Id),
    Column("partner_id", Id),
    Column("message_id", String(100), nullable=False),
    Column("event", String(255)),  # a custom event's name (kind `event`)
    Column("dedup_key", String(300), nullable=False),  # counted once per source and kind (domain/segment/activity)
    Column("occurred_at", UtcDateTime, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Index("ix_customer_activities_partner_occurred", "partner_id", "occurred_at"),
    UniqueConstraint("source_id", "kind", "dedup_key", name="uq_customer_activities_source_id_kind_dedup_key"),
)  # fmt: skip

partner_postbacks = Table(
    "partner_postbacks", metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("partner_id", Id, ForeignKey("partners.id"), nullable=False, index=True),
    Column("offer_id", Id, ForeignKey("offers.id")),
    Column("url", Text, nullable=False),
    Column("on", String(16), nullable=False),
    Column("fire_status", String(16), nullable=False, server_default="approved"),
    Column("method", String(8), nullable=False),
    Column("delay_seconds", Integer, nullable=False),
    Column("success_body_contains", String(200)),
    Column("status", String(16), nullable=False),
    Column("deactivated_reason", Text),
    Column("failure_count", Integer, nullable=False),
    Column("failure_started_at", UtcDateTime),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
)  # fmt: skip

deliveries = Table(
    "deliveries", metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("message_id", String(64), nullable=False, unique=True),
    Column("kind", String(16), nullable=False),
    Column("endpoint_id", Id, ForeignKey("webhook_endpoints.id"), index=True),
    Column("postback_id", Id, ForeignKey("partner_postbacks.id"), index=True),
    Column("event_type", String(64), nullable=False),
    Column("method", String(8), nullable=False),
    Column("url", Text),
    Column("body", Text),
    Column("dedup_key", String(200), unique=True),
    Column("status", String(16), nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("next_attempt_at", UtcDateTime, nullable=False),
    Column("lease_owner", String(100)),
    Column("lease_expires_at", UtcDateTime),
    Column("last_status_code", Integer),
    Column("last_error", Text),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    Index("ix_deliveries_status_next_attempt_at", "status", "next_attempt_at"),
    Index("ix_deliveries_created_at", "created_at"),
)  # fmt: skip

delivery_attempts = Table(
    "delivery_attempts", metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("delivery_id", Id, ForeignKey("deliveries.id"), nullable=False, index=True),
    Column("worker", String(100), nullable=False),
    Column("status_code", Integer),
    Column("error_class", String(32)),
    Column("error", Text),
    Column("latency_ms", Integer, nullable=False),
    Column("response_excerpt", Text),
    Column("verdict", String(16), nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
)  # fmt: skip

traffic_rules = Table(
    "traffic_rules", metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("kind", String(16), nullable=False),
    Column("name", String(200)),
    Column("offer_id", Id, ForeignKey("offers.id"), index=True),
    Column("partner_id", Id, ForeignKey("partners.id")),
    Column("variable", String(16), nullable=False),
    Column("match", String(16), nullable=False),
    Column("values", JSON, nullable=False),
    Column("min_clicks", Integer),
    Column("cvr_below_percent", String(16)),
    Column("window_days", Integer),
    Column("status", String(16), nullable=False),
    Column("last_evaluated_at", UtcDateTime),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
)  # fmt: skip

# A value an optimization rule blocked for one offer and partner; one row per rule, offer, partner and value,
# so that a lifted block is remembered (the rule does not block that value again).
traffic_blocks = Table(
    "traffic_blocks", metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("rule_id", Id, ForeignKey("traffic_rules.id"), nullable=False),
    Column("offer_id", Id, nullable=False),
    Column("partner_id", Id, nullable=False),
    Column("variable", String(16), nullable=False),
    Column("value", String(255), nullable=False),
    Column("clicks", Integer, nullable=False),
    Column("conversions", Integer, nullable=False),
    Column("cvr_percent", String(16), nullable=False),
    Column("status", String(16), nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("lifted_at", UtcDateTime),
    Column("lifted_by", String(200)),
    Column("lift_reason", Text),
    UniqueConstraint("rule_id", "offer_id", "partner_id", "value"),
    Index("ix_traffic_blocks_offer_partner", "offer_id", "partner_id"),
)  # fmt: skip

# The fingerprint of the key the secrets above are sealed with (one row): a process with another key refuses
# to start.
secrets_key = Table(
    "secrets_key", metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("fingerprint", String(64), nullable=False),
)  # fmt: skip
