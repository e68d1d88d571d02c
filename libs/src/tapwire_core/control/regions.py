"""The data-residency regions an account can be homed in (the CleverTap region codes)."""

from __future__ import annotations

from typing import Literal, TypeGuard, get_args

Region = Literal["eu1", "in1", "sg1", "us1", "aps3", "mec1"]
REGIONS: tuple[Region, ...] = get_args(Region)


def is_region(value: str) -> TypeGuard[Region]:
    """True when ``value`` is one of :data:`REGIONS` (exact, lower case)."""
    return value in REGIONS
