"""Reading Segment messages: envelopes, required fields per type, ids, size, timestamps and skew."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from tracklane.domain.errors import InvalidParameter
from tracklane.domain.segment.messages import parse_timestamp, read_envelope, read_message

NOW = datetime(2026, 11, 23, 12, 0, 0, tzinfo=UTC)


def read(raw: dict[str, Any], batch: dict[str, Any] | None = None, trusted: bool = False) -> Any:
    return read_message(raw, batch or {}, NOW, trusted=trusted)


@pytest.mark.parametrize(("text", "expected"), [
    ("2026-11-23T06:51:09.785+00:00", datetime(2026, 11, 23, 6, 51, 9, 785000, tzinfo=UTC)),
    ("2026-11-23T06:51:09Z", datetime(2026, 11, 23, 6, 51, 9, tzinfo=UTC)),
    ("2026-11-23T08:51:09.123456789+02:00", datetime(2026, 11, 23, 6, 51, 9, 123456, tzinfo=UTC)),
    ("2015-2-02T00:30:08.276Z", datetime(2015, 2, 2, 0, 30, 8, 276000, tzinfo=UTC)),
    ("2026-11-23 06:51:09", datetime(2026, 11, 23, 6, 51, 9, tzinfo=UTC)),
    ("2026-11-23T01:51:09-0500", datetime(2026, 11, 23, 6, 51, 9, tzinfo=UTC)),
])  # fmt: skip
def test_timestamps(text: str, expected: datetime) -> None:
    assert parse_timestamp(text, "timestamp") == expected


@pytest.mark.parametrize("text", ["yesterday", "2026-13-01T00:00:00Z", "1700000000", "2026-11-23"])
def test_bad_timestamps_name_the_field(text: str) -> None:
    with pytest.raises(InvalidParameter) as error:
        parse_timestamp(text, "sentAt")
    assert error.value.field == "sentAt"


def test_skew_correction_uses_the_batch_sent_at() -> None:
    raw = {"type": "track", "event": "E", "userId": "u", "timestamp": "2020-01-01T00:00:00Z"}
    message = read(raw, {"sentAt": "2020-01-01T00:00:30Z"})
    assert message.timestamp == NOW - timedelta(seconds=30)
    assert message.original_timestamp == datetime(2020, 1, 1, tzinfo=UTC) and message.received_at == NOW
    stamped = {"type": "track", "event": "E", "userId": "u", "originalTimestamp": "2020-01-01T00:00:00Z"}
    own = read({**stamped, "sentAt": "2020-01-01T00:00:05Z"}, {"sentAt": "2020-01-01T00:00:30Z"})
    assert own.timestamp == NOW - timedelta(seconds=5)
    explicit = read({**stamped, "timestamp": "2019-12-31T00:00:00Z", "sentAt": "2020-01-01T00:00:05Z"})
    assert explicit.timestamp == datetime(2019, 12, 31, tzinfo=UTC)  # the app's own, beside the library's stamp
    unsent = read(raw)
    assert unsent.timestamp == datetime(2020, 1, 1, tzinfo=UTC)


def test_relayed_messages_keep_their_times() -> None:
    raw = {
        "type": "track",
        "event": "E",
        "userId": "u",
        "timestamp": "2020-01-01T00:00:00Z",
        "sentAt": "2020-01-01T00:00:30Z",
        "receivedAt": "2020-01-01T00:00:31Z",
    }
    message = read(raw, trusted=True)
    assert message.timestamp == datetime(2020, 1, 1, tzinfo=UTC)
    assert message.received_at == datetime(2020, 1, 1, 0, 0, 31, tzinfo=UTC)


@pytest.mark.parametrize(("raw", "field"), [
    ({"type": "track", "userId": "u"}, "event"),
    ({"type": "track", "event": "E"}, "userId"),
    ({"type": "track", "event": "E", "userId": None, "anonymousId": None}, "userId"),
    ({"type": "group", "userId": "u"}, "groupId"),
    ({"type": "alias", "userId": "u"}, "previousId"),
    ({"type": "launch", "userId": "u"}, "type"),
    ({"type": "track", "event": "E", "userId": {"id": 1}}, "userId"),
    ({"type": "track", "event": "E", "userId": "u", "properties": []}, "properties"),
    ({"type": "track", "event": "E", "userId": "u", "properties": {"x": "a" * 40_000}}, "message"),
])  # fmt: skip
def test_invalid_messages_name_the_field(raw: dict[str, Any], field: str) -> None:
    with pytest.raises(InvalidParameter) as error:
        read(raw)
    assert error.value.field == field


def test_ids_context_and_message_ids() -> None:
    message = read(
        {
            "type": "identify",
            "userId": 42,
            "anonymousId": None,
            "messageId": "x" * 150,
            "context": {"ip": "1.2.3.4"},
            "traits": {"b": 2},
        },
        {"context": {"library": {"name": "lib"}, "ip": "9.9.9.9", "traits": {"a": 1}}},
    )
    assert message.user_id == "42" and message.identities == ("user:42",)
    assert message.context == {"library": {"name": "lib"}, "ip": "1.2.3.4", "traits": {"a": 1}}
    assert message.traits == {"a": 1, "b": 2}
    assert message.message_id.startswith("tl-") and len(message.message_id) <= 100
    group_only = read({"type": "group", "groupId": "g"})
    assert group_only.identities == ()
    same = {"type": "track", "event": "E", "anonymousId": "a", "properties": {"v": Decimal("1.5")}}
    assert read(same).message_id == read(dict(same)).message_id


def test_envelopes() -> None:
    single = read_envelope({"event": "E", "userId": "u", "writeKey": "k1"}, "track")
    assert single.items == [{"event": "E", "userId": "u", "writeKey": "k1", "type": "track"}]
    assert single.write_key == "k1"
    batch = read_envelope({"batch": [{"writeKey": "k2"}], "sentAt": "x"}, None)
    assert (batch.write_key, batch.batch["sentAt"]) == ("k2", "x")
    assert read_envelope([{"a": 1}], None).items == [{"a": 1}]
    with pytest.raises(InvalidParameter):
        read_envelope({"events": []}, None)
    with pytest.raises(InvalidParameter):
        read_envelope("text", "track")
    assert len(read_envelope({"batch": [{}] * 3000}, None).items) == 3000  # all read: the body limit bounds a batch


def test_client_side_messages_get_the_connection_ip() -> None:
    browser = {"type": "page", "anonymousId": "a", "context": {"library": {"name": "analytics.js"}}}
    assert read_message(browser, {}, NOW, trusted=False, client_ip="203.0.113.9").context["ip"] == "203.0.113.9"
    direct = {"type": "track", "event": "E", "userId": "u", "context": {"direct": True}}
    assert read_message(direct, {}, NOW, trusted=False, client_ip="203.0.113.9").context["ip"] == "203.0.113.9"
    server = {"type": "track", "event": "E", "userId": "u", "context": {"library": {"name": "analytics-python"}}}
    assert "ip" not in read_message(server, {}, NOW, trusted=False, client_ip="203.0.113.9").context
    given = {**browser, "context": {"library": {"name": "analytics.js"}, "ip": "198.51.100.1"}}
    assert read_message(given, {}, NOW, trusted=False, client_ip="203.0.113.9").context["ip"] == "198.51.100.1"
    assert "ip" not in read_message(browser, {}, NOW, trusted=True, client_ip="203.0.113.9").context
