"""Differencing protection: a new aggregate is refused when one of its released cells differs from a cell an
earlier aggregate released by fewer than ``k`` users (but by some).

Two overlapping answers whose populations differ by a few users ("all users" and "all users except the one with
email X") give those users' figures away by subtraction. For every released cell ``a`` of the new aggregate (its
total, each released group, "other") and every released cell ``b`` of each earlier one, evaluated on today's
data, the symmetric difference is ``|a| + |b| - 2 |a ∩ b|``; ``0 < |a Δ b| < k`` refuses the new aggregate.
Cells that share no user differ by at least ``|a| ≥ k``, so only intersecting pairs are examined. An identical
cell (difference 0) is the same figure again and reveals nothing new.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Clash:
    """The first pair found too close: earlier release ``release`` (1-based in the compared order), the new
    cell and the earlier cell (``T`` total, ``O`` other, ``g<label>`` a group)."""

    release: int
    new_cell: str
    earlier_cell: str


def first_clash(rows: Sequence[dict[str, Any]], *, k: int) -> Clash | None:
    """Read ``statements.overlaps`` rows; the first pair of cells whose difference is between 1 and ``k - 1``."""
    new: dict[str, int] = {}
    earlier: dict[tuple[int, str], int] = {}
    shared: list[tuple[int, str, str, int]] = []
    for row in rows:
        release, a, b, n = int(row["rel"]), str(row["a"]), str(row["b"]), int(row["n"])
        if release == 0:
            new[a] = n
        elif not a:
            earlier[(release, b)] = n
        else:
            shared.append((release, a, b, n))
    for release, a, b, both in sorted(shared):
        difference = new.get(a, 0) + earlier.get((release, b), 0) - 2 * both
        if 0 < difference < k:
            return Clash(release, a, b)
    return None
