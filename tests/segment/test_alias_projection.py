"""The graph's projection through the loader's rows into ``user_aliases``, read back on both warehouse engines."""

from __future__ import annotations

import pytest

from tapwire_core.envelope import Envelope, Identities, decode_stored, encode
from tapwire_core.identity import AliasRow, alias_envelopes
from tapwire_core.identity.warehouse_view import canonical_user_key
from tapwire_core.warehouse.migrations import migrate
from tapwire_ingest.loader.rows import TableRows
from tapwire_ingest.loader.writer import write_rows
from tapwire_query.profile_batch import member_keys
from tapwire_query.profile_lookup import profile_record
from tests.infra.clickhouse import ENGINES, Engine, WarehouseFactory

pytestmark = pytest.mark.integration
ACCOUNT = "ACC-ALIAS"
T0 = 1_767_571_200_000


def event(user: Identities, event_id: str, ts: int) -> Envelope:
    return Envelope(
        account_id=ACCOUNT,
        event_id=event_id,
        kind="event",
        ids=user,
        client_ts=ts,
        received_ts=ts,
        source="segment",
        name="Viewed",
        properties={"n": 1},
    )


def rows_of(envelopes: list[Envelope]) -> TableRows:
    rows = TableRows()
    for envelope in envelopes:
        rows.add(decode_stored(encode(envelope)))
    return rows


@pytest.mark.parametrize("engine", ENGINES)
async def test_merged_keys_count_for_the_canonical_profile(
    engine: Engine, warehouse_factory: WarehouseFactory
) -> None:
    warehouse = await warehouse_factory(engine)
    await migrate(warehouse, cluster=None)
    anon, user, other = (
        Identities(anonymous_id="anon-1"),
        Identities(identity="user-1"),
        Identities(identity="x"),
    )
    merge = alias_envelopes(ACCOUNT, [AliasRow("a:anon-1", "i:user-1", 10, True)], received_ms=T0)
    batch = [
        event(anon, "e1", T0),
        event(anon, "e2", T0 + 1),
        event(user, "e3", T0 + 2),
        event(other, "e4", T0),
        *merge,
    ]
    await write_rows(warehouse, rows_of(batch), token="t1")

    assert await canonical_user_key(warehouse, account_id=ACCOUNT, user_key="a:anon-1") == "i:user-1"
    assert await canonical_user_key(warehouse, account_id=ACCOUNT, user_key="i:x") == "i:x"
    assert await member_keys(warehouse, account_id=ACCOUNT, canonical=["i:user-1"]) == {
        "i:user-1": "i:user-1",
        "a:anon-1": "i:user-1",
    }
    record = await profile_record(warehouse, account_id=ACCOUNT, user_key="a:anon-1")
    assert record is not None
    assert record["identity"] == "user-1"
    assert record["events"]["Viewed"]["count"] == 3

    # A demerge writes a newer, inactive row: the anonymous key counts for itself again.
    split = alias_envelopes(ACCOUNT, [AliasRow("a:anon-1", "a:anon-1", 11, False)], received_ms=T0)
    await write_rows(warehouse, rows_of(split), token="t2")
    assert await canonical_user_key(warehouse, account_id=ACCOUNT, user_key="a:anon-1") == "a:anon-1"
    assert await member_keys(warehouse, account_id=ACCOUNT, canonical=["i:user-1"]) == {
        "i:user-1": "i:user-1"
    }
    record = await profile_record(warehouse, account_id=ACCOUNT, user_key="i:user-1")
    assert record is not None and record["events"]["Viewed"]["count"] == 1
