"""The compiler's work grows linearly with the query: counted as calls into the compiler, never timed."""

from __future__ import annotations

import datetime as dt
import sys
from collections.abc import Callable
from types import FrameType
from typing import Any

import pytest

from tapwire_query.cql import CompileOptions, CqlError, compile_user_count, compile_user_set, parse_query
from tapwire_query.cql import compile as compile_module
from tapwire_query.cql.compile import MAX_SQL_BYTES
from tests.query.shapes import (
    AT_THE_LIMITS,
    DID,
    PROFILE,
    events_tree,
    mixed,
    negations,
    nested,
    profile_chain,
)

OPTIONS = CompileOptions(today=dt.date(2026, 2, 1), snapshot_ms=1_770_000_000_000)


def all_of_profile_and_deeper(depth: int) -> dict[str, Any]:
    return nested(profile_chain, PROFILE, depth)


def alternating(depth: int) -> dict[str, Any]:
    return nested(mixed, DID, depth)


def events_only(depth: int) -> dict[str, Any]:
    return nested(events_tree, DID, depth)


def nots(depth: int) -> dict[str, Any]:
    return nested(negations, PROFILE, depth)


def compiler_calls(body: dict[str, Any]) -> int:
    """How many Python calls the compiler module makes while compiling ``body`` (both statement kinds)."""
    query = parse_query(body)
    code_file = compile_module.__file__
    calls = 0

    def count(frame: FrameType, event: str, arg: object) -> None:
        nonlocal calls
        if event == "call" and frame.f_code.co_filename == code_file:
            calls += 1

    previous = sys.getprofile()
    sys.setprofile(count)
    try:
        compile_user_set(query, account_id="A", options=OPTIONS)
        compile_user_count(query, account_id="A", options=OPTIONS)
    finally:
        sys.setprofile(previous)
    return calls


@pytest.mark.parametrize("shape", [all_of_profile_and_deeper, alternating, events_only, nots])
def test_compiler_work_grows_linearly_with_nesting(shape: Callable[[int], dict[str, Any]]) -> None:
    # Each doubling of the depth doubles the query; linear work at most doubles too (plus a constant for
    # the statement around it). The exponential compiler made 2**8 times more calls from depth 8 to 16.
    previous = compiler_calls(shape(4))
    for depth in (8, 16, 32, 64):
        calls = compiler_calls(shape(depth))
        assert calls <= 2.2 * previous + 50, (
            f"depth {depth}: {calls} calls after {previous} at half the depth"
        )
        previous = calls


@pytest.mark.parametrize("name", sorted(AT_THE_LIMITS))
def test_queries_at_the_limits_compile_or_are_refused_as_too_large(name: str) -> None:
    query = parse_query(AT_THE_LIMITS[name]())
    try:
        compiled = compile_user_count(query, account_id="A", options=OPTIONS)
    except CqlError as refused:
        assert "too large once compiled" in str(refused) and "geo" in name
    else:
        assert compiled.sql.startswith("WITH ") and len(compiled.sql) <= MAX_SQL_BYTES
