"""Journeys on real stores: entry by trigger (events on the embedded log) or by segment, sends, waits,
condition branches, A/B splits, goal exits, objections, versions, per-step counts and per-user history."""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import orjson
import pytest

from tapwire_core.control.messaging import consent
from tests.infra.clickhouse import WarehouseFactory
from tests.messaging.rig import ACCOUNT, HEADERS, Rig, add_profiles, messaging_rig, settings_for
from tests.messaging.servers import SmtpSink, smtp_sink
from tests.messaging.test_triggers import PROFILES, event, publish, until

pytestmark = pytest.mark.integration


def send(subject: str, next_step: str | None = None) -> dict[str, Any]:
    step: dict[str, Any] = {"type": "send", "channel": "email", "content": {"subject": subject, "body": "Hi"}}
    return step | ({"next": next_step} if next_step else {})


async def create(rig: Rig, definition: Mapping[str, Any], name: str = "onboarding") -> int:
    response = await rig.post("/messaging/v1/journeys", {"name": name, "definition": dict(definition)})
    assert response.status_code == 201, response.text
    return int(response.json()["id"])


async def view(rig: Rig, journey_id: int) -> dict[str, Any]:
    response = await rig.client.get(f"/messaging/v1/journeys/{journey_id}", headers=HEADERS)
    assert response.status_code == 200, response.text
    found: dict[str, Any] = response.json()["journey"]
    return found


async def history(rig: Rig, journey_id: int, user_key: str) -> list[dict[str, Any]]:
    response = await rig.client.get(f"/messaging/v1/journeys/{journey_id}/users/{user_key}", headers=HEADERS)
    positions: list[dict[str, Any]] = response.json()["positions"]
    return positions


async def counts(rig: Rig, journey_id: int) -> dict[str, dict[str, int]]:
    """step → entered, waiting, exited, converted."""
    steps = (await view(rig, journey_id))["steps"]
    return {str(name): {str(k): int(v) for k, v in row.items()} for name, row in steps.items()}


async def ended(rig: Rig, journey_id: int, users: int) -> bool:
    return sum(s["exited"] + s["converted"] for s in (await counts(rig, journey_id)).values()) == users


def mail(sink: SmtpSink) -> dict[str, list[str]]:
    return {to: sorted(str(m["Subject"]) for m in msgs) for to, msgs in sink.by_recipient().items()}


async def test_a_triggered_journey_sends_waits_and_branches_on_the_profile(
    tmp_path: Path, warehouse_factory: WarehouseFactory
) -> None:
    warehouse = await warehouse_factory("chdb")
    definition = {
        "entry": {"trigger": {"event": "Signed Up"}},
        "start": "welcome",
        "steps": {
            "welcome": send("Welcome", "pause"),
            "pause": {"type": "wait", "duration_s": 0.5, "next": "gold?"},
            "gold?": {
                "type": "condition",
                "profile": {"name": "Tier", "value": "gold"},
                "yes": "vip",
                "no": "end",
            },
            "vip": send("Your gold perks"),
            "end": {"type": "exit"},
        },
    }
    with smtp_sink() as sink:
        async with messaging_rig(tmp_path, warehouse, settings_for(tmp_path, sink.url)) as rig:
            await add_profiles(warehouse, PROFILES)
            journey_id = await create(rig, definition)
            await publish(rig, event("ann", "Signed Up"), event("bob", "Signed Up"))

            async def done() -> bool:
                return await ended(rig, journey_id, 2)

            await until(done, "both users to finish the journey")
            await until(lambda: len(sink.receipts) == 3, "three messages")
            steps = (await view(rig, journey_id))["steps"]
            ann = await history(rig, journey_id, "i:ann")
    assert mail(sink) == {"ann@example.com": ["Welcome", "Your gold perks"], "bob@example.com": ["Welcome"]}
    assert {name: s["entered"] for name, s in steps.items()} == {
        "welcome": 2,
        "pause": 2,
        "gold?": 2,
        "vip": 1,
        "end": 1,
    }
    assert steps["vip"]["exited"] == 1 and steps["end"]["exited"] == 1
    [position] = ann
    assert position["status"] == "completed" and position["version"] == 1
    assert [(h["step"], h["action"]) for h in position["history"]] == [
        ("welcome", "entered"),
        ("welcome", "sent"),
        ("pause", "entered"),
        ("pause", "waited"),
        ("gold?", "entered"),
        ("gold?", "branched"),
        ("vip", "entered"),
        ("vip", "sent"),
        ("vip", "completed"),
    ]


