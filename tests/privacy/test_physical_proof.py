"""The warehouse proof finds rows that are hidden but still on disk, and waits while unreadable parts exist."""

from __future__ import annotations

import pytest

from tapwire_core.privacy.scope import Scope
from tapwire_core.warehouse import Warehouse
from tapwire_privacy.stores.warehouse import WAREHOUSE_SPECS, WarehouseTableHandler
from tests.privacy.conftest import Rig
from tests.privacy.seed import event, write

pytestmark = pytest.mark.integration


async def _all_rows_naming(warehouse: Warehouse, identity: str) -> int:
    rows = await warehouse.query(
        "SELECT count() AS n FROM events WHERE identity = {i:String} SETTINGS apply_deleted_mask = 0",
        {"i": identity},
    )
    return int(rows[0]["n"])


async def test_a_row_hidden_by_a_lightweight_delete_fails_the_proof_until_it_is_gone(rig: Rig) -> None:
    await write(
        rig.warehouse,
        [event("ACC-1", identity="hana"), event("ACC-1", identity="hana"), event("ACC-1", identity="ivo")],
    )
    # Someone "deletes" the rows by hand: queries stop showing them, the part still holds them.
    await rig.warehouse.command("DELETE FROM events WHERE identity = 'hana'")
    visible = await rig.warehouse.query("SELECT count() AS n FROM events WHERE identity = 'hana'")
    assert int(visible[0]["n"]) == 0 and await _all_rows_naming(rig.warehouse, "hana") == 2

    handler = WarehouseTableHandler(WAREHOUSE_SPECS["events"], rig.warehouse)
    found = await handler.verify([Scope("r-1", "ACC-1", frozenset({"i:hana"}))])
    assert found["r-1"].residue == 2 and not found["r-1"].clean  # the negative control: the check fails

    request = await rig.repository.requests.create(
        account_id="ACC-1",
        type="erasure",
        scope="subject",
        channel="api",
        jurisdiction="gdpr",
        keys=["i:hana"],
    )
    await rig.run_until_settled()
    done = await rig.repository.requests.get(request.id)
    assert done.status == "completed"
    assert done.progress["stores"]["warehouse.events"]["removed"] == 2
    assert await _all_rows_naming(rig.warehouse, "hana") == 0  # gone from the parts, not only from sight
    assert await _all_rows_naming(rig.warehouse, "ivo") == 1
    checked = done.verification["stores"]["warehouse.events"]["checked"] if done.verification else ""
    assert "without the lightweight-delete mask" in checked and "detached_parts: none" in checked


async def test_a_detached_part_holds_the_proof_back(rig: Rig) -> None:
    await write(rig.warehouse, [event("ACC-1", identity="jo")])
    partition = (
        await rig.warehouse.query(
            "SELECT partition FROM system.parts WHERE table = 'events' AND active AND database = currentDatabase() LIMIT 1"
        )
    )[0]["partition"]
    await rig.warehouse.command(f"ALTER TABLE events DETACH PARTITION {partition}")
    handler = WarehouseTableHandler(WAREHOUSE_SPECS["events"], rig.warehouse)
    found = (await handler.verify([Scope("r-1", "ACC-1", frozenset({"i:jo"}))]))["r-1"]
    assert found.residue == 0 and found.pending and "1 detached parts cannot be read" in found.checked
    await rig.warehouse.command(f"ALTER TABLE events ATTACH PARTITION {partition}")
    found = (await handler.verify([Scope("r-1", "ACC-1", frozenset({"i:jo"}))]))["r-1"]
    assert found.residue == 1 and not found.pending


async def _copies_naming(warehouse: Warehouse, identity: str) -> int:
    rows = await warehouse.query(
        "SELECT count() AS n FROM mergeTreeProjection(currentDatabase(), events, events_by_person) "
        "WHERE identity = {i:String} SETTINGS apply_deleted_mask = 0",
        {"i": identity},
    )
    return int(rows[0]["n"])


async def test_the_erasure_removes_the_person_ordered_copy_and_the_proof_counts_it(rig: Rig) -> None:
    """``events`` keeps a second copy of each part's rows ordered by person (a projection): an erasure that left
    it would leave the person readable, so the proof counts it with the table."""
    await write(
        rig.warehouse,
        [event("ACC-1", identity="kai"), event("ACC-1", identity="kai"), event("ACC-1", identity="lea")],
    )
    assert await _copies_naming(rig.warehouse, "kai") == 2
    handler = WarehouseTableHandler(WAREHOUSE_SPECS["events"], rig.warehouse)
    scope = Scope("r-1", "ACC-1", frozenset({"i:kai"}))
    assert (await handler.count_in_projections([scope]))[
        "r-1"
    ] == 2  # the negative control: the count sees it

    request = await rig.repository.requests.create(
        account_id="ACC-1",
        type="erasure",
        scope="subject",
        channel="api",
        jurisdiction="gdpr",
        keys=["i:kai"],
    )
    await rig.run_until_settled()
    done = await rig.repository.requests.get(request.id)
    assert done.status == "completed"
    assert await _copies_naming(rig.warehouse, "kai") == 0
    assert await _copies_naming(rig.warehouse, "lea") == 1
    checked = done.verification["stores"]["warehouse.events"]["checked"] if done.verification else ""
    assert "of its projection events_by_person" in checked


async def test_a_lightweight_delete_rebuilds_the_copy_and_the_erasure_clears_both(rig: Rig) -> None:
    await write(rig.warehouse, [event("ACC-1", identity="mo"), event("ACC-1", identity="nia")])
    # Allowed on a table with a projection only because migration 7 says what to do with it (rebuild).
    await rig.warehouse.command("DELETE FROM events WHERE identity = 'mo'")
    handler = WarehouseTableHandler(WAREHOUSE_SPECS["events"], rig.warehouse)
    found = await handler.verify([Scope("r-1", "ACC-1", frozenset({"i:mo"}))])
    assert found["r-1"].residue == 1 and not found["r-1"].clean
    request = await rig.repository.requests.create(
        account_id="ACC-1",
        type="erasure",
        scope="subject",
        channel="api",
        jurisdiction="gdpr",
        keys=["i:mo"],
    )
    await rig.run_until_settled()
    assert (await rig.repository.requests.get(request.id)).status == "completed"
    assert await _all_rows_naming(rig.warehouse, "mo") == 0
    assert await _copies_naming(rig.warehouse, "mo") == 0
    assert await _copies_naming(rig.warehouse, "nia") == 1
