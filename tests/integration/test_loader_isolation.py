"""A record the warehouse refuses is found by halves and dead-lettered; its batch's other records are stored.

Real parts: the embedded log and chDB. A counting wrapper around the warehouse records how many inserts the
search took.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from tapwire_core.bus import Record, TopicPartition
from tapwire_core.bus.embedded import EmbeddedBus
from tapwire_core.envelope import Envelope, Identities, encode
from tapwire_core.settings import Settings
from tapwire_core.warehouse.chdb import ChdbWarehouse
from tapwire_core.warehouse.migrations import migrate
from tapwire_ingest.loader.pipeline import Loader

pytestmark = pytest.mark.integration

MEMBERS = 64
POISON_AT = 41


class CountingWarehouse(ChdbWarehouse):
    """chDB, counting the inserts of ``events`` rows built by the loader."""

    def __init__(self, path: Path) -> None:
        super().__init__(path, database=f"isolation_{uuid.uuid4().hex[:12]}")
        self.event_inserts = 0

    async def insert_columns(
        self,
        table: str,
        columns: Sequence[str],
        data: Sequence[Sequence[Any]],
        *,
        dedup_token: str | None = None,
    ) -> None:
        if table == "events":
            self.event_inserts += 1
        await super().insert_columns(table, columns, data, dedup_token=dedup_token)


def envelope(n: int, client_ts: int) -> Envelope:
    return Envelope(
        account_id="ACC-1",
        event_id=f"e{n}",
        kind="event",
        ids=Identities(identity=f"u{n % 5}"),
        client_ts=client_ts,
        received_ts=1_767_571_200_000,
        source="clevertap",
        name="Bought",
        properties={"n": n},
    )


async def test_a_refused_record_is_found_by_halves(tmp_path: Path, chdb_path: Path) -> None:
    settings = Settings(events_topic="events", dead_letter_topic="events.dlq", loader_batch_seconds=0.2)
    bus = EmbeddedBus(tmp_path / "log")
    warehouse = CountingWarehouse(chdb_path)
    await bus.start()
    await warehouse.start()
    try:
        await migrate(warehouse, cluster=None)
        await bus.ensure_topic(settings.events_topic, 1)
        # A timestamp past the Int64 range: the decoder takes it, ClickHouse's columns cannot.
        members = [
            envelope(n, 2**64 - 1 if n == POISON_AT else 1_767_571_200_000 + n) for n in range(MEMBERS)
        ]
        pack = b"[" + b",".join(encode(e) for e in members) + b"]"
        await bus.publish(settings.events_topic, [Record(key=b"k", value=pack)], timeout_s=5)

        loader = Loader(bus=bus, warehouse=warehouse, settings=settings)
        task = asyncio.create_task(loader.run())
        dead = bus.consumer([settings.dead_letter_topic], "dlq-reader")
        await dead.start()
        letters = []
        for _ in range(100):
            letters += await dead.fetch(max_records=10, timeout_s=0.1)
            if letters and loader.rows_written:
                break
        loader.stop()
        await task
        await dead.close()

        assert len(letters) == 1
        headers = dict(letters[0].headers)
        assert headers["tapwire-reason-category"] == b"insert"
        assert headers["tapwire-pack-index"] == str(POISON_AT).encode()
        assert b"warehouse refused record" in headers["tapwire-reason"]
        stored = await warehouse.query(
            "SELECT count() AS n, countIf(event_id = {e:String}) AS p FROM events", {"e": f"e{POISON_AT}"}
        )
        assert stored == [{"n": MEMBERS - 1, "p": 0}]
        # Halving 64 records down to the one refused: two parts per level, six levels, and the whole batch
        # once as built rows; one insert per record would have been 64.
        assert warehouse.event_inserts <= 2 * 6 + 1
        committed = await bus.consumer([settings.events_topic], settings.loader_group).committed(
            TopicPartition(settings.events_topic, 0)
        )
        assert committed == 1
    finally:
        await warehouse.command(f"DROP DATABASE IF EXISTS {warehouse.database}")
        await warehouse.close()
        await bus.close()
