"""The data inventory lists every place personal data can sit — tables, bus topics, backups — with its retention
and how an erasure reaches it; a new topic or backup without an entry fails here."""

from __future__ import annotations

import datetime as dt

import pytest

from tapwire_core.settings import Settings
from tapwire_privacy.bus_copies import LEGAL_DEADLINE_FLOOR, check_retention, topic_lifetimes
from tapwire_privacy.inventory import BACKUPS, TOPICS, build_inventory
from tests.deploy.manifests import OVERLAYS, rendered

HOUR_MS = 3_600_000


def _topic_settings() -> set[str]:
    return {name for name in Settings.model_fields if name.endswith("_topic")}


def test_every_topic_setting_has_an_inventory_entry_with_retention_and_erasure() -> None:
    assert set(TOPICS) == _topic_settings()
    settings = Settings(embedded_log_retention_hours=48)
    stores = build_inventory(settings)["stores"]
    for setting in _topic_settings():
        entry = next(s for s in stores if s["store"] == "bus" and s["table"] == getattr(settings, setting))
        assert entry["handler"] == "bus.suppression_list"
        assert entry["erasure"] and "retention" in entry["erasure"]
        days = getattr(settings, TOPICS[setting].retention_setting) / 24
        assert f"{days:g} days on Kafka" in entry["retention"]
        assert "48 hours in embedded mode" in entry["retention"]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_topic_the_manifests_create_is_in_the_inventory_with_its_retention(overlay: str) -> None:
    o = rendered(overlay)
    by_name = {o.config()[f"TAPWIRE_{setting.upper()}"]: setting for setting in _topic_settings()}
    topics = o.of_kind("KafkaTopic")
    assert topics
    for topic in topics:
        name = topic["spec"]["topicName"]
        assert name in by_name, (
            f"{overlay}: topic {name} is named by no setting, so it has no inventory entry"
        )
        # The settings the privacy worker counts on are what the topics keep.
        config = topic["spec"]["config"]
        retention_setting = TOPICS[by_name[name]].retention_setting
        assert (
            int(config["retention.ms"]) == float(o.config()[f"TAPWIRE_{retention_setting.upper()}"]) * HOUR_MS
        )
        assert int(config["segment.ms"]) == float(o.config()["TAPWIRE_TOPIC_SEGMENT_HOURS"]) * HOUR_MS


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_the_manifests_bus_keeps_no_copy_past_the_legal_deadline(overlay: str) -> None:
    config = rendered(overlay).config()
    names = ("events_topic_retention_hours", "dead_letter_topic_retention_hours", "topic_segment_hours")
    settings = Settings().model_copy(
        update={name: float(config[f"TAPWIRE_{name.upper()}"]) for name in names}
    )
    lifetimes = topic_lifetimes(settings, embedded=None)
    check_retention(settings, lifetimes)
    assert max(lifetime.longest for lifetime in lifetimes) <= LEGAL_DEADLINE_FLOOR - dt.timedelta(days=4)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_backup_the_manifests_take_is_in_the_inventory(overlay: str) -> None:
    o = rendered(overlay)
    listed = {resource for backup in BACKUPS for resource in backup.resources}
    taken = {
        f"{obj['kind']}/{obj['metadata']['name']}"
        for obj in o.objects
        if "backup" in obj["kind"].lower()
        or obj["kind"] == "ObjectStore"
        or (obj["kind"] == "CronJob" and "backup" in obj["metadata"]["name"])
    }
    assert taken, overlay
    assert taken <= listed, f"{overlay}: backups without an inventory entry: {sorted(taken - listed)}"
    stores = build_inventory(Settings())["stores"]
    for backup in BACKUPS:
        entry = next(s for s in stores if s["store"] == "backups" and s["table"] == backup.store)
        assert entry["retention"] and "restore" in entry["erasure"]


def test_the_person_ordered_copy_of_events_is_listed_with_its_categories_and_handler() -> None:
    stores = build_inventory(Settings())["stores"]
    events = next(s for s in stores if s["store"] == "warehouse" and s["table"] == "events")
    copy = next(s for s in stores if s["store"] == "warehouse" and s["table"] == "events_by_person")
    assert copy["copy_of"] == "events" and copy["handler"] == events["handler"] == "warehouse.events"
    table_columns = {c["name"]: c for c in events["columns"]}
    assert {c["name"] for c in copy["columns"]} >= {"user_key", "identity", "email", "phone", "properties"}
    assert all(c == table_columns[c["name"]] for c in copy["columns"])
    assert events["retention"] in copy["retention"]
