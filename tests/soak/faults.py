"""The soak's faults, in turn: each starts at a point of the run, lasts a while, and is then repaired.

Repairs are what the platform does by itself: a crashed broker, database or ClickHouse server comes back, and a
SIGKILLed pod is started again by its supervisor (Kubernetes). The services that were not killed are never
restarted: they must recover on their own.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass

import httpx

from tests.soak.cluster import SoakCluster
from tests.soak.traffic import HANG_S


@dataclass(frozen=True)
class Fault:
    name: str
    at_s: float
    """Seconds after the traffic started."""
    lasts_s: float
    """Seconds between the fault and its repair."""
    inflict: Callable[[SoakCluster], None]
    repair: Callable[[SoakCluster], None]
    probe: Callable[[SoakCluster], list[Answer]] | None = None
    """Requests made while the fault is in force, besides the steady traffic."""


def _kill_gateway(cluster: SoakCluster) -> None:
    cluster.gateways[0].kill()


def _restart_gateway(cluster: SoakCluster) -> None:
    cluster.gateways[0].start()  # its readiness is awaited at the end; clients meanwhile use the other


def _kill_loader(cluster: SoakCluster) -> None:
    cluster.loaders[0].kill()


def _restart_loader(cluster: SoakCluster) -> None:
    cluster.loaders[0].start()


Answer = tuple[str, str]
"""A probe's outcome: the status (or ``connection:<error>``) and its ``Retry-After`` header ("" if none)."""


def first_requests(cluster: SoakCluster) -> list[Answer]:
    """An upload to each gateway from an account that never sent one: no credential of it is cached, so the
    gateway must ask the control store."""
    answers = []
    for gateway in cluster.gateways:
        account, passcode = cluster.fresh_accounts.pop()
        record = {"type": "event", "identity": "probe", "ts": int(time.time()), "evtName": "Probe"}
        try:
            response = httpx.post(
                f"{gateway.url}/1/upload",
                headers={"X-CleverTap-Account-Id": account, "X-CleverTap-Passcode": passcode},
                json={"d": [record]},
                timeout=HANG_S,
            )
        except httpx.TimeoutException:
            answers.append(("hang", ""))
        except httpx.TransportError as exc:
            answers.append((f"connection:{type(exc).__name__}", ""))
        else:
            answers.append((str(response.status_code), response.headers.get("retry-after", "")))
    return answers


def schedule(scale: float, *, clickhouse_down_s: float) -> list[Fault]:
    """The faults of a run whose phases are ``scale`` times the five-minute run's (which has ``scale`` 1)."""

    def at(seconds: float) -> float:
        return seconds * scale

    return [
        Fault("kafka_killed", at(20), at(15), lambda c: c.kafka.kill(), lambda c: c.kafka.start()),
        Fault("clickhouse_down", at(55), clickhouse_down_s, lambda c: c.rig.kill(), lambda c: c.rig.start()),
        Fault(
            "postgres_restart",
            at(135),
            max(at(10), 2.0),
            lambda c: c.postgres.stop(),
            lambda c: c.postgres.start(port=c.postgres.port),
            probe=first_requests,
        ),
        Fault("loader_killed", at(165), at(10), _kill_loader, _restart_loader),
        Fault("gateway_killed", at(200), at(10), _kill_gateway, _restart_gateway),
    ]


class FaultRunner:
    """Inflicts and repairs the faults on time; ``current`` names the fault in force, or ``after_<fault>`` from
    its repair until the next one (services killed by a fault may still be starting then)."""

    def __init__(
        self, cluster: SoakCluster, faults: list[Fault], record: Callable[[str, Answer], None]
    ) -> None:
        self._cluster = cluster
        self._faults = faults
        self._record = record
        self.current = "steady"
        self.timeline: list[dict[str, object]] = []

    async def run(self, started: float) -> None:
        for fault in self._faults:
            await asyncio.sleep(max(0.0, started + fault.at_s - time.monotonic()))
            self.current = fault.name
            began = time.monotonic()
            await asyncio.to_thread(fault.inflict, self._cluster)
            if fault.probe is not None:
                for answer in await asyncio.to_thread(fault.probe, self._cluster):
                    self._record(f"{fault.name}_first_request", answer)
            await asyncio.sleep(max(0.0, began + fault.lasts_s - time.monotonic()))
            repair_began = time.monotonic()
            await asyncio.to_thread(fault.repair, self._cluster)
            self.current = f"after_{fault.name}"
            self.timeline.append(
                {
                    "fault": fault.name,
                    "at_s": round(began - started, 1),
                    "down_s": round(repair_began - began, 1),
                    "repair_s": round(time.monotonic() - repair_began, 1),
                }
            )
