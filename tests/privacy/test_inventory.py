"""The data inventory lists every place personal data can sit — tables, bus topics, backups — with its retention
and how an erasure reaches it; a new topic or backup without an entry fails here."""

from __future__ import annotations

import pytest

from tapwire_core.settings import Settings
from tapwire_privacy.inventory import BACKUPS, TOPICS, build_inventory
from tests.deploy.manifests import OVERLAYS, rendered

DAY_MS = 86_400_000


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
        assert f"{TOPICS[setting].kafka_retention_days} days on Kafka" in entry["retention"]
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
        retention_ms = int(topic["spec"]["config"]["retention.ms"])
        assert retention_ms == TOPICS[by_name[name]].kafka_retention_days * DAY_MS, name


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
