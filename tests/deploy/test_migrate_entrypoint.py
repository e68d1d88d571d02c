"""deploy/docker/migrate.py, the migration Job's and init containers' command, on real PostgreSQL and ClickHouse."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.deploy.manifests import ROOT

MIGRATE = ROOT / "deploy" / "docker" / "migrate.py"

pytestmark = pytest.mark.integration


def _run(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("TAPWIRE_")}
    return subprocess.run(
        [sys.executable, str(MIGRATE), *args],
        env=base | env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_wait_reports_pending_then_apply_migrates_then_wait_succeeds(
    fresh_postgres_url: str, clickhouse_database_url: str
) -> None:
    env = {"TAPWIRE_DATABASE_URL": fresh_postgres_url, "TAPWIRE_CLICKHOUSE_URL": clickhouse_database_url}

    pending = _run("wait", "--timeout-s", "0", env=env)
    assert pending.returncode == 1, pending.stderr

    applied = _run("apply", "--timeout-s", "0", env=env)
    assert applied.returncode == 0, applied.stderr
    assert "0001_initial" in applied.stderr

    assert _run("wait", "--timeout-s", "0", env=env).returncode == 0
    again = _run("apply", "--timeout-s", "0", env=env)
    assert again.returncode == 0 and "applied now: none" in again.stderr


def test_control_plane_only_for_services_without_clickhouse(fresh_postgres_url: str) -> None:
    env = {"TAPWIRE_DATABASE_URL": fresh_postgres_url}
    assert _run("wait", "--timeout-s", "0", env=env).returncode == 1
    assert _run("apply", "--timeout-s", "0", env=env).returncode == 0
    assert _run("wait", "--timeout-s", "0", env=env).returncode == 0


def test_missing_database_url_is_a_configuration_error() -> None:
    result = _run("apply", env={})
    assert result.returncode == 2
    assert "TAPWIRE_DATABASE_URL is required" in result.stderr


def test_unreachable_database_gives_up_at_the_deadline() -> None:
    result = _run(
        "apply", "--timeout-s", "0", env={"TAPWIRE_DATABASE_URL": "postgresql://u:p@127.0.0.1:9/db"}
    )
    assert result.returncode == 1
    assert "gave up" in result.stderr
