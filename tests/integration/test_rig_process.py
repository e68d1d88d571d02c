"""The ClickHouse HTTP rig's process, as the suite and the soak start it."""

from __future__ import annotations

import os
from io import BufferedReader
from pathlib import Path

import pytest

from tests.infra.clickhouse import rig_statement, running_rig

pytestmark = pytest.mark.integration


def test_the_rig_starts_from_a_process_holding_more_than_a_thousand_files(tmp_path: Path) -> None:
    """Late in the whole suite the test process holds over 1,024 descriptors, so the rig's pipe gets a number
    ``select()`` cannot watch; the soak starts its rig then."""
    held: list[BufferedReader] = []
    try:
        while not held or held[-1].fileno() < 1100:
            held.append(open(os.devnull, "rb"))  # noqa: SIM115 - kept open on purpose, closed below
        with running_rig(tmp_path) as url:
            rig_statement(url, "SELECT 1")
    finally:
        for file in held:
            file.close()
