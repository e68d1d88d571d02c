"""Event packs stored from their JSON hold exactly the rows the row-building path would have written.

Both paths run on both engines, each into a database of its own, and every ``events`` column (the typed
property maps included) and every ``profiles`` row must match.
"""

from __future__ import annotations

from typing import Any

import pytest

from tapwire_core.envelope import Envelope, Identities, StoredEnvelope
from tapwire_core.envelope_packs import decode_pack, pack
from tapwire_core.warehouse import Warehouse
from tapwire_core.warehouse.migrations import migrate
from tapwire_ingest.loader.event_json import json_user_keys
from tapwire_ingest.loader.rows import EVENT_COLUMNS, PROFILE_COLUMNS, TableRows
from tapwire_ingest.loader.writer import write_rows
from tests.infra.clickhouse import ENGINES, Engine, WarehouseFactory

pytestmark = pytest.mark.integration

T0 = 1_767_225_600_123
IDENTITIES = [
    Identities(identity="u1"),
    Identities(object_id="obj-1"),
    Identities(fbid="fb-1"),
    Identities(gpid="gp-1"),
    Identities(anonymous_id="anon-1", email="a@x.io"),
    Identities(email="only@x.io"),
    Identities(phone="+15550001"),
    Identities(group_id="acme"),
    Identities(identity="u1", email="u1@x.io", phone="+15550002"),
    Identities(identity='it\'s "quoted" \\ ünï', object_id="o"),
]
PROPERTIES: list[dict[str, Any]] = [
    {},
    {"s": "plain", "n": 1, "f": 1.0, "neg": -0.0, "e": 1e20, "big": 12345678901234567890, "t": True},
    {"nested": {"a": [1, {"b": None}]}, "list": ["x", 2], "null": None},
    {
        "esc": 'quote" back\\ nl\n tab\t ctl\x01 nul\x00',
        "uni": "ünïcødé ✓ 😀",
        "sql": "'; DROP TABLE events; --",
    },
    {"{x:String}": "%(x)s", "": "empty key"},
]
CONTEXTS: list[dict[str, Any] | None] = [None, {"library": {"name": "sdk", "version": "1.0"}}, {}]


def event_pack() -> tuple[bytes, list[StoredEnvelope]]:
    """One pack of events covering every identifier, property shape and context, and its envelopes."""
    made = []
    for n in range(60):
        made.append(
            Envelope(
                account_id="ACC-1" if n % 7 else "ACC-2",
                event_id=f"e{n:03d}",
                kind="token" if n % 11 == 3 else "event",
                ids=IDENTITIES[n % len(IDENTITIES)],
                client_ts=T0 + (n * 7919) % 5000,
                received_ts=T0 + 60_000,
                source="segment" if n % 2 else "clevertap",
                name="" if n % 11 == 3 else f'Event "{n % 4}" it\'s',
                properties=PROPERTIES[n % len(PROPERTIES)],
                context=CONTEXTS[n % len(CONTEXTS)],
            )
        )
    (record,) = pack(made, 1)
    return record.value, decode_pack(record.value)


async def _stored(warehouse: Warehouse) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    columns = ", ".join((*EVENT_COLUMNS, "prop_strings", "prop_numbers"))
    events = await warehouse.query(f"SELECT {columns} FROM events ORDER BY event_id")
    profiles = await warehouse.query(
        f"SELECT {', '.join(PROFILE_COLUMNS)} FROM profiles FINAL ORDER BY account_id, user_key"
    )
    return events, profiles


@pytest.mark.parametrize("engine", ENGINES)
async def test_event_packs_store_what_built_rows_store(
    engine: Engine, warehouse_factory: WarehouseFactory
) -> None:
    built, packed = await warehouse_factory(engine), await warehouse_factory(engine)
    for warehouse in (built, packed):
        await migrate(warehouse, cluster=None)
    value, stored = event_pack()
    keys = json_user_keys(value, stored)
    assert keys == [e.ids.user_key() for e in stored]

    rows = TableRows()
    for envelope in stored:
        rows.add(envelope)
    await write_rows(built, rows, token="built")
    rows = TableRows()
    rows.add_event_pack(value, stored, keys)
    assert len(rows) == len(stored) and not len(rows.events)
    await write_rows(packed, rows, token="packed")

    expected, got = await _stored(built), await _stored(packed)
    users = {(e.account_id, key) for e, key in zip(stored, keys, strict=True)}
    assert len(expected[0]) == len(stored) and len(expected[1]) == len(users)
    assert got == expected
