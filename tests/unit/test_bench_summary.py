"""The benchmark report's opening table and the query cost-growth slope."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from tests.bench import summary
from tests.bench.query_compare import growth_slopes


def _row(report: Path, label: str) -> list[str]:
    line = next(line for line in report.read_text().splitlines() if line.startswith(f"| {label} |"))
    return [cell.strip() for cell in line.strip("|").split("|")]


def test_each_figure_keeps_its_latest_run_and_the_table_opens_the_report(tmp_path: Path) -> None:
    store, report = tmp_path / "latest.json", tmp_path / "benchmarks.md"
    report.write_text("# Benchmarks\n\nHistory.\n")
    summary.record(
        {"loader_rows_per_s": 150_000, "raw_insert_rows_per_s": 200_000}, 1.25, store=store, report=report
    )
    summary.record(
        {"embedded_events_per_s": 40_000, "query_live": {"nested": 1}}, 2.0, store=store, report=report
    )

    latest = orjson.loads(store.read_bytes())
    assert latest["loader_rows_per_s"]["value"] == 150_000
    assert latest["loader_rows_per_s"]["load"] == 1.2
    assert latest["embedded_events_per_s"]["load"] == 2.0
    assert "query_live" not in latest
    text = report.read_text()
    assert text.startswith("# Benchmarks\n\n<!-- bench:summary -->\n| figure |")
    assert text.rstrip().endswith("History.")
    loader = _row(report, "Loader, 1 process (rows/s)")
    assert loader[1:5] == [
        "150,000",
        "raw chDB insert of the same JSON, batches and table (rows/s)",
        "200,000",
        "0.750",
    ]


def test_a_ratio_is_never_taken_across_two_runs(tmp_path: Path) -> None:
    store, report = tmp_path / "latest.json", tmp_path / "benchmarks.md"
    summary.record({"loader_rows_per_s_accounts_1": 100_000}, 1.0, store=store, report=report)
    latest = orjson.loads(store.read_bytes())
    latest["loader_rows_per_s_accounts_1"]["at"] = "2026-01-01 00:00 UTC"
    store.write_bytes(orjson.dumps(latest))
    summary.record({"loader_rows_per_s_accounts_16": 90_000}, 1.0, store=store, report=report)
    assert _row(report, "Loader, 16 accounts (rows/s)")[4] == "—"
    summary.record(
        {"loader_rows_per_s_accounts_1": 100_000, "loader_rows_per_s_accounts_16": 90_000},
        1.0,
        store=store,
        report=report,
    )
    assert _row(report, "Loader, 16 accounts (rows/s)")[4] == "0.900"


def test_the_run_s_own_ratio_wins_over_the_computed_one(tmp_path: Path) -> None:
    store, report = tmp_path / "latest.json", tmp_path / "benchmarks.md"
    figures = {
        "loader_rows_per_s": 150_000,
        "raw_insert_rows_per_s": 200_000,
        "loader_vs_raw_insert_ratio": 0.81,
    }
    summary.record(figures, 1.0, store=store, report=report)
    assert _row(report, "Loader, 1 process (rows/s)")[4] == "0.81"


def test_growth_slopes() -> None:
    assert growth_slopes((1_000_000, 10_000_000), [10.0, 100.0]) == pytest.approx([1.0])
    assert growth_slopes((1_000_000, 10_000_000, 30_000_000), [50.0, 50.0, 450.0]) == pytest.approx(
        [0.0, 2.0]
    )
