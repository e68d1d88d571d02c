"""Which packs the warehouse may store from their own JSON, and the JSON it is handed."""

from __future__ import annotations

import msgspec
import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from tapwire_core.envelope import USER_KEY_ORDER, Identities, StoredEnvelope
from tapwire_core.envelope_packs import decode_pack
from tapwire_ingest.loader.event_json import EVENT_ROWS, json_rows, json_user_keys
from tapwire_ingest.loader.rows import EVENT_COLUMNS


def member(**changes: object) -> dict[str, object]:
    envelope: dict[str, object] = {
        "account_id": "ACC",
        "event_id": "e1",
        "kind": "event",
        "ids": {"identity": "u1"},
        "client_ts": 1,
        "received_ts": 2,
        "source": "clevertap",
        "name": "Bought",
        "properties": {"n": 1},
    }
    envelope.update(changes)
    return {key: value for key, value in envelope.items() if value is not None}


def keys_of(*members: dict[str, object], value: bytes | None = None) -> list[str] | None:
    value = value if value is not None else orjson.dumps(list(members))
    return json_user_keys(value, decode_pack(value))


def test_plain_events_and_token_uploads_qualify() -> None:
    assert keys_of(
        member(),
        member(kind="token", name="", ids={"email": "a@x.io"}),
        member(ids={"anonymous_id": "an", "email": "a@x.io"}, context={"ip": "1.2.3.4"}),
        member(context=None, properties={"city": "Zürich ✓"}),
    ) == ["i:u1", "e:a@x.io", "a:an", "i:u1"]
    assert keys_of(
        member(),
        value=b'[{"account_id":"ACC","event_id":"e","kind":"event","ids":{"gpid":"g"},'
        b'"client_ts":1,"received_ts":1,"source":"internal","context":null}]',
    ) == ["g:g"]


@pytest.mark.parametrize(
    "bad",
    [
        member(kind="profile"),
        member(kind="alias"),
        member(account_id=""),
        member(ids={}),
        member(ids={"identity": ""}),
        member(properties=[1, 2]),
        member(properties="text"),
        member(context="text"),
        member(context=[1]),
        member(client_ts=2**63),
        member(received_ts=2**64 - 1),
    ],
)
def test_a_pack_with_any_other_member_does_not(bad: dict[str, object]) -> None:
    assert keys_of(member(), bad, member()) is None


def test_invalid_utf8_or_whitespace_around_the_pack_does_not() -> None:
    good = orjson.dumps([member(properties={"city": "PLACEHOLDER"})])
    assert keys_of(value=good.replace(b"PLACEHOLDER", "Zürich".encode())) == ["i:u1"]
    assert keys_of(value=good.replace(b"PLACEHOLDER", b"Z\xfcrich")) is None
    assert keys_of(value=good + b"\n") is None


def test_packs_are_joined_into_one_array_of_their_envelopes() -> None:
    packs = [orjson.dumps([member(event_id=f"e{p}{n}") for n in range(p + 1)]) for p in range(3)]
    joined = orjson.loads(json_rows(packs))
    assert [envelope["event_id"] for envelope in joined] == ["e00", "e10", "e11", "e20", "e21", "e22"]


def test_the_statement_fills_every_events_column() -> None:
    assert EVENT_ROWS.columns == EVENT_COLUMNS
    assert all(EVENT_ROWS.expressions)


def test_the_rows_structure_names_every_envelope_field() -> None:
    named = {part.split()[0] for part in EVENT_ROWS.structure.replace("(", ", ").split(", ")}
    assert {field.name for field in msgspec.structs.fields(StoredEnvelope)} <= named
    assert {field.name for field in msgspec.structs.fields(Identities)} <= named


_ID = st.one_of(st.none(), st.just(""), st.text(max_size=3))


@given(st.builds(Identities, *[_ID] * len(USER_KEY_ORDER)))
def test_user_key_order_states_what_user_key_does(ids: Identities) -> None:
    # The SQL user key is built from USER_KEY_ORDER; the contract suite checks it against the engine.
    expected = next(
        (prefix + getattr(ids, name) for name, prefix in USER_KEY_ORDER if getattr(ids, name)), ""
    )
    assert ids.user_key() == expected