async def add_events(warehouse: Any, events: list[tuple[str, str, dict[str, Any], int]]) -> None:
    """(user key, name, properties, ts ms) straight into the events table, as the loader stores them."""
    columns = [
        "account_id",
        "event_id",
        "user_key",
        "name",
        "ts",
        "received_at",
        "source",
        "properties",
        "context",
    ]
    await warehouse.insert(
        "events",
        columns,
        [
            (
                ACCOUNT,
                f"e-{key}-{name}-{ts}",
                key,
                name,
                ts,
                ts,
                "clevertap",
                orjson.dumps(props).decode(),
                "{}",
            )
            for key, name, props, ts in events
        ],
    )


async def test_conditions_on_recent_events_and_on_a_segment_choose_each_users_branch(
    tmp_path: Path, warehouse_factory: WarehouseFactory
) -> None:
    warehouse = await warehouse_factory("chdb")
    profiles = [
        ("i:ann", {"Email": "ann@example.com", "Tier": "gold"}),
        ("i:bob", {"Email": "bob@example.com", "Tier": "gold"}),
        ("i:cat", {"Email": "cat@example.com"}),
        ("i:dan", {"Email": "dan@example.com"}),
    ]
    now = int(time.time() * 1000)
    definition = {
        "entry": {"trigger": {"event": "Signed Up"}},
        "start": "launched?",
        "steps": {
            "launched?": {
                "type": "condition",
                "did": {
                    "event": "App Launched",
                    "within_s": 3600,
                    "filters": [{"name": "platform", "value": "ios"}],
                },
                "yes": "gold?",
                "no": "nudge",
            },
            "gold?": {
                "type": "condition",
                "where": {
                    "common_profile_properties": {"profile_fields": [{"name": "Tier", "value": "gold"}]}
                },
                "yes": "vip",
            },
            "vip": send("Gold"),
            "nudge": send("Open the app"),
        },
    }
    with smtp_sink() as sink:
        async with messaging_rig(tmp_path, warehouse, settings_for(tmp_path, sink.url)) as rig:
            await add_profiles(warehouse, profiles)
            await add_events(
                warehouse,
                [
                    ("i:ann", "App Launched", {"platform": "ios"}, now - 60_000),
                    ("i:bob", "App Launched", {"platform": "android"}, now - 60_000),
                    ("i:cat", "App Launched", {"platform": "ios"}, now - 2 * 3600_000),  # outside the window
                    ("i:dan", "App Launched", {"platform": "ios"}, now - 60_000),
                ],
            )
            journey_id = await create(rig, definition)
            await publish(rig, *(event(user, "Signed Up") for user in ("ann", "bob", "cat", "dan")))

            async def done() -> bool:
                return await ended(rig, journey_id, 4)

            await until(done, "every user to finish")
            await until(lambda: len(sink.receipts) == 3, "three messages")
            steps = await counts(rig, journey_id)
    assert mail(sink) == {
        "ann@example.com": ["Gold"],
        "bob@example.com": ["Open the app"],
        "cat@example.com": ["Open the app"],
    }
    assert steps["launched?"]["entered"] == 4 and steps["gold?"]["entered"] == 2
    assert steps["gold?"]["exited"] == 1  # dan: launched on iOS, not gold, no "no" branch


