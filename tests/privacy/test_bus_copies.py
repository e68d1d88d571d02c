"""Copies of an erased subject's records on the bus: the completion record lists them with the moment the last
one is gone, the erasure completes only then, and a bus that could keep one past the legal deadline (or past
the subject's suppression) stops the privacy worker from starting."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from tapwire_core.bus.embedded import EmbeddedBus
from tapwire_core.bus.embedded_store import Retention
from tapwire_core.control.privacy.models import PrivacyRequestSubjectRow
from tapwire_core.settings import Settings
from tapwire_privacy.bus_copies import (
    LEGAL_DEADLINE_FLOOR,
    BusRetentionTooLong,
    check_retention,
    topic_lifetimes,
)
from tapwire_privacy.routes import ROUTERS as PRIVACY_ROUTERS
from tapwire_privacy.runner import PrivacyRuntime
from tapwire_services import runtime
from tapwire_services.assembly import build_app
from tapwire_services.workers import PrivacyWork
from tests.privacy.conftest import Rig
from tests.privacy.seed import event, write

DAY = dt.timedelta(days=1)


def _at(moment: str) -> dt.datetime:
    return dt.datetime.fromisoformat(moment.replace("Z", "+00:00"))


def test_the_default_bus_keeps_every_copy_well_inside_the_legal_deadline() -> None:
    settings = Settings()
    kafka = {t.topic: t.longest for t in topic_lifetimes(settings, embedded=None)}
    # Events: 7 days of retention.ms, a day of segment.ms, the broker's 5-minute check. Dead letters can be
    # written as late as an event's last moment, then keep 14 days more.
    assert kafka["tapwire.events"] == dt.timedelta(days=8, minutes=5)
    assert kafka["tapwire.events.dlq"] == dt.timedelta(days=23, minutes=10)
    embedded = {
        t.topic: t.longest for t in topic_lifetimes(settings, embedded=Retention(max_age_s=7 * 86_400.0))
    }
    assert embedded["tapwire.events.dlq"] == dt.timedelta(days=14, seconds=60)
    assert max(kafka.values()) < LEGAL_DEADLINE_FLOOR
    check_retention(settings, topic_lifetimes(settings, embedded=None))


@pytest.mark.parametrize(
    ("change", "says"),
    [
        ({"dead_letter_topic_retention_hours": 19 * 24.0}, "legal deadline"),
        ({"topic_segment_hours": 168.0}, "legal deadline"),
        ({"privacy_suppression_days": 14}, "longer than its suppression"),
    ],
)
def test_a_bus_that_could_keep_a_copy_too_long_is_refused(change: dict[str, Any], says: str) -> None:
    settings = Settings().model_copy(update=change)
    with pytest.raises(BusRetentionTooLong, match=says):
        check_retention(settings, topic_lifetimes(settings, embedded=None))


@pytest.mark.integration
async def test_the_privacy_worker_does_not_start_on_such_a_bus(tmp_path: Path, rig: Rig) -> None:
    settings = rig.settings.model_copy(update={"dead_letter_topic_retention_hours": 24.0 * 20})
    with pytest.raises(BusRetentionTooLong):
        PrivacyRuntime.build(settings=settings, store=rig.control, warehouse=rig.warehouse)
    # Where the suite assembles it, the bus in use decides: an embedded log keeping 20 days stops the start.
    bus = EmbeddedBus(tmp_path / "log", retention=Retention(max_age_s=20 * 86_400.0))
    components = runtime.Components(
        settings=rig.settings, store=rig.control, bus=bus, warehouse=rig.warehouse
    )
    app = build_app(
        rig.settings, components, routers=list(PRIVACY_ROUTERS), workers=[PrivacyWork], embedded=False
    )
    try:
        with pytest.raises(runtime.ConfigurationError, match="legal deadline"):
            async with app.router.lifespan_context(app):
                pass
    finally:
        await rig.warehouse.start()  # the app closed it; the fixture that made it drops its database


@pytest.mark.integration
async def test_an_erasure_completes_when_its_last_bus_copy_is_gone(rig: Rig) -> None:
    await write(rig.warehouse, [event("ACC-1", "Viewed", identity="dana")])
    view = await rig.repository.requests.create(
        account_id="ACC-1",
        type="erasure",
        scope="subject",
        channel="api",
        jurisdiction="gdpr",
        keys=["i:dana"],
    )
    await rig.worker.tick()
    rig.clock.advance(seconds=rig.settings.privacy_sweep_delay_s + 1)
    await rig.worker.tick()
    verified_at = rig.clock()

    # Every store is clean; the request waits for the bus, and says for what and until when.
    waiting = await rig.repository.requests.get(view.id)
    assert waiting.status == "in_progress" and waiting.completed_at is None
    assert waiting.progress["phase"] == "copies_expiring"
    published_until = verified_at + dt.timedelta(seconds=rig.settings.privacy_suppression_refresh_s)
    copies = {c["topic"]: _at(c["may_exist_until"]) for c in waiting.progress["bus_copies"]}
    assert copies == {
        "tapwire.events": published_until + dt.timedelta(days=8, minutes=5),
        "tapwire.events.dlq": published_until + dt.timedelta(days=23, minutes=10),
    }
    assert waiting.next_run_at == copies["tapwire.events.dlq"] == _at(waiting.progress["copies_gone_at"])
    assert waiting.next_run_at < waiting.effective_due_at
    # The identifiers are not kept while it waits.
    async with rig.control.engine.connect() as connection:
        assert (await connection.execute(select(PrivacyRequestSubjectRow))).all() == []

    # Waiting to complete inside its deadline is no reason to warn, even when the deadline is near.
    rig.clock.now = copies["tapwire.events.dlq"] + 2 * DAY
    assert waiting.effective_due_at - rig.clock() < dt.timedelta(days=7)
    assert await rig.worker.refresh_deadline_metrics() == (0, 0)

    # A second before the last copy is gone, it is still not complete, however often the worker looks.
    rig.clock.now = copies["tapwire.events.dlq"] - dt.timedelta(seconds=1)
    assert await rig.worker.tick() == 0
    assert (await rig.repository.requests.get(view.id)).status == "in_progress"

    rig.clock.now = copies["tapwire.events.dlq"]
    assert await rig.worker.tick() == 1
    done = await rig.repository.requests.get(view.id)
    assert done.status == "completed" and done.completed_at == copies["tapwire.events.dlq"]
    assert done.verification is not None
    assert done.verification["bus_copies"] == waiting.progress["bus_copies"]
    assert done.verification["stores"]["warehouse.events"]["residue"] == 0
    actions = [entry["action"] for entry in await rig.repository.audit.trail(view.id)]
    assert actions.index("bus_copies_expiring") < actions.index("completed")
