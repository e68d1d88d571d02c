from __future__ import annotations

from typing import Any

import msgspec
import pytest

from tapwire_core.envelope import Envelope, Identities, StoredEnvelope, decode_stored, encode
from tapwire_ingest.loader.rows import (
    EVENT_COLUMNS,
    PROFILE_OP_COLUMNS,
    PROFILE_PROP_COLUMNS,
    TableRows,
    UnstorableEnvelope,
)


def stored(**fields: Any) -> StoredEnvelope:
    base: dict[str, Any] = {
        "account_id": "A",
        "event_id": "e1",
        "kind": "event",
        "ids": Identities(identity="u1"),
        "client_ts": 1_000,
        "received_ts": 2_000,
        "source": "clevertap",
        "name": "Viewed",
        "properties": {"price": 9.5, "tags": ["a"]},
    }
    return decode_stored(encode(Envelope(**(base | fields))))


def test_event_row_keeps_properties_as_json_text_and_ms_ticks() -> None:
    rows = TableRows()
    rows.add(stored())
    (row,) = rows.events
    values = dict(zip(EVENT_COLUMNS, row, strict=True))
    assert values["properties"] == b'{"price":9.5,"tags":["a"]}'
    assert (values["ts"], values["received_at"]) == (1_000, 2_000)
    assert values["user_key"] == "i:u1" and values["name"] == "Viewed" and values["context"] == b""


def test_profile_sets_deletes_and_operators_go_to_their_tables() -> None:
    rows = TableRows()
    props = {"Plan": "pro", "Old": {"$delete": 1}, "Score": {"$incr": 2}, "Tags": {"$add": ["x"]}}
    rows.add(stored(kind="profile", name="", properties=props, event_id="p1"))
    sets = {r[2]: dict(zip(PROFILE_PROP_COLUMNS, r, strict=True)) for r in rows.profile_props}
    assert sets["Plan"]["value"] == '"pro"' and sets["Plan"]["deleted"] == 0
    assert sets["Old"]["deleted"] == 1
    ops = {r[2]: dict(zip(PROFILE_OP_COLUMNS, r, strict=True)) for r in rows.profile_ops}
    assert (ops["Score"]["op"], ops["Score"]["operand"], ops["Score"]["event_id"]) == ("$incr", "2", "p1")
    assert ops["Tags"]["operand"] == '["x"]'
    assert list(rows.events) == []


def test_profiles_row_spans_first_and_last_seen_per_user() -> None:
    rows = TableRows()
    rows.add(stored(client_ts=5_000))
    rows.add(stored(client_ts=3_000, event_id="e2", ids=Identities(identity="u1", email="u@example.com")))
    ((account, user, identity, _obj, email, _phone, _anon, first, last),) = rows.profiles()
    assert (account, user, identity, email, first, last) == ("A", "i:u1", "u1", "u@example.com", 3_000, 5_000)


def snapshot(rows: TableRows) -> list[list[tuple[object, ...]]]:
    tables = (rows.events, rows.profile_props, rows.profile_ops, rows.user_aliases, rows.profiles())
    for table in tables:
        assert len({len(column) for column in table.data}) == 1, table.names
    return [list(table) for table in tables]


def test_refused_envelope_leaves_every_column_as_it_was() -> None:
    rows = TableRows()
    rows.add(stored())
    rows.add(
        stored(kind="profile", name="", properties={"Plan": "pro", "Score": {"$incr": 1}}, event_id="p1")
    )
    alias = {"alias_key": "a:x", "canonical_key": "i:u1", "version": 1, "active": 1}
    rows.add(stored(kind="alias", name="", properties=alias, event_id="a1"))
    before = snapshot(rows)
    valid = stored()
    refused = [
        msgspec.structs.replace(valid, ids=Identities()),
        msgspec.structs.replace(valid, account_id=""),
        msgspec.structs.replace(valid, properties=msgspec.Raw(b"[1]")),
        # The JSON decoder does not check raw values; stored as given, they would be invalid UTF-8 in ClickHouse.
        msgspec.structs.replace(valid, properties=msgspec.Raw(b'{"k": "\xff"}')),
        msgspec.structs.replace(valid, context=msgspec.Raw(b'{"k": "\xc3"}')),
        # Valid members first, then a truncated one: nothing of the envelope may be kept.
        msgspec.structs.replace(
            valid, kind="profile", properties=msgspec.Raw(b'{"Plan": "free", "Score": {"$incr": 2}, "X": ')
        ),
        msgspec.structs.replace(valid, kind="alias", properties=msgspec.Raw(b'{"alias_key": "a:y"}')),
        msgspec.structs.replace(
            valid, kind="alias", account_id="", properties=msgspec.Raw(alias_json(alias))
        ),
    ]
    for envelope in refused:
        with pytest.raises(UnstorableEnvelope):
            rows.add(envelope)
        assert snapshot(rows) == before
    assert len(rows) == 4


def alias_json(alias: dict[str, object]) -> bytes:
    return msgspec.json.encode(alias)
