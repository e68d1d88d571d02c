"""CQL compile benchmark: parsing and compiling queries at the parser's limits, on this machine.

``python -m tests.bench.cql_compile`` times, for each shape of ``tests.query.shapes.AT_THE_LIMITS`` (the
deepest and the widest queries a client can send), what a count request costs before it reaches the warehouse:
``parse_query`` and ``compile_user_count``, ``RUNS`` times in a row. A shape's figure is its median (the
machine is shared: single runs catch other processes' bursts); ``cql_compile_ms_max`` is the slowest shape's
median, target < 50 ms. The last line printed is the figures as JSON.
"""

from __future__ import annotations

import datetime as dt
import gc
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import orjson

from tapwire_query.cql import CompileOptions, CqlError, compile_user_count, parse_query
from tests.query.shapes import AT_THE_LIMITS, json_depth

RUNS = int(os.environ.get("BENCH_CQL_RUNS", "41"))
TARGET_MS = 50
OPTIONS = CompileOptions(today=dt.date(2026, 2, 1))


def log(message: str) -> None:
    print(f"[bench:cql] {message}", file=sys.stderr, flush=True)


def time_shape(body: dict[str, Any]) -> tuple[list[float], int | None]:
    """Milliseconds per parse + compile, ``RUNS`` times; and the compiled SQL's size in bytes (None when the
    compiler refuses the query as too large: that refusal is timed too, it is what such a request costs)."""
    samples: list[float] = []
    size: int | None = None
    for _ in range(RUNS):
        gc.collect()  # each run pays for its own garbage, not the previous one's
        started = time.perf_counter()
        try:
            size = len(compile_user_count(parse_query(body), account_id="TAP-BENCH", options=OPTIONS).sql)
        except CqlError:
            size = None
        samples.append((time.perf_counter() - started) * 1000)
    return samples, size


def measure() -> dict[str, Any]:
    load_start = round(os.getloadavg()[0], 2)
    shapes: dict[str, dict[str, Any]] = {}
    for name, build in AT_THE_LIMITS.items():
        body = build()
        samples, size = time_shape(body)
        shapes[name] = {
            "json_depth": json_depth(body),
            "body_bytes": len(orjson.dumps(body)),
            "sql_bytes": size if size is not None else "refused (too large)",
            "median_ms": round(statistics.median(samples), 2),
            "min_ms": round(min(samples), 2),
            "max_ms": round(max(samples), 2),
        }
        log(f"{name}: {shapes[name]}")
    slowest = max(shape["median_ms"] for shape in shapes.values())
    return {
        "cql_compile_ms_max": slowest,
        "cql_compile_sql_kib_max": round(
            max(shape["sql_bytes"] for shape in shapes.values() if isinstance(shape["sql_bytes"], int)) / 1024
        ),
        "cql_compile_runs": RUNS,
        "cql_compile_load_start": load_start,
        "cql_compile_load_end": round(os.getloadavg()[0], 2),
        "cql_compile_shapes": shapes,
    }


REPORT = Path("docs/benchmarks.md")
MARKERS = ("<!-- bench:cql -->", "<!-- /bench:cql -->")


def write_report(figures: dict[str, Any]) -> None:
    """Replace the CQL compile section of docs/benchmarks.md with this run's figures."""
    lines = [
        f"Latest CQL compile benchmark: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {RUNS} runs per "
        f"shape, load average {figures['cql_compile_load_start']} at the start and "
        f"{figures['cql_compile_load_end']} at the end on {os.cpu_count()} cores.",
        "",
        "| shape | JSON depth | body bytes | SQL bytes | median ms | min ms | max ms |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, shape in figures["cql_compile_shapes"].items():
        lines.append(
            f"| {name} | {shape['json_depth']} | {shape['body_bytes']:,} | {_bytes(shape['sql_bytes'])} | "
            f"{shape['median_ms']} | {shape['min_ms']} | {shape['max_ms']} |"
        )
    slowest = figures["cql_compile_ms_max"]
    lines += [
        "",
        f"`cql_compile_ms_max` {slowest} (slowest shape's median; target < {TARGET_MS}"
        f"{'' if slowest < TARGET_MS else ', **not met**'}).",
    ]
    start, end = MARKERS
    block = f"{start}\n" + "\n".join(lines) + f"\n{end}"
    text = REPORT.read_text() if REPORT.exists() else "# Benchmarks\n"
    if start in text:
        head, _, rest = text.partition(start)
        _, _, tail = rest.partition(end)
        text = head + block + tail
    else:
        text = text.rstrip() + "\n\n## CQL compile\n\n" + block + "\n"
    REPORT.write_text(text)


def _bytes(value: Any) -> str:
    return f"{value:,}" if isinstance(value, int) else str(value)


def run_in_subprocess() -> dict[str, Any]:
    """The benchmark in a fresh process (a heap of its own, not the ingestion parts' leftovers); for
    ``make bench``. Writes its section of docs/benchmarks.md and returns the figures without the per-shape
    table."""
    import subprocess

    done = subprocess.run(
        [sys.executable, "-m", "tests.bench.cql_compile"], check=True, stdout=subprocess.PIPE, timeout=600
    )
    figures: dict[str, Any] = orjson.loads(done.stdout.decode().strip().splitlines()[-1])
    return {key: value for key, value in figures.items() if key != "cql_compile_shapes"}


def main() -> None:
    figures = measure()
    write_report(figures)
    print(orjson.dumps(figures).decode(), flush=True)


if __name__ == "__main__":
    main()
