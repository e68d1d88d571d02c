"""The table docs/benchmarks.md opens with: every headline figure beside its physical reference and the ratio.

Each ``make bench`` run, whatever parts ``BENCH_ONLY`` picked, records the figures it measured in
``docs/benchmarks-latest.json`` (value, when, the load average at the start of the run) and redraws the table
from it, so the table always holds the latest measurement of every figure, each with its own date and load:
a figure and its reference come from the same run, since one part measures both.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

LATEST = Path("docs/benchmarks-latest.json")
REPORT = Path("docs/benchmarks.md")
MARKERS = ("<!-- bench:summary -->", "<!-- /bench:summary -->")


@dataclass(frozen=True)
class Row:
    """A headline figure; ``reference`` is what it is measured against in the same run and ``ratio`` the key of
    their ratio (computed as figure / reference when the run does not report one)."""

    label: str
    figure: str
    reference_label: str = ""
    reference: str = ""
    ratio: str = ""
    target: str = ""


ROWS = (
    Row(
        "Gateway, 1 process (events/s)",
        "gateway_events_per_s",
        "Kafka ProducerPerformance (records/s)",
        "kafka_perf_events_per_s",
        "gateway_vs_kafka_ratio",
        "ratio ≥ 0.5",
    ),
    Row(
        "Gateway, 2 processes (events/s)",
        "gateway_scaled_events_per_s",
        "twice 1 process (ratio: scaling efficiency)",
        "",
        "gateway_scaling_efficiency",
        "ratio ≥ 0.8",
    ),
    Row(
        "Segment /v1/batch, 1 gateway (events/s)",
        "segment_batch_events_per_s",
        "Kafka ProducerPerformance",
        "kafka_perf_events_per_s",
    ),
    Row(
        "Loader, 1 process (rows/s)",
        "loader_rows_per_s",
        "raw chDB insert of the same JSON, batches and table (rows/s)",
        "raw_insert_rows_per_s",
        "loader_vs_raw_insert_ratio",
        "ratio ≥ 0.8",
    ),
    Row(
        "Loader, 2 processes, distributed (rows/s)",
        "loader_scaled_rows_per_s",
        "1 process, distributed (rows/s; ratio: 2 processes / twice 1)",
        "loader_distributed_rows_per_s",
        "loader_scaling_efficiency",
    ),
    Row(
        "Loader, 4 accounts (rows/s)",
        "loader_rows_per_s_accounts_4",
        "1 account",
        "loader_rows_per_s_accounts_1",
    ),
    Row(
        "Loader, 16 accounts (rows/s)",
        "loader_rows_per_s_accounts_16",
        "1 account",
        "loader_rows_per_s_accounts_1",
    ),
    Row(
        "Gateway, 1 process, 4 accounts (events/s)",
        "gateway_events_per_s_accounts_4",
        "1 account",
        "gateway_events_per_s_accounts_1",
    ),
    Row(
        "Gateway, 1 process, 16 accounts (events/s)",
        "gateway_events_per_s_accounts_16",
        "1 account",
        "gateway_events_per_s_accounts_1",
    ),
    Row("Embedded suite (events/s)", "embedded_events_per_s", target="≥ 20,000"),
    Row(
        "Queries, optimised 10M table: slowest count family p95 (ms)",
        "query_count_p95_max_ms",
        "hand-written SQL (worst family, p50)",
        "",
        "query_vs_handwritten_ratio",
        "< 500 ms; ratio ≤ 1.5",
    ),
    Row(
        "Queries, live 10M account: slowest count family p95 (ms)",
        "query_live_count_p95_max_ms",
        "optimised table, same merges (slowest count family p95, ms; ratio: worst family p50)",
        "query_optimised_merged_count_p95_max_ms",
        "query_live_vs_optimised_ratio",
        "< 500 ms; ratio ≤ 1.3",
    ),
    Row("Query cost growth, worst family slope (1 = as the data)", "query_growth_slope_max", target="≤ 1"),
    Row("Web SDK JSONP, 1 gateway (requests/s)", "websdk_requests_per_s", target="≥ 5,000"),
)


def record(figures: dict[str, Any], load: float, *, store: Path = LATEST, report: Path = REPORT) -> None:
    """Keep this run's numeric figures in ``store`` as the latest of each, then redraw ``report``'s table."""
    latest: dict[str, Any] = orjson.loads(store.read_bytes()) if store.exists() else {}
    stamp = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    for key, value in figures.items():
        if isinstance(value, int | float) and not isinstance(value, bool):
            latest[key] = {"value": value, "at": stamp, "load": round(load, 1)}
    store.write_bytes(orjson.dumps(latest, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS) + b"\n")
    redraw(latest, report)


def _cell(latest: dict[str, Any], key: str) -> str:
    entry = latest.get(key)
    return "—" if entry is None else f"{entry['value']:,}"


def _ratio(latest: dict[str, Any], row: Row) -> str:
    if row.ratio and row.ratio in latest:
        return str(latest[row.ratio]["value"])
    figure, reference = latest.get(row.figure), latest.get(row.reference) if row.reference else None
    if figure is None or reference is None or not reference["value"] or figure["at"] != reference["at"]:
        return "—"
    return f"{figure['value'] / reference['value']:.3f}"


def lines(latest: dict[str, Any]) -> list[str]:
    table = [
        "| figure | value | reference (same run) | reference value | ratio | target | measured (load average) |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in ROWS:
        entry = latest.get(row.figure)
        when = "not measured yet" if entry is None else f"{entry['at']} ({entry['load']})"
        table.append(
            f"| {row.label} | {_cell(latest, row.figure)} | {row.reference_label} | "
            f"{_cell(latest, row.reference) if row.reference else ''} | {_ratio(latest, row)} | {row.target} | {when} |"
        )
    return table


def redraw(latest: dict[str, Any], report: Path = REPORT) -> None:
    """The table at the top of ``report``, under its title (the history follows it)."""
    start, end = MARKERS
    block = "\n".join([start, *lines(latest), end])
    text = report.read_text() if report.exists() else "# Benchmarks\n"
    if start in text:
        head, _, rest = text.partition(start)
        _, _, tail = rest.partition(end)
        text = head + block + tail
    else:
        title, _, rest = text.partition("\n")
        text = f"{title}\n\n{block}\n{rest}"
    report.write_text(text)


def load_average() -> float:
    return os.getloadavg()[0]
