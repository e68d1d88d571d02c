"""A service's workers start in order, stop in reverse, and a failed start leaves nothing running."""

from __future__ import annotations

import logging

import pytest

from tapwire_services.assembly import EMBEDDED, SERVICE_SPECS, SERVICES
from tapwire_services.workers import LoaderSupervisor, Messaging, PrivacyWork, Suppressions, WorkerGroup


class Recorded:
    """A worker that writes what happens to it into a shared journal; ``fail_start`` makes its start raise."""

    def __init__(
        self, name: str, journal: list[str], *, fail_start: bool = False, fail_stop: bool = False
    ) -> None:
        self.name = name
        self.journal = journal
        self.fail_start = fail_start
        self.fail_stop = fail_stop

    async def start(self) -> None:
        if self.fail_start:
            self.journal.append(f"failed {self.name}")
            raise RuntimeError(f"{self.name} cannot start")
        self.journal.append(f"start {self.name}")

    async def stop(self) -> None:
        self.journal.append(f"stop {self.name}")
        if self.fail_stop:
            raise RuntimeError(f"{self.name} cannot stop")


async def test_workers_start_in_order_and_stop_in_reverse() -> None:
    journal: list[str] = []
    group = WorkerGroup([Recorded("a", journal), Recorded("b", journal)])
    group.add(Recorded("c", journal))
    await group.start()
    await group.stop()
    await group.stop()  # a second stop finds nothing left to stop
    assert journal == ["start a", "start b", "start c", "stop c", "stop b", "stop a"]


async def test_a_failed_start_stops_the_workers_already_started() -> None:
    journal: list[str] = []
    group = WorkerGroup(
        [Recorded("a", journal), Recorded("b", journal, fail_start=True), Recorded("c", journal)]
    )
    with pytest.raises(RuntimeError, match="b cannot start"):
        await group.start()
    assert journal == ["start a", "failed b", "stop a"]


async def test_a_failing_stop_does_not_keep_the_others_running(caplog: pytest.LogCaptureFixture) -> None:
    journal: list[str] = []
    group = WorkerGroup([Recorded("a", journal), Recorded("b", journal, fail_stop=True)])
    await group.start()
    with caplog.at_level(logging.ERROR):
        await group.stop()
    assert journal == ["start a", "start b", "stop b", "stop a"]
    assert "stopping Recorded failed" in caplog.text


def test_workers_are_added_before_the_group_starts() -> None:
    group = WorkerGroup()
    group._started.append(Recorded("a", []))
    with pytest.raises(RuntimeError):
        group.add(Recorded("b", []))


def test_each_service_runs_the_workers_of_its_job() -> None:
    assert set(SERVICE_SPECS) == set(SERVICES)
    assert SERVICE_SPECS["gateway"].workers == (Suppressions,)
    assert SERVICE_SPECS["loader"].workers == (Suppressions, LoaderSupervisor)
    assert SERVICE_SPECS["query"].workers == ()
    assert SERVICE_SPECS["messaging"].workers == (Messaging,)
    assert SERVICE_SPECS["privacy-worker"].workers == (PrivacyWork,)
    # Embedded mode runs every worker; the loader after the suppression list it filters with.
    assert EMBEDDED.workers == (Suppressions, PrivacyWork, LoaderSupervisor, Messaging)
    assert {w for spec in SERVICE_SPECS.values() for w in spec.workers} == set(EMBEDDED.workers)
