"""Gateway processes for the benchmarks: ``count`` replicas of ``tapwire serve gateway`` on one broker.

A gateway process runs its request path in Python on one core, so a deployment scales it by replicas (the
Kubernetes Deployment and its autoscaler do), not by threads. The headline figures are one process; the scaled
figure models replicas: ``count`` processes (``BENCH_GATEWAY_PROCESSES``, default one per core) sharing the
broker and the control database, the load generator's connections spread evenly over them as a Service
spreads them over pods.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.infra.kafka_broker import KafkaBroker
from tests.integration.processes import TapwireProcess


def gateway_processes_wanted() -> int:
    return int(os.environ.get("BENCH_GATEWAY_PROCESSES", str(os.cpu_count() or 1)))


@contextmanager
def gateway_processes(
    work: Path, broker: KafkaBroker, env: dict[str, str], *, name: str, count: int
) -> Iterator[list[TapwireProcess]]:
    """``count`` ready gateways on ``broker``, started together as replicas are (the first to take the
    control store's write lock migrates it, the others find it current), stopped on exit."""
    gateways: list[TapwireProcess] = []
    try:
        for number in range(count):
            process = TapwireProcess(
                ["serve", "gateway"],
                env | {"TAPWIRE_KAFKA_BOOTSTRAP": broker.bootstrap},
                work / f"{name}-{number}.log",
            ).start()
            gateways.append(process)
        for process in gateways:
            process.wait_ready()
        yield gateways
    finally:
        for process in gateways:
            process.stop()
