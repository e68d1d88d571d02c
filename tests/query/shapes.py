"""Worst-case query shapes at the parser's limits, shared by the compiler's unit tests and its benchmark.

Each builder nests one kind of level as deep as ``MAX_NESTING`` allows (or as wide as ``MAX_OBJECTS`` allows),
so the figures and tests speak of queries exactly at the limits a client can reach.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tapwire_query.cql.parse import MAX_NESTING, MAX_OBJECTS

PROFILE: dict[str, Any] = {"profile": {"name": "plan", "value": "pro"}}
DID: dict[str, Any] = {"did": {"event_name": "App Launched", "last_days": 7}}
Level = Callable[[dict[str, Any], int], dict[str, Any]]


def json_depth(value: Any) -> int:
    if isinstance(value, dict):
        return 1 + max((json_depth(v) for v in value.values()), default=0)
    if isinstance(value, list):
        return 1 + max((json_depth(v) for v in value), default=0)
    return 0


def nested(level: Level, leaf: dict[str, Any], depth: int) -> dict[str, Any]:
    """``depth`` levels of ``level(node_below, level_index)`` around ``leaf``, as a query's one condition."""
    node = leaf
    for index in range(depth):
        node = level(node, index)
    return {"conditions": [node]}


def deepest(level: Level, leaf: dict[str, Any], limit: int = MAX_NESTING) -> dict[str, Any]:
    """The deepest query of this shape whose JSON nests at most ``limit`` levels."""
    depth = 0
    while json_depth(nested(level, leaf, depth + 1)) <= limit:
        depth += 1
    return nested(level, leaf, depth)


def profile_chain(node: dict[str, Any], _: int) -> dict[str, Any]:
    """``{"all": [profile, <below>]}``: the shape whose compile time once doubled per level."""
    return {"all": [PROFILE, node]}


def mixed(node: dict[str, Any], index: int) -> dict[str, Any]:
    """all / any / not in turn, each all/any level mixing an events set, a profile set and the level below."""
    kind = ("all", "any", "not")[index % 3]
    return {"not": node} if kind == "not" else {kind: [DID, PROFILE, node]}


def events_tree(node: dict[str, Any], index: int) -> dict[str, Any]:
    """Only events sets, under all / any and not: one shared scan for the whole tree."""
    return {("all", "any")[index % 2]: [DID, {"not": node}]}


def negations(node: dict[str, Any], _: int) -> dict[str, Any]:
    return {"not": node}


def with_objects(count: int = MAX_OBJECTS) -> dict[str, Any]:
    """A query of exactly ``count`` JSON objects: profile conditions (two objects each) in ``any`` groups of
    at most 50 (one object each), and an empty object to make up an odd count."""
    groups: list[list[dict[str, Any]]] = []
    objects = 1
    while objects + 2 <= count:
        if not groups or len(groups[-1]) == 50:
            if objects + 3 > count:
                break
            groups.append([])
            objects += 1
        groups[-1].append(PROFILE)
        objects += 2
    body: dict[str, Any] = {"conditions": [{"any": group} for group in groups]}
    if objects < count:
        body["common_profile_properties"] = {}
        objects += 1
    assert objects == count
    return body


def widest() -> dict[str, Any]:
    """The most profile sets one query can ask for: ``MAX_OBJECTS`` objects of profile conditions, with 100
    three-level geo paths (arrays, not objects: 300 more profile sets) in their common properties. Its SQL
    would pass ClickHouse's size limit: the compiler refuses it (``MAX_SQL_BYTES``), after compiling it."""
    body = with_objects(MAX_OBJECTS - 1)
    body["common_profile_properties"] = {"geo_fields": [["Country", "Region", "City"]] * 100}
    return body


# The shapes at the limits, by name: what the benchmark times and the tests compile.
AT_THE_LIMITS: dict[str, Callable[[], dict[str, Any]]] = {
    f"profile chain, {MAX_NESTING} levels": lambda: deepest(profile_chain, PROFILE),
    f"all/any/not mix, {MAX_NESTING} levels": lambda: deepest(mixed, DID),
    f"events-only tree, {MAX_NESTING} levels": lambda: deepest(events_tree, DID),
    f"nots, {MAX_NESTING} levels": lambda: deepest(negations, PROFILE),
    f"{MAX_OBJECTS:,} objects and 100 geo paths": widest,
}