async def test_the_goal_and_an_objection_take_users_out_during_a_wait(
    tmp_path: Path, warehouse_factory: WarehouseFactory
) -> None:
    warehouse = await warehouse_factory("chdb")
    profiles = [*PROFILES, ("i:cat", {"Email": "cat@example.com"})]
    definition = {
        "entry": {"trigger": {"event": "Signed Up"}},
        "start": "welcome",
        "goal": {"event": "Charged"},
        "steps": {
            "welcome": send("Welcome", "pause"),
            "pause": {"type": "wait", "duration_s": 3, "next": "nudge"},
            "nudge": send("Still there?"),
        },
    }
    with smtp_sink() as sink:
        async with messaging_rig(tmp_path, warehouse, settings_for(tmp_path, sink.url)) as rig:
            await add_profiles(warehouse, profiles)
            journey_id = await create(rig, definition)
            await publish(rig, *(event(user, "Signed Up") for user in ("ann", "bob", "cat")))

            async def waiting() -> bool:
                return (await counts(rig, journey_id)).get("pause", {}).get("waiting") == 3

            await until(waiting, "all three to wait")
            await publish(rig, event("ann", "Charged", {"amount": 10}))
            await consent.record_objection(
                rig.service.store.engine,
                account_id=ACCOUNT,
                user_key="i:bob",
                source="test",
                now_ms=rig.service.now_ms(),
            )

            async def done() -> bool:
                return await ended(rig, journey_id, 3)

            await until(done, "every position to end")
            await until(lambda: len(sink.receipts) == 4, "three welcomes and one nudge")
            steps = (await view(rig, journey_id))["steps"]
            bob = await history(rig, journey_id, "i:bob")
    assert mail(sink) == {
        "ann@example.com": ["Welcome"],
        "bob@example.com": ["Welcome"],
        "cat@example.com": ["Still there?", "Welcome"],
    }
    assert steps["pause"]["converted"] == 1  # ann, by the goal
    assert steps["pause"]["exited"] == 1  # bob, by his objection
    assert bob[0]["status"] == "exited" and bob[0]["detail"] == "objected to marketing"


async def test_a_new_version_applies_to_new_entries_only(
    tmp_path: Path, warehouse_factory: WarehouseFactory
) -> None:
    warehouse = await warehouse_factory("chdb")

    def definition(subject: str) -> dict[str, Any]:
        return {
            "entry": {"trigger": {"event": "Signed Up"}},
            "start": "pause",
            "steps": {"pause": {"type": "wait", "duration_s": 2, "next": "hello"}, "hello": send(subject)},
        }

    with smtp_sink() as sink:
        async with messaging_rig(tmp_path, warehouse, settings_for(tmp_path, sink.url)) as rig:
            await add_profiles(warehouse, PROFILES)
            journey_id = await create(rig, definition("Version one"))
            await publish(rig, event("ann", "Signed Up"))

            async def ann_waits() -> bool:
                return (await counts(rig, journey_id)).get("pause", {}).get("waiting") == 1

            await until(ann_waits, "ann to wait on version 1")
            response = await rig.client.put(
                f"/messaging/v1/journeys/{journey_id}",
                headers=HEADERS,
                json={"definition": definition("Version two")},
            )
            assert response.status_code == 200 and response.json()["version"] == 2, response.text
            await publish(rig, event("bob", "Signed Up"))
            await until(lambda: len(sink.receipts) == 2, "both messages")
            shown = await view(rig, journey_id)
    assert mail(sink) == {"ann@example.com": ["Version one"], "bob@example.com": ["Version two"]}
    assert shown["version"] == 2


async def test_stopping_a_journey_exits_the_users_inside_and_enters_no_one(
    tmp_path: Path, warehouse_factory: WarehouseFactory
) -> None:
    warehouse = await warehouse_factory("chdb")
    definition = {
        "entry": {"trigger": {"event": "Signed Up"}},
        "start": "pause",
        "steps": {"pause": {"type": "wait", "duration_s": 1.5, "next": "hello"}, "hello": send("Hello")},
    }
    with smtp_sink() as sink:
        async with messaging_rig(tmp_path, warehouse, settings_for(tmp_path, sink.url)) as rig:
            await add_profiles(warehouse, PROFILES)
            journey_id = await create(rig, definition)
            await publish(rig, event("ann", "Signed Up"))

            async def ann_waits() -> bool:
                return (await counts(rig, journey_id)).get("pause", {}).get("waiting") == 1

            await until(ann_waits, "ann to wait")
            stopped = await rig.post(f"/messaging/v1/journeys/{journey_id}/stop", {})
            assert stopped.status_code == 200, stopped.text
            await publish(rig, event("bob", "Signed Up"))

            async def ann_exited() -> bool:
                return (await counts(rig, journey_id)).get("pause", {}).get("exited") == 1

            await until(ann_exited, "ann to be exited once her wait is over")
            # Bob's event, published after the stop, had the rest of ann's wait to enter him, had it been able to.
            shown = await view(rig, journey_id)
            ann = await history(rig, journey_id, "i:ann")
            bob = await history(rig, journey_id, "i:bob")
    assert sink.receipts == []
    assert shown["status"] == "stopped"
    assert ann[0]["status"] == "exited" and ann[0]["detail"] == "journey stopped"
    assert bob == []


