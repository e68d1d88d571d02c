"""The service processes' collector settings, checked in a fresh interpreter (they are process-wide)."""

from __future__ import annotations

import subprocess
import sys

_PROGRAM = """
import gc
from tapwire_core.gc_tuning import YOUNG_THRESHOLD, tune_for_throughput

before = gc.get_threshold()
tune_for_throughput()
frozen = gc.get_freeze_count()
tune_for_throughput()  # a second call changes nothing: nothing more is frozen
print(before[0], gc.get_threshold()[0], frozen > 1000, gc.get_freeze_count() == frozen, YOUNG_THRESHOLD)
"""


def test_tuning_freezes_what_is_alive_raises_the_young_threshold_and_is_idempotent() -> None:
    done = subprocess.run([sys.executable, "-c", _PROGRAM], capture_output=True, text=True, check=True)
    before, after, froze, unchanged, young = done.stdout.split()
    assert before == "700"
    assert after == young == "20000"
    assert froze == "True"
    assert unchanged == "True"
