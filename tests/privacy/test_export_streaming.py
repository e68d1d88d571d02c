"""A whole account's export is read and written in bounded batches, never held in memory at once."""

from __future__ import annotations

import io
import zipfile
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import orjson
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from tapwire_core.control.store import ControlStore
from tapwire_core.identity.models import IdentityNodeRow
from tapwire_core.privacy.scope import Scope
from tapwire_core.warehouse import Warehouse
from tapwire_core.warehouse.base import QueryLimits
from tapwire_core.warehouse.migrations import CreateTable, migrations
from tapwire_privacy.export_archive import ArchiveWriter
from tapwire_privacy.stores.row_batches import row_batches
from tapwire_privacy.stores.warehouse import WAREHOUSE_SPECS, WarehouseTableHandler
from tests.privacy.seed import JAN_5_MS, alias, event, profile, write

pytestmark = pytest.mark.integration

DAY_MS = 86_400_000


class CountingWarehouse(Warehouse):
    """The real warehouse, remembering how many rows each read returned."""

    def __init__(self, inner: Warehouse) -> None:
        self._inner = inner
        self.reads: list[int] = []

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    async def command(self, sql: str, params: Mapping[str, Any] | None = None) -> None:
        await self._inner.command(sql, params)

    async def query(
        self, sql: str, params: Mapping[str, Any] | None = None, *, limits: QueryLimits | None = None
    ) -> list[dict[str, Any]]:
        rows = await self._inner.query(sql, params, limits=limits)
        self.reads.append(len(rows))
        return rows

    async def insert(
        self, table: str, columns: Sequence[str], rows: Sequence[Sequence[Any]], **_: Any
    ) -> None:
        raise AssertionError("an export writes nothing")

    async def insert_json(self, *args: Any, **kwargs: Any) -> None:
        raise AssertionError("an export writes nothing")

    async def ping(self) -> bool:
        return True

    @property
    def database(self) -> str:
        return self._inner.database


async def _seed(warehouse: Warehouse) -> None:
    envelopes = []
    for user in range(12):
        for day in range(3):
            for name in ("Viewed", "Charged", "Added"):
                # Several events in one millisecond: the paging key, not the time, tells them apart.
                envelopes.append(event("ACC-1", name, ts_ms=JAN_5_MS + day * DAY_MS, identity=f"u{user}"))
        envelopes.append(profile("ACC-1", {"Name": f"U{user}", "Visits": {"$incr": 1}}, identity=f"u{user}"))
        envelopes.append(profile("ACC-1", {"Visits": {"$incr": 2}}, ts_ms=JAN_5_MS + 1, identity=f"u{user}"))
    envelopes.append(event("ACC-2", identity="other"))
    await write(warehouse, envelopes)
    await write(warehouse, envelopes[:10])  # the same events again: FINAL folds them
    for user in range(5):
        await alias(warehouse, "ACC-1", f"a:anon-{user}", f"i:u{user}")


def _rows(batches: list[list[dict[str, Any]]]) -> Counter[bytes]:
    return Counter(orjson.dumps(row, option=orjson.OPT_SORT_KEYS) for batch in batches for row in batch)


async def test_a_tenant_export_reads_every_table_in_bounded_pages(warehouse: Warehouse) -> None:
    await _seed(warehouse)
    scope = Scope("r-1", "ACC-1", None)
    for spec in WAREHOUSE_SPECS.values():
        whole = WarehouseTableHandler(spec, warehouse, export_batch_rows=1_000_000)
        expected = [batch async for batch in whole.export(scope)]
        counting = CountingWarehouse(warehouse)
        paged = WarehouseTableHandler(spec, counting, export_batch_rows=7)
        batches = [batch async for batch in paged.export(scope)]

        total = sum(len(batch) for batch in expected)
        assert total >= 5, spec.table
        assert _rows(batches) == _rows(expected), spec.table  # every row once, none twice, as FINAL shows it
        assert {row["account_id"] for batch in batches for row in batch} == {"ACC-1"}
        assert max(counting.reads) <= 7, spec.table
        assert len(counting.reads) >= total // 7 + 1, spec.table
        assert all(len(batch) <= 7 for batch in batches)


def test_the_paging_keys_are_the_sorting_keys_the_migrations_create() -> None:
    order_by = {
        op.name: op.order_by
        for migration in migrations()
        for op in migration.forward
        if isinstance(op, CreateTable)
    }
    for table, spec in WAREHOUSE_SPECS.items():
        parts = ", ".join(["account_id", *(part.expression for part in spec.sorting_key)])
        assert order_by[table] == f"({parts})", table


def test_the_archive_is_written_batch_by_batch_as_one_json_list(tmp_path: Path) -> None:
    rows = [{"n": i, "text": f"line\nbreak {i}", "nested": {"a": [i, None]}} for i in range(25)]
    writer = ArchiveWriter(tmp_path, "req-1")
    writer.begin_store("warehouse.events")
    for start in range(0, 25, 10):
        writer.write(rows[start : start + 10])
    writer.write([])
    writer.begin_store("control.outbox")
    path = writer.finish({"request_id": "req-1"})

    assert path == tmp_path / "req-1.zip" and not (tmp_path / "req-1.zip.partial").exists()
    archive = zipfile.ZipFile(io.BytesIO(path.read_bytes()))
    # Byte for byte what one orjson call over the whole list writes.
    assert archive.read("stores/warehouse.events.json") == orjson.dumps(rows, option=orjson.OPT_INDENT_2)
    assert archive.read("stores/control.outbox.json") == b"[]"
    manifest = orjson.loads(archive.read("manifest.json"))
    assert manifest["stores"] == {
        "warehouse.events": {"file": "stores/warehouse.events.json", "rows": 25},
        "control.outbox": {"file": "stores/control.outbox.json", "rows": 0},
    }

    failed = ArchiveWriter(tmp_path, "req-2")
    failed.begin_store("warehouse.events")
    failed.write(rows)
    failed.discard()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["req-1.zip"]


async def test_control_store_exports_are_read_in_batches(store: ControlStore) -> None:
    await store.upsert_account(
        "ACC-1", passcode="passcode-1-0123456789", write_key="writekey-1-0123456789", region="eu1"
    )
    async with AsyncSession(store.engine) as session, session.begin():
        session.add_all(
            IdentityNodeRow(
                account_id="ACC-1", key=f"i:user-{i:02d}", profile_id=i, canonical_key=f"i:user-{i:02d}"
            )
            for i in range(11)
        )
    query = select(IdentityNodeRow).where(IdentityNodeRow.account_id == "ACC-1").order_by(IdentityNodeRow.key)
    batches = [batch async for batch in row_batches(store.engine, query, size=4)]
    assert [len(batch) for batch in batches] == [4, 4, 3]
    assert [row.key for batch in batches for row in batch] == [f"i:user-{i:02d}" for i in range(11)]
