"""Erasure end to end on real stores (chDB, SQLite): closure, batched mutations, verification, second sweep."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from tapwire_core.control.privacy.models import PrivacyRequestSubjectRow
from tapwire_core.warehouse import Warehouse
from tapwire_privacy.repository import PrivacyRepository
from tests.privacy.conftest import Rig
from tests.privacy.seed import alias, event, profile, rows_naming, write

pytestmark = pytest.mark.integration

ALICE = ["alice", "alice@example.com", "anon-alice", "+4915100000001", "obj-alice"]
BOB = ["bob", "bob@example.com", "anon-bob"]


async def seed_alice_and_bob(warehouse: Warehouse) -> None:
    await write(
        warehouse,
        [
            # Before login: an anonymous profile, later merged into alice.
            event("ACC-1", "App Launched", anonymous_id="anon-alice"),
            event("ACC-1", "Viewed", anonymous_id="anon-alice"),
            # Logged in.
            event("ACC-1", "Charged", identity="alice", props={"amount": 10}),
            profile(
                "ACC-1",
                {"Name": "Alice", "Email": "alice@example.com", "score": {"$incr": 1}},
                identity="alice",
            ),
            # A device that only knows the email, and one that only knows the phone from her profile.
            event("ACC-1", "Viewed", email="alice@example.com", object_id="obj-alice"),
            profile("ACC-1", {"Phone": "+4915100000001"}, identity="alice"),
            event("ACC-1", "Called", phone="+4915100000001"),
            # Bob, in the same account, and alice's namesake in another account.
            event("ACC-1", "Viewed", identity="bob", email="bob@example.com"),
            profile("ACC-1", {"Name": "Bob"}, identity="bob"),
            event("ACC-1", "Viewed", anonymous_id="anon-bob"),
            event("ACC-2", "Viewed", identity="alice", email="alice@example.com"),
        ],
    )
    await alias(warehouse, "ACC-1", "a:anon-alice", "i:alice")
    await alias(warehouse, "ACC-1", "a:anon-bob", "i:bob")


async def erase(repository: PrivacyRepository, *keys: str, account: str = "ACC-1") -> str:
    view = await repository.requests.create(
        account_id=account,
        type="erasure",
        scope="subject",
        channel="api",
        jurisdiction="gdpr",
        keys=list(keys),
    )
    return view.id


async def test_erasure_removes_every_linked_identifier_and_nothing_else(rig: Rig) -> None:
    await seed_alice_and_bob(rig.warehouse)
    bob_before = await rows_naming(rig.warehouse, "ACC-1", BOB)
    other_account_before = await rows_naming(rig.warehouse, "ACC-2", ALICE)
    assert sum(bob_before.values()) > 0 and sum(other_account_before.values()) > 0

    request_id = await erase(rig.repository, "e:alice@example.com")  # named by the email only
    await rig.worker.tick()
    first = await rig.repository.requests.get(request_id)
    assert first.status == "awaiting_sweep"
    assert await rows_naming(rig.warehouse, "ACC-1", ALICE) == dict.fromkeys(bob_before, 0)

    rig.clock.advance(seconds=rig.settings.privacy_sweep_delay_s + 1)
    await rig.worker.tick()
    # The stores are clean; only the copies on the bus are left, until their retention passes.
    waiting = await rig.repository.requests.get(request_id)
    assert waiting.status == "in_progress" and waiting.progress["phase"] == "copies_expiring"
    await rig.past_bus_copies()
    done = await rig.repository.requests.get(request_id)
    assert done.status == "completed" and done.completed_at is not None
    assert await rows_naming(rig.warehouse, "ACC-1", ALICE) == dict.fromkeys(bob_before, 0)
    assert await rows_naming(rig.warehouse, "ACC-1", BOB) == bob_before
    assert await rows_naming(rig.warehouse, "ACC-2", ALICE) == other_account_before

    # The completion record: per-store counts, two verified sweeps, what was checked, no identifiers.
    stores = done.progress["stores"]
    assert stores["warehouse.events"]["removed"] == 5
    assert stores["warehouse.profile_ops"]["removed"] == 1
    assert stores["warehouse.profile_props"]["removed"] == 3
    assert stores["warehouse.user_aliases"]["removed"] == 1
    assert done.verification is not None and done.verification["sweeps"] == 2
    events_proof = done.verification["stores"]["warehouse.events"]
    assert events_proof["residue"] == 0 and events_proof["pending"] is False
    assert "without FINAL" in events_proof["checked"] and "system.mutations" in events_proof["checked"]
    record_text = repr(done) + repr(await rig.repository.audit.trail(request_id))
    for identifier in ALICE:
        assert identifier not in record_text
    # The working set that held the identifiers is gone.
    async with rig.control.engine.connect() as connection:
        left = (await connection.execute(select(PrivacyRequestSubjectRow))).all()
    assert left == []


async def test_second_sweep_removes_rows_that_landed_in_between(rig: Rig) -> None:
    await seed_alice_and_bob(rig.warehouse)
    request_id = await erase(rig.repository, "i:alice")
    await rig.worker.tick()
    assert (await rig.repository.requests.get(request_id)).status == "awaiting_sweep"
    # A record already past the gateway when the suppression was installed reaches the warehouse late.
    await write(rig.warehouse, [event("ACC-1", "Late", identity="alice")])
    assert (await rows_naming(rig.warehouse, "ACC-1", ["alice"]))["events"] == 1
    rig.clock.advance(seconds=rig.settings.privacy_sweep_delay_s + 1)
    await rig.worker.tick()
    await rig.past_bus_copies()
    done = await rig.repository.requests.get(request_id)
    assert done.status == "completed"
    assert sum((await rows_naming(rig.warehouse, "ACC-1", ALICE)).values()) == 0
    assert done.progress["stores"]["warehouse.events"]["removed"] == 6
    actions = [entry["action"] for entry in await rig.repository.audit.trail(request_id)]
    assert actions.count("verified") == 2 and "second_sweep_started" in actions


async def test_many_subjects_share_one_mutation_per_table(rig: Rig) -> None:
    envelopes = [event("ACC-1", "Viewed", identity=f"user-{i}", email=f"u{i}@example.com") for i in range(40)]
    await write(rig.warehouse, envelopes)
    ids = [await erase(rig.repository, f"i:user-{i}") for i in range(30)]
    await rig.worker.tick()
    mutations = await rig.warehouse.query(
        # The erasure's deletes only: the schema's own migrations may have mutated a table too (an index).
        "SELECT table, count() AS n FROM system.mutations WHERE database = currentDatabase() "
        "AND command LIKE '%DELETE WHERE%' GROUP BY table"
    )
    assert {row["table"]: int(row["n"]) for row in mutations}["events"] == 1
    remaining = await rig.warehouse.query("SELECT identity FROM events ORDER BY identity")
    assert sorted(row["identity"] for row in remaining) == sorted(f"user-{i}" for i in range(30, 40))
    # The mutation log holds hashes, not the identifiers.
    commands = await rig.warehouse.query(
        "SELECT command FROM system.mutations WHERE database = currentDatabase()"
    )
    assert not any("user-" in row["command"] or "example.com" in row["command"] for row in commands)
    await rig.run_until_settled()
    assert {(await rig.repository.requests.get(i)).status for i in ids} == {"completed"}


async def test_tenant_erasure_removes_the_whole_account_only(rig: Rig) -> None:
    await seed_alice_and_bob(rig.warehouse)
    view = await rig.repository.requests.create(
        account_id="ACC-1", type="erasure", scope="tenant", channel="api", jurisdiction="gdpr", keys=[]
    )
    await rig.run_until_settled()
    done = await rig.repository.requests.get(view.id)
    assert done.status == "completed" and done.subject_hash is None
    for table in ("events", "profiles", "profile_props", "profile_ops", "user_aliases"):
        left = await rig.warehouse.query(
            f"SELECT count() AS n FROM {table} WHERE account_id = {{a:String}}", {"a": "ACC-1"}
        )
        assert int(left[0]["n"]) == 0, table
    others = await rig.warehouse.query("SELECT count() AS n FROM events WHERE account_id = 'ACC-2'")
    assert int(others[0]["n"]) == 1
    # The person-ordered copy inside every part goes with the rows, and only the account's.
    copies = await rig.warehouse.query(
        "SELECT account_id, count() AS n FROM mergeTreeProjection(currentDatabase(), events, events_by_person) "
        "GROUP BY account_id SETTINGS apply_deleted_mask = 0"
    )
    assert {row["account_id"]: int(row["n"]) for row in copies} == {"ACC-2": 1}
