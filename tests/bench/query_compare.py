"""The query benchmark's comparisons, for ``make bench``: the live account against the optimised table, and how
each family's cost grows with the data.

- ``live()`` (part ``query-live``): ``tests.bench.query --merged`` on the optimised 10M table (5 % of users
  merged, as in the live run) then ``tests.bench.query_live``, each in its own process, one after the other.
  ``query_live_count_p95_max_ms`` is the slowest count family's p95 on the live table (target < 500);
  ``query_live_vs_optimised_ratio`` the worst count family's live p50 / optimised p50 (target ≤ 1.3).
- ``growth(sizes)`` (parts ``query-growth``: 1M and 10M events; ``query-growth-30m``: 1M, 10M and 30M): the
  query benchmark at each size (users a tenth of the events; datasets cached as the query benchmark caches
  them), and each family's slope between consecutive sizes, log(p50 ratio) / log(size ratio): 1 grows as the
  data does, above 1 faster (``query_growth_slope_max``, the worst family and step).

Both write their section of docs/benchmarks.md.
"""

from __future__ import annotations

import itertools
import math
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import orjson

REPORT = Path("docs/benchmarks.md")
LIVE_P95_TARGET_MS = 500
LIVE_RATIO_TARGET = 1.3


def _figures(module: str, *args: str) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, "-m", module, *args], check=True, stdout=subprocess.PIPE, timeout=3 * 3600
    )
    figures: dict[str, Any] = orjson.loads(done.stdout.decode().strip().splitlines()[-1])
    return figures


def live(events: int = 10_000_000, users: int = 1_000_000) -> dict[str, Any]:
    size = ["--events", str(events), "--users", str(users)]
    optimised = _figures("tests.bench.query", *size, "--merged", str(users // 20))
    current = _figures("tests.bench.query_live", *size)
    rows = []
    for name, family in current["query_live_families"].items():
        reference = optimised["query_families"][name]
        ratio = family["median_ms"] / reference["p50_ms"]
        rows.append((name, family, reference, ratio))
    counts = [(family, ratio) for _, family, _, ratio in rows if family["count"]]
    figures = {
        "query_live_count_p95_max_ms": max(family["p95_ms"] for family, _ in counts),
        "query_live_vs_optimised_ratio": round(max(ratio for _, ratio in counts), 2),
        "query_live_parts_start": current["query_live_parts_start"],
        "query_live_parts_end": current["query_live_parts_end"],
        "query_live_upload_events_per_s": current["query_live_upload_events_per_s"],
        "query_optimised_merged_count_p95_max_ms": optimised["query_count_p95_max_ms"],
    }
    _write_section("query-live", _live_lines(figures, rows, current, optimised))
    return figures


def _live_lines(
    figures: dict[str, Any], rows: list[tuple[str, Any, Any, float]], current: Any, optimised: Any
) -> list[str]:
    lines = [
        f"Latest live-account run: {_stamp()}, {optimised['query_events']:,} events, "
        f"{current['query_live_merged_identities']:,} merged identities in both tables; live table "
        f"{figures['query_live_parts_start']} active parts at the start of the timing and "
        f"{figures['query_live_parts_end']} at the end, uploads at {figures['query_live_upload_events_per_s']:,} "
        f"events/s meanwhile. Load average {optimised['query_load_start']} → {optimised['query_load_end']} "
        f"(optimised), {current['query_live_load_start']} → {current['query_live_load_end']} (live).",
        "",
        "| family | live p50 ms | live p95 ms | optimised p50 ms | optimised p95 ms | live / optimised (p50) |",
        "|---|---|---|---|---|---|",
    ]
    for name, family, reference, ratio in rows:
        over = family["count"] and family["p95_ms"] >= LIVE_P95_TARGET_MS
        flag = " **over**" if family["count"] and ratio > LIVE_RATIO_TARGET else ""
        lines.append(
            f"| {name} | {family['p50_ms']} | {family['p95_ms']}{' **over 500**' if over else ''} | "
            f"{reference['p50_ms']} | {reference['p95_ms']} | {ratio:.2f}{flag} |"
        )
    lines += [
        "",
        f"`query_live_count_p95_max_ms` {figures['query_live_count_p95_max_ms']} (target < {LIVE_P95_TARGET_MS}), "
        f"`query_live_vs_optimised_ratio` {figures['query_live_vs_optimised_ratio']} (worst count family; target "
        f"≤ {LIVE_RATIO_TARGET}).",
    ]
    return lines


def growth(sizes: tuple[int, ...]) -> dict[str, Any]:
    runs = {
        size: _figures("tests.bench.query", "--events", str(size), "--users", str(size // 10), "--no-report")
        for size in sizes
    }
    names = list(runs[sizes[0]]["query_families"])
    slopes = {
        name: growth_slopes(sizes, [runs[size]["query_families"][name]["p50_ms"] for size in sizes])
        for name in names
    }
    figures: dict[str, Any] = {
        f"query_count_p95_max_ms_{_label(size)}": runs[size]["query_count_p95_max_ms"] for size in sizes
    }
    figures["query_growth_slope_max"] = round(max(max(s) for s in slopes.values()), 2)
    _write_section("query-growth", _growth_lines(sizes, runs, slopes))
    return figures


def growth_slopes(sizes: tuple[int, ...], costs: list[float]) -> list[float]:
    """Between each two consecutive sizes, log(cost ratio) / log(size ratio): 1 when the cost grows as the
    data does, 0 when it does not grow, 2 when it grows as the square."""
    points = list(zip(sizes, costs, strict=True))
    return [math.log(b / a) / math.log(y / x) for (x, a), (y, b) in itertools.pairwise(points)]


def _label(size: int) -> str:
    return f"{size // 1_000_000}m" if size % 1_000_000 == 0 else str(size)


def _growth_lines(sizes: tuple[int, ...], runs: dict[int, Any], slopes: dict[str, list[float]]) -> list[str]:
    loads = ", ".join(
        f"{_label(size).upper()}: {runs[size]['query_load_start']} → {runs[size]['query_load_end']}"
        for size in sizes
    )
    steps = [f"slope {_label(a).upper()}→{_label(b).upper()}" for a, b in itertools.pairwise(sizes)]
    lines = [
        f"Latest cost-growth run: {_stamp()}; load average {loads}.",
        "",
        "| family | "
        + " | ".join(f"{_label(s).upper()} p50 / p95 ms" for s in sizes)
        + " | "
        + " | ".join(steps)
        + " |",
        "|---|" + "---|" * (len(sizes) + len(steps)),
    ]
    for name, family_slopes in slopes.items():
        cells = [
            f"{runs[s]['query_families'][name]['p50_ms']} / {runs[s]['query_families'][name]['p95_ms']}"
            for s in sizes
        ]
        marks = [f"{v:.2f}{' **faster than the data**' if v > 1.1 else ''}" for v in family_slopes]
        lines.append(f"| {name} | " + " | ".join(cells + marks) + " |")
    return lines


def _stamp() -> str:
    return f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} on {os.cpu_count()} cores"


def _write_section(name: str, lines: list[str]) -> None:
    start, end = f"<!-- bench:{name} -->", f"<!-- /bench:{name} -->"
    block = f"{start}\n" + "\n".join(lines) + f"\n{end}"
    text = REPORT.read_text() if REPORT.exists() else "# Benchmarks\n"
    if start in text:
        head, _, rest = text.partition(start)
        _, _, tail = rest.partition(end)
        text = head + block + tail
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    REPORT.write_text(text)
