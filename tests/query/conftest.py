"""One loaded copy of the shared dataset per warehouse engine, shared by every query test (each module adds
its own accounts)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tapwire_core.warehouse import Warehouse
from tapwire_core.warehouse.chdb import ChdbWarehouse
from tapwire_core.warehouse.clickhouse import ClickHouseWarehouse
from tests.infra.clickhouse import ENGINES, Engine
from tests.query.dataset import load_dataset


@pytest.fixture(scope="session", params=ENGINES)
async def loaded(request: pytest.FixtureRequest, chdb_path: Path) -> AsyncIterator[Warehouse]:
    """A warehouse (chDB in-process, or ClickHouse over HTTP via the rig) holding the shared dataset."""
    engine: Engine = request.param
    name = f"q_{uuid.uuid4().hex[:12]}"
    warehouse: Warehouse
    if engine == "chdb":
        warehouse = ChdbWarehouse(chdb_path, database=name)
    else:
        rig = request.getfixturevalue("clickhouse_rig")
        warehouse = ClickHouseWarehouse(f"{rig}/{name}")
    await warehouse.start()
    try:
        await load_dataset(warehouse)
        yield warehouse
    finally:
        await warehouse.command(f"DROP DATABASE IF EXISTS {warehouse.database}")
        await warehouse.close()