async def test_a_segment_entry_enrols_its_members_and_splits_them(
    tmp_path: Path, warehouse_factory: WarehouseFactory
) -> None:
    warehouse = await warehouse_factory("chdb")
    users = [(f"i:u{i}", {"Email": f"u{i}@example.com", "Tier": "gold"}) for i in range(20)]
    definition = {
        "entry": {
            "where": {"common_profile_properties": {"profile_fields": [{"name": "Tier", "value": "gold"}]}}
        },
        "start": "ab",
        "steps": {
            "ab": {"type": "split", "branches": [{"weight": 1, "next": "a"}, {"weight": 1, "next": "b"}]},
            "a": send("Offer A"),
            "b": send("Offer B"),
        },
    }
    with smtp_sink() as sink:
        async with messaging_rig(tmp_path, warehouse, settings_for(tmp_path, sink.url)) as rig:
            await add_profiles(warehouse, [*users, ("i:bob", {"Email": "bob@example.com"})])
            journey_id = await create(rig, definition)

            async def done() -> bool:
                return await ended(rig, journey_id, 20)

            await until(done, "every member to finish")
            await until(lambda: len(sink.receipts) == 20, "twenty messages")
            steps = (await view(rig, journey_id))["steps"]
    received = mail(sink)
    assert "bob@example.com" not in received and len(received) == 20
    assert all(len(subjects) == 1 for subjects in received.values())
    assert steps["ab"]["entered"] == 20 and steps["a"]["entered"] + steps["b"]["entered"] == 20
    assert steps["a"]["entered"] > 0 and steps["b"]["entered"] > 0


@pytest.mark.parametrize(
    ("definition", "status", "message"),
    [
        ("nope", 422, "definition must be an object"),
        ({"entry": {}, "start": "a", "steps": {"a": {"type": "exit"}}}, 422, "exactly one of trigger"),
        (
            {"entry": {"trigger": {"event": "E"}}, "start": "a", "steps": {"a": send("x", "b")}},
            422,
            "steps.a leads to no step: 'b'",
        ),
        (
            {
                "entry": {"trigger": {"event": "E"}},
                "start": "a",
                "steps": {
                    "a": {"type": "wait", "duration_s": 1, "next": "b"},
                    "b": {"type": "wait", "duration_s": 1, "next": "a"},
                },
            },
            422,
            "cycle",
        ),
        (
            {
                "entry": {"trigger": {"event": "E"}},
                "start": "a",
                "steps": {"a": send("x") | {"campaign_id": 1}},
            },
            422,
            "definition.steps.a.campaign_id is set by the server",
        ),
        (
            {"entry": {"segment_id": "s", "campaign_id": 1}, "start": "a", "steps": {"a": {"type": "exit"}}},
            422,
            "definition.entry.campaign_id is set by the server",
        ),
        (
            {"entry": {"trigger": {"event": "E"}}, "start": "a", "steps": {"a": {"type": "teleport"}}},
            422,
            "definition.steps.a",
        ),
        (
            {
                "entry": {"trigger": {"event": "E"}},
                "start": "a",
                "steps": {"a": {"type": "send", "channel": "email", "content": {"body": "no subject"}}},
            },
            422,
            "definition.steps.a: content.subject is required",
        ),
    ],
)
async def test_invalid_journeys_are_refused_naming_the_problem(
    tmp_path: Path, warehouse_factory: WarehouseFactory, definition: Any, status: int, message: str
) -> None:
    warehouse = await warehouse_factory("chdb")
    with smtp_sink() as sink:
        async with messaging_rig(tmp_path, warehouse, settings_for(tmp_path, sink.url)) as rig:
            response = await rig.post("/messaging/v1/journeys", {"name": "bad", "definition": definition})
    assert response.status_code == status, response.text
    assert message in response.json()["error"]
