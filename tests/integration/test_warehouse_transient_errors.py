"""ClickHouse errors that pass by themselves are retried, not taken for bad data.

Each kind of transient error (``tapwire_core.warehouse.errors``) is injected through the ClickHouse HTTP rig,
so it travels as a real server answer (HTTP 500, ``X-ClickHouse-Exception-Code``) through clickhouse-connect:
the warehouse calls it ``WarehouseUnavailable``, and a loader that meets it for a while stores the whole batch
once the error passes, with nothing dead-lettered. Before this classification, codes such as 225, 236, 285,
319 and 394 made the loader split a healthy batch down to single records and dead-letter them.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tapwire_core.bus import Record
from tapwire_core.bus.embedded import EmbeddedBus
from tapwire_core.envelope import Envelope, Identities, encode
from tapwire_core.settings import Settings
from tapwire_core.warehouse import WarehouseError, WarehouseUnavailable
from tapwire_core.warehouse.clickhouse import ClickHouseWarehouse
from tapwire_core.warehouse.errors import TRANSIENT_KINDS, TransientKind
from tapwire_core.warehouse.migrations import migrate
from tapwire_ingest.loader.pipeline import Loader
from tests.infra.clickhouse import clear_rig_faults, rig_faults

pytestmark = pytest.mark.integration

KINDS = {kind.name: kind for kind in TRANSIENT_KINDS}
NAMES = {code: name for kind in TRANSIENT_KINDS for code, name in kind.codes.items()}
# For the loader: the codes seen to dead-letter healthy batches, then one more of each kind.
LOADER_CODES = (225, 236, 285, 319, 394, 473, 745, 173, 265, 243, 497)
RECORDS = 40


@pytest.fixture
async def warehouse(clickhouse_rig: str) -> AsyncIterator[ClickHouseWarehouse]:
    warehouse = ClickHouseWarehouse(f"{clickhouse_rig}/transient_{uuid.uuid4().hex[:12]}")
    await warehouse.start()
    await warehouse.command("CREATE TABLE IF NOT EXISTS t (n UInt32) ENGINE = MergeTree ORDER BY n")
    try:
        yield warehouse
    finally:
        clear_rig_faults(clickhouse_rig)
        await warehouse.command(f"DROP DATABASE IF EXISTS {warehouse.database}")
        await warehouse.close()


@pytest.mark.parametrize("kind", KINDS.values(), ids=list(KINDS))
async def test_every_transient_code_is_unavailable_not_an_error(
    kind: TransientKind, warehouse: ClickHouseWarehouse, clickhouse_rig: str
) -> None:
    for code, name in kind.codes.items():
        fault = {"code": code, "name": name, "times": 2, "database": warehouse.database}
        rig_faults(clickhouse_rig, fault)
        with pytest.raises(WarehouseUnavailable) as insert:
            await warehouse.insert("t", ["n"], [(code,)])
        with pytest.raises(WarehouseUnavailable) as query:
            await warehouse.query("SELECT count() AS n FROM t")
        assert (insert.value.code, query.value.code) == (code, code), name
    await warehouse.insert("t", ["n"], [(1,)])  # every fault used up: the rig answers again


async def test_the_table_names_each_code_as_clickhouse_does(warehouse: ClickHouseWarehouse) -> None:
    codes = sorted(NAMES)
    assert len(codes) == sum(len(kind.codes) for kind in TRANSIENT_KINDS)  # no code in two kinds
    rows = await warehouse.query(
        "SELECT arrayMap(c -> errorCodeToName(c), {codes:Array(UInt32)}) AS names", {"codes": codes}
    )
    assert dict(zip(codes, rows[0]["names"], strict=True)) == NAMES


async def test_a_proxy_that_cannot_reach_clickhouse_is_unavailable(
    warehouse: ClickHouseWarehouse, clickhouse_rig: str
) -> None:
    rig_faults(clickhouse_rig, {"status": 502, "times": 1, "database": warehouse.database})
    with pytest.raises(WarehouseUnavailable):
        await warehouse.insert("t", ["n"], [(1,)])


@pytest.mark.parametrize(
    ("code", "name"),
    [
        (27, "CANNOT_PARSE_INPUT_ASSERTION_FAILED"),
        (53, "TYPE_MISMATCH"),
        (62, "SYNTAX_ERROR"),
        (70, "CANNOT_CONVERT_TYPE"),
        (117, "INCORRECT_DATA"),
    ],
)
async def test_errors_of_the_statement_or_its_data_stay_errors(
    code: int, name: str, warehouse: ClickHouseWarehouse, clickhouse_rig: str
) -> None:
    rig_faults(clickhouse_rig, {"code": code, "name": name, "times": 1, "database": warehouse.database})
    with pytest.raises(WarehouseError) as raised:
        await warehouse.insert("t", ["n"], [(1,)])
    assert not isinstance(raised.value, WarehouseUnavailable)
    assert raised.value.code == code


def envelope(n: int) -> Envelope:
    return Envelope(
        account_id="ACC-1",
        event_id=f"e{n}",
        kind="event",
        ids=Identities(identity=f"u{n % 7}"),
        client_ts=1_767_571_200_000 + n,
        received_ts=1_767_571_200_000,
        source="clevertap",
        name="Bought",
        properties={"n": n},
    )


@pytest.mark.parametrize("code", LOADER_CODES, ids=[NAMES[code] for code in LOADER_CODES])
async def test_the_loader_waits_out_a_transient_error_and_dead_letters_nothing(
    code: int, tmp_path: Path, clickhouse_rig: str
) -> None:
    settings = Settings(events_topic="events", dead_letter_topic="events.dlq", loader_batch_seconds=0.2)
    bus = EmbeddedBus(tmp_path / "log")
    warehouse = ClickHouseWarehouse(f"{clickhouse_rig}/loader_{uuid.uuid4().hex[:12]}")
    await bus.start()
    await warehouse.start()
    try:
        await migrate(warehouse, cluster=None)
        await bus.ensure_topic(settings.events_topic, 1)
        await bus.ensure_topic(settings.dead_letter_topic, 1)
        pack = b"[" + b",".join(encode(envelope(n)) for n in range(RECORDS)) + b"]"
        await bus.publish(settings.events_topic, [Record(key=b"k", value=pack)], timeout_s=5)
        # Every insert fails for a while (the inserts of 319 even reach the table, as they may on a server).
        fault = {
            "code": code,
            "name": NAMES[code],
            "statement": "INSERT",
            "seconds": 1.5,
            "database": warehouse.database,
            "applied": code == 319,
        }
        rig_faults(clickhouse_rig, fault)

        loader = Loader(bus=bus, warehouse=warehouse, settings=settings)
        task = asyncio.create_task(loader.run())
        for _ in range(200):
            if loader.rows_written:
                break
            await asyncio.sleep(0.05)
        loader.stop()
        await task
        (failed,) = rig_faults(clickhouse_rig)

        dead = bus.consumer([settings.dead_letter_topic], "dlq-reader")
        await dead.start()
        letters = await dead.fetch(max_records=RECORDS, timeout_s=0.5)
        await dead.close()
        assert letters == []
        stored = await warehouse.query("SELECT count(DISTINCT event_id) AS n FROM events")
        assert stored == [{"n": RECORDS}]
        assert failed >= 2  # the loader did meet the error, more than once
    finally:
        clear_rig_faults(clickhouse_rig)
        await warehouse.command(f"DROP DATABASE IF EXISTS {warehouse.database}")
        await warehouse.close()
        await bus.close()
