"""The soak with faults: steady uploads through two gateways while Kafka, ClickHouse, PostgreSQL, a loader and a
gateway fail in turn; then every acknowledged record is looked for in ClickHouse and in the dead-letter topic.

    python -m tests.soak.run [--seconds 300] [--clickhouse-down-s 60] [--keep-logs DIR]

The last line printed is JSON: ``soak_acked`` (records a gateway answered 200 for), ``soak_stored`` (of those,
found in ClickHouse), ``soak_lost``, ``soak_duplicates`` (events stored more than once after deduplication),
``soak_5xx_other_than_503``, and the rest of what was seen (answers per fault, hangs, missing Retry-After,
acknowledged records in the dead-letter topic, services not ready at the end without a restart). Exit status 0
when every promise held.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import clickhouse_connect

from tapwire_core.bus.kafka import KafkaBus
from tapwire_core.envelope import decode_stored
from tapwire_core.envelope_packs import decode_pack, is_pack
from tapwire_core.settings import Settings
from tests.soak.cluster import ACCOUNT, DATABASE, PASSCODE, SoakCluster, running_cluster
from tests.soak.faults import FaultRunner, schedule
from tests.soak.traffic import Outcomes, Traffic

FULL_RUN_S = 300.0


@dataclass(frozen=True)
class SoakPlan:
    seconds: float
    clickhouse_down_s: float
    drain_s: float = 180.0

    @property
    def scale(self) -> float:
        return self.seconds / FULL_RUN_S


def stored_counts(cluster: SoakCluster, run: str) -> tuple[dict[str, int], int]:
    """Rows per event id of this run after deduplication (``FINAL``), and rows before it."""
    client = clickhouse_connect.get_client(
        host="127.0.0.1", port=cluster.rig.port, database=DATABASE, query_retries=2
    )
    try:
        final = client.query(
            "SELECT event_id, count() AS n FROM events FINAL WHERE account_id = {a:String} "
            "AND startsWith(event_id, {run:String}) GROUP BY event_id",
            parameters={"a": ACCOUNT, "run": f"{run}-"},
        )
        raw = client.query(
            "SELECT count() FROM events WHERE account_id = {a:String} AND startsWith(event_id, {run:String})",
            parameters={"a": ACCOUNT, "run": f"{run}-"},
        )
        return {row[0]: row[1] for row in final.result_rows}, int(raw.result_rows[0][0])
    finally:
        client.close()


async def dead_lettered_ids(cluster: SoakCluster) -> set[str]:
    """Event ids of every record in the dead-letter topic."""
    settings = Settings()
    bus = KafkaBus(cluster.kafka.bootstrap)
    await bus.start()
    ids: set[str] = set()
    try:
        consumer = bus.consumer([settings.dead_letter_topic], f"soak-dlq-{uuid.uuid4().hex[:6]}")
        await consumer.start()
        try:
            while batch := await consumer.fetch(max_records=1000, timeout_s=3.0):
                for record in batch:
                    try:
                        members = (
                            decode_pack(record.value)
                            if is_pack(record.value)
                            else [decode_stored(record.value)]
                        )
                    except Exception:  # an undecodable dead letter names no event id we could have acked
                        continue
                    ids.update(member.event_id for member in members)
        finally:
            await consumer.close()
    finally:
        await bus.close()
    return ids


async def drain(cluster: SoakCluster, run: str, acked: set[str], drain_s: float) -> float:
    """Wait until every acknowledged record is stored or ``drain_s`` passed; the seconds it took."""
    started = time.monotonic()
    while time.monotonic() - started < drain_s:
        found, _ = await asyncio.to_thread(stored_counts, cluster, run)
        if acked <= found.keys():
            break
        await asyncio.sleep(2.0)
    return time.monotonic() - started


async def soak(cluster: SoakCluster, plan: SoakPlan) -> dict[str, Any]:
    run = f"soak{uuid.uuid4().hex[:8]}"
    outcomes = Outcomes()
    faults = FaultRunner(
        cluster, schedule(plan.scale, clickhouse_down_s=plan.clickhouse_down_s), outcomes.record_answer
    )
    traffic = Traffic(
        outcomes,
        lambda: [gateway.url for gateway in cluster.gateways],
        {"X-CleverTap-Account-Id": ACCOUNT, "X-CleverTap-Passcode": PASSCODE},
        run=run,
        fault=lambda: faults.current,
    )
    started = time.monotonic()
    sending = asyncio.create_task(traffic.run())
    await faults.run(started)
    await asyncio.sleep(max(0.0, started + plan.seconds - time.monotonic()))
    traffic.stop()
    await sending
    traffic_s = time.monotonic() - started

    drained_s = await drain(cluster, run, outcomes.acked, plan.drain_s)
    found, raw_rows = await asyncio.to_thread(stored_counts, cluster, run)
    dead = await dead_lettered_ids(cluster)
    acked = outcomes.acked
    stored = acked & found.keys()
    return {
        "soak_startup_s": round(cluster.startup_s, 1),
        "soak_seconds": round(traffic_s, 1),
        "soak_drain_s": round(drained_s, 1),
        "soak_requests": sum(outcomes.statuses.values()),
        "soak_statuses": dict(outcomes.statuses),
        "soak_by_fault": {fault: dict(counts) for fault, counts in outcomes.by_fault.items()},
        "soak_faults": faults.timeline,
        "soak_hangs": outcomes.hangs,
        "soak_missing_retry_after": outcomes.missing_retry_after,
        "soak_unexpected": outcomes.unexpected[:10],
        "soak_dead_lettered_acked": len(acked & dead),
        # The killed services were started again as their supervisor would; none is restarted by hand.
        "soak_not_ready_at_end": await asyncio.to_thread(cluster.not_ready, 120.0),
        "soak_raw_rows": raw_rows,
        "soak_acked": len(acked),
        "soak_stored": len(stored),
        "soak_lost": len(acked - found.keys()),
        "soak_duplicates": sum(n - 1 for n in found.values() if n > 1),
        "soak_5xx_other_than_503": outcomes.other_5xx,
    }


def held(figures: dict[str, Any]) -> list[str]:
    """The promises a soak's figures break (empty when all held)."""
    broken = []
    for key in (
        "soak_lost",
        "soak_duplicates",
        "soak_5xx_other_than_503",
        "soak_hangs",
        "soak_missing_retry_after",
        "soak_dead_lettered_acked",
    ):
        if figures[key]:
            broken.append(f"{key} = {figures[key]}")
    if figures["soak_not_ready_at_end"]:
        broken.append(f"not ready without a restart: {figures['soak_not_ready_at_end']}")
    if figures["soak_unexpected"]:
        broken.append(f"unexpected answers: {figures['soak_unexpected']}")
    if not figures["soak_acked"]:
        broken.append("nothing was acknowledged")
    return broken


def run_soak(plan: SoakPlan, *, keep_logs: Path | None = None) -> dict[str, Any]:
    with running_cluster() as cluster:
        try:
            return asyncio.run(soak(cluster, plan))
        finally:
            if keep_logs is not None:
                keep_logs.mkdir(parents=True, exist_ok=True)
                for log in cluster.workdir.glob("*.log"):
                    shutil.copy(log, keep_logs / log.name)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=FULL_RUN_S, help="traffic duration")
    parser.add_argument("--clickhouse-down-s", type=float, default=60.0, help="how long ClickHouse is down")
    parser.add_argument("--keep-logs", type=Path, help="copy every service's log here")
    args = parser.parse_args()
    figures = run_soak(SoakPlan(args.seconds, args.clickhouse_down_s), keep_logs=args.keep_logs)
    broken = held(figures)
    for line in broken:
        print(f"BROKEN: {line}", file=sys.stderr)
    print(json.dumps(figures), flush=True)
    sys.exit(1 if broken else 0)


if __name__ == "__main__":
    main()
