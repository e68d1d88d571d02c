"""Message mapping details that the HTTP tests do not pin down: timestamps, trait flattening, id coercion."""

from __future__ import annotations

from typing import Any

import pytest

from tapwire_ingest.segment.messages import BatchContext, MessageRejected, map_message, profile_properties
from tapwire_ingest.segment.timestamps import corrected_ms, iso, parse_ms

RECEIVED = 1_795_910_400_000  # 2026-11-29T00:00:00Z


def batch(**extra: Any) -> BatchContext:
    return BatchContext(
        account_id="A",
        key_scope=b"scope",
        received_ms=RECEIVED,
        request_digest=b"d" * 16,
        max_event_bytes=32_768,
        **extra,
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-11-29T00:00:00Z", RECEIVED),
        ("2026-11-29T01:00:00+01:00", RECEIVED),
        ("2026-11-29T00:00:00.5Z", RECEIVED + 500),
        ("2026-11-29T00:00:00.123456789Z", RECEIVED + 123),
        ("2026-11-29T00:00:00", RECEIVED),  # no offset: read as UTC
        ("yesterday", None),
        ("", None),
        (1_795_910_400, None),
        (None, None),
    ],
)
def test_parse_ms(text: Any, expected: int | None) -> None:
    assert parse_ms(text) == expected


def test_corrected_ms_and_iso() -> None:
    assert corrected_ms(original_ms=1_000, sent_ms=3_000, received_ms=10_000) == 8_000
    assert corrected_ms(original_ms=1_000, sent_ms=None, received_ms=10_000) == 1_000
    assert corrected_ms(original_ms=None, sent_ms=3_000, received_ms=10_000) == 10_000
    assert iso(RECEIVED + 5) == "2026-11-29T00:00:00.005Z"


def test_unparseable_timestamp_falls_back_to_arrival_and_out_of_range_is_rejected() -> None:
    (envelope,), _ = map_message(
        {"type": "track", "userId": "u", "event": "E", "timestamp": "soon"}, batch(), position=0
    )
    assert envelope.client_ts == RECEIVED
    with pytest.raises(MessageRejected) as rejected:
        map_message(
            {"type": "track", "userId": "u", "event": "E", "timestamp": "1800-01-01T00:00:00Z"},
            batch(),
            position=0,
        )
    assert rejected.value.code == "invalid_timestamp"


def test_traits_are_flattened_and_never_read_as_operators() -> None:
    traits = {
        "name": "Ann",
        "address": {"city": "Oslo", "geo": {"lat": 59.9, "deep": {"x": 1}}},
        "score": {"$incr": 5},
        "nan": float("nan"),
        "tags": ["a", "b"],
    }
    assert profile_properties(traits) == {
        "Name": "Ann",
        "address.city": "Oslo",
        "address.geo.lat": 59.9,
        "address.geo.deep": '{"x":1}',
        "score.$incr": 5,
        "tags": ["a", "b"],
    }


@pytest.mark.parametrize(("value", "stored"), [(42, "42"), (42.0, "42"), ("  ", None), ("x", "x")])
def test_ids_are_coerced(value: Any, stored: str | None) -> None:
    message = {"type": "track", "event": "E", "anonymousId": "an", "userId": value}
    (envelope,), link = map_message(message, batch(), position=0)
    assert envelope.ids.identity == stored
    assert (link is not None) == (stored is not None)


@pytest.mark.parametrize("value", [True, 4.5, {"id": 1}, "x" * 256, "tab\there"])
def test_bad_ids_are_rejected(value: Any) -> None:
    with pytest.raises(MessageRejected) as rejected:
        map_message({"type": "track", "event": "E", "userId": value}, batch(), position=0)
    assert rejected.value.code == "invalid_id"


def test_message_without_message_id_gets_a_stable_id_per_request_and_position() -> None:
    message = {"type": "track", "event": "E", "userId": "u"}
    first, _ = map_message(message, batch(), position=3)
    again, _ = map_message(message, batch(), position=3)
    elsewhere, _ = map_message(message, batch(), position=4)
    assert first[0].event_id == again[0].event_id != elsewhere[0].event_id
