"""Segment envelopes through the loader's row builder: context kept as JSON, groups and aliases in place."""

from __future__ import annotations

import orjson

from tapwire_core.envelope import Envelope, Identities, decode_stored, encode
from tapwire_core.identity import AliasRow, alias_envelopes
from tapwire_ingest.loader.rows import EVENT_COLUMNS, TableRows


def test_context_and_aliases_become_rows() -> None:
    rows = TableRows()
    with_context = Envelope(
        account_id="A",
        event_id="e1",
        kind="event",
        ids=Identities(identity="u", anonymous_id="an"),
        client_ts=1,
        received_ts=2,
        source="segment",
        name="Order Completed",
        properties={"items": [{"sku": "B-12"}]},
        context={"context": {"library": {"name": "analytics-python"}}, "messageId": "m-1"},
    )
    without_context = Envelope(
        account_id="A",
        event_id="e2",
        kind="event",
        ids=Identities(identity="u"),
        client_ts=1,
        received_ts=2,
        source="clevertap",
        name="Viewed",
    )
    group = Envelope(
        account_id="A",
        event_id="g1",
        kind="profile",
        ids=Identities(group_id="42"),
        client_ts=1,
        received_ts=2,
        source="segment",
        properties={"plan": "enterprise"},
    )
    for envelope in [
        with_context,
        without_context,
        group,
        *alias_envelopes("A", [AliasRow("a:an", "i:u", 7, True)], received_ms=5),
    ]:
        rows.add(decode_stored(encode(envelope)))
    first, second = (dict(zip(EVENT_COLUMNS, row, strict=True)) for row in rows.events)
    assert orjson.loads(first["context"])["messageId"] == "m-1"
    assert orjson.loads(first["properties"]) == {"items": [{"sku": "B-12"}]}
    assert first["user_key"] == "i:u" and first["anonymous_id"] == "an"
    assert second["context"] == b""
    assert list(rows.profile_props) == [("A", "grp:42", "plan", '"enterprise"', 1, 0)]
    assert list(rows.user_aliases) == [("A", "a:an", "i:u", 5, 7, 1)]
