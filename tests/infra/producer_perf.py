"""Kafka's own producer benchmark (``org.apache.kafka.tools.ProducerPerformance``) from the fetched jars.

It is the yardstick for the gateway: the same broker, the same durability (``acks=all``, idempotent) and the
same compression as ``KafkaBus``, driven flat out by the Java client.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from tapwire_core.bus.kafka import COMPRESSION
from tests.infra.kafka_broker import java_command

PERF_CLASS = "org.apache.kafka.tools.ProducerPerformance"
TOPIC_CLASS = "org.apache.kafka.tools.TopicCommand"

# Final summary line, e.g. "50000 records sent, 81300.8 records/sec (39.70 MB/sec), 120.51 ms avg latency,
# 401.00 ms max latency, 110 ms 50th, 300 ms 95th, 380 ms 99th, 400 ms 99.9th."
_SUMMARY = re.compile(
    r"(?P<records>\d+) records sent, (?P<rps>[\d.]+) records/sec \((?P<mbps>[\d.]+) MB/sec\), "
    r"(?P<avg>[\d.]+) ms avg latency, (?P<max>[\d.]+) ms max latency, (?P<p50>\d+) ms 50th, "
    r"(?P<p95>\d+) ms 95th, (?P<p99>\d+) ms 99th, (?P<p999>\d+) ms 99\.9th"
)


def parse_summary(output: str) -> dict[str, float]:
    """The figures of ProducerPerformance's final summary line. Raises ``ValueError`` when there is none."""
    matches = list(_SUMMARY.finditer(output))
    if not matches:
        raise ValueError(f"no ProducerPerformance summary in output:\n{output[-2000:]}")
    last = matches[-1]
    return {
        "records": float(last["records"]),
        "records_per_s": float(last["rps"]),
        "mb_per_s": float(last["mbps"]),
        "avg_ms": float(last["avg"]),
        "max_ms": float(last["max"]),
        "p50_ms": float(last["p50"]),
        "p95_ms": float(last["p95"]),
        "p99_ms": float(last["p99"]),
        "p999_ms": float(last["p999"]),
    }


def create_topic(kafka_home: Path, bootstrap: str, topic: str, partitions: int) -> None:
    result = subprocess.run(
        java_command(
            kafka_home,
            TOPIC_CLASS,
            "--bootstrap-server",
            bootstrap,
            "--create",
            "--if-not-exists",
            "--topic",
            topic,
            "--partitions",
            str(partitions),
        ),
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    if result.returncode != 0:
        raise RuntimeError(f"creating topic {topic!r} failed:\n{result.stdout}\n{result.stderr}")


def run_producer_perf(
    kafka_home: Path,
    bootstrap: str,
    topic: str,
    num_records: int,
    record_size: int,
    *,
    partitions: int = 12,
    timeout_s: float = 600.0,
) -> dict[str, float]:
    """Produce ``num_records`` records of ``record_size`` bytes as fast as possible; return the summary.

    Keys: records, records_per_s, mb_per_s, avg_ms, max_ms, p50_ms, p95_ms, p99_ms, p999_ms. The topic is
    created with ``partitions`` partitions (like the events topic) unless it exists. Raises ``RuntimeError``
    when the tool fails.
    """
    create_topic(kafka_home, bootstrap, topic, partitions)
    result = subprocess.run(
        java_command(
            kafka_home,
            PERF_CLASS,
            "--topic",
            topic,
            "--num-records",
            str(num_records),
            "--record-size",
            str(record_size),
            "--throughput",
            "-1",
            "--producer-props",
            f"bootstrap.servers={bootstrap}",
            "acks=all",
            "enable.idempotence=true",
            f"compression.type={COMPRESSION}",
            "linger.ms=5",
        ),
        capture_output=True,
        text=True,
        check=False,
        timeout=timeout_s,
    )
    if result.returncode != 0:
        raise RuntimeError(f"ProducerPerformance failed:\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}")
    return parse_summary(result.stdout)
