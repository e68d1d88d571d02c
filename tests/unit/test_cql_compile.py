"""The compiler's guarantees that do not need a warehouse: 422s name the field, values never reach SQL text,
every table scan carries the tenant condition, identity merges are applied everywhere."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

import pytest

from tapwire_query.cql import (
    CompileOptions,
    CqlError,
    compile_event_count,
    compile_event_rows,
    compile_top,
    compile_trends,
    compile_user_count,
    compile_user_page,
    compile_user_set,
    parse_query,
)
from tapwire_query.cql.sql import Compiled
from tests.query.shapes import PROFILE, deepest, json_depth, profile_chain, with_objects

OPTIONS = CompileOptions(today=dt.date(2026, 2, 1))
WINDOW = {"from": 20260101, "to": 20260102}
MARKER = "zq'\\\"{p0:String}); DROP TABLE events; --"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (
            {"event_name": "x", **WINDOW, "event_properties": [{"name": "", "value": 1}]},
            "event_properties.0.name",
        ),
        ({"event_name": "x", **WINDOW, "event_properties": [{"name": "a", "value": {"$gt": 1}}]}, "value"),
        ({"event_name": "x", **WINDOW, "event_properties": [{"name": "a", "value": [[1]]}]}, "value"),
        (
            {"event_name": "x", **WINDOW, "event_properties": [{"name": "a", "operator": "gt", "value": 1}]},
            "operator",
        ),
        (
            {
                "event_name": "x",
                **WINDOW,
                "event_properties": [{"name": "a", "operator": "less_than", "value": "3"}],
            },
            "numeric",
        ),
        (
            {
                "event_name": "x",
                **WINDOW,
                "event_properties": [{"name": "a", "operator": "contains", "value": 3}],
            },
            "string",
        ),
        (
            {"event_name": "x", **WINDOW, "event_properties": [{"name": "a", "operator": "equals"}]},
            "needs a value",
        ),
        ({"event_name": "x" * 600, **WINDOW}, "event_name"),
        ({"event_name": "x", "from": "2026-01-01", "to": 20260102}, "from"),
        ({"event_name": "x", "from": 20260230, "to": 20260302}, "from"),
        ({"event_name": "x", "from": 20260105, "to": 20260102}, "from must not be after to"),
        ({"event_name": "x", "from": 20260105}, "both from and to"),
        ({"event_properties": [{"name": "a", "value": 1}]}, "need an event_name"),
        (
            {"conditions": [{"did": {"event_name": "x", "operator": "DROP", "value": 1}}]},
            "conditions.0.did.operator",
        ),
        ({"conditions": [{"'; DROP TABLE events; --": {}}]}, "conditions.0"),
        ({"conditions": [{"did": {"event_name": "x"}, "not": {}}]}, "exactly one key"),
        (
            {"conditions": [{"funnel": {"steps": [{"event_name": "a"}], "within_seconds": 10, **WINDOW}}]},
            "steps",
        ),
        (
            {"conditions": [{"funnel": {"steps": [{"event_name": "a"}] * 2, "within_seconds": 0, **WINDOW}}]},
            "within_seconds",
        ),
        (
            {
                "conditions": [
                    {"aggregate": {"event_name": "a", "property": "p", "operator": "equals", "value": "x"}}
                ]
            },
            "value",
        ),
        ({"common_profile_properties": {"reachability": []}}, "reachability"),
        ({"common_profile_properties": {"geo_fields": [["a", "b", "c", "d"]]}}, "geo_fields"),
        ({"evnt_name": "x"}, "evnt_name"),
        ({"advanced_query": {"did_any": {"any_events": []}}}, "any_events"),
        (
            {
                "event_name": "x",
                **WINDOW,
                "session_properties": [{"name": "time_of_day", "value": ["25:00", "'"]}],
            },
            "session_properties.0.value",
        ),
    ],
)
def test_invalid_queries_are_refused_naming_the_field(body: dict[str, Any], field: str) -> None:
    with pytest.raises(CqlError, match=re.escape(field)):
        compile_user_set(parse_query(body), account_id="A", options=OPTIONS)


def test_a_query_must_be_an_object() -> None:
    with pytest.raises(CqlError, match="JSON object"):
        parse_query([{"event_name": "x"}])


def everything(text: str) -> dict[str, Any]:
    flt = {"name": text, "operator": "equals", "value": [text, 1.5]}
    event = {"event_name": text, **WINDOW, "event_properties": [flt]}
    return {
        **event,
        "session_properties": [{"name": text, "value": text}],
        "common_profile_properties": {
            "profile_fields": [flt, {"name": text, "operator": "does_not_exist"}],
            "geo_fields": [[text, text]],
        },
        "advanced_query": {
            "did_all": [{**event, "operator": "less_than", "value": 3}],
            "did_any": {"any_events": [event], "operator": "equals", "value": 2},
            "did_none": [event],
        },
        "conditions": [
            {"any": [{"not": {"profile": flt}}, {"did_not": event}]},
            {"aggregate": {**event, "property": text, "operator": "greater_than", "value": 3}},
            {
                "funnel": {
                    "steps": [{"event_name": text, "event_properties": [flt]}] * 2,
                    "within_seconds": 60,
                    **WINDOW,
                }
            },
            {"retention": {"first": event, "returned": [event]}},
            {"first_seen": WINDOW},
            {"last_seen": WINDOW},
            {
                "did": {
                    **event,
                    "event_properties": [{"name": f"Items.{text}", "operator": "contains", "value": text}],
                }
            },
        ],
    }


def all_statements(body: dict[str, Any], account: str) -> list[Compiled]:
    query = parse_query(body)
    return [
        compile_user_set(query, account_id=account, options=OPTIONS),
        compile_user_count(query, account_id=account, options=OPTIONS),
        compile_user_page(query, account_id=account, options=OPTIONS, after=MARKER, limit=10),
        compile_event_count(query, account_id=account, options=OPTIONS),
        compile_event_rows(query, account_id=account, options=OPTIONS, after=(1, MARKER), limit=10),
        compile_top(
            query,
            account_id=account,
            options=OPTIONS,
            source="event_properties",
            name=MARKER,
            top_n=3,
            descending=True,
        ),
        compile_top(
            query,
            account_id=account,
            options=OPTIONS,
            source="profile_fields",
            name=MARKER,
            top_n=3,
            descending=False,
        ),
        compile_trends(
            query, account_id=account, options=OPTIONS, trend="weekly", unique=False, sum_property=MARKER
        ),
    ]


def test_values_and_names_never_reach_the_sql_text() -> None:
    for compiled in all_statements(everything(MARKER), MARKER):
        assert "zq" not in compiled.sql
        assert "DROP" not in compiled.sql
        assert MARKER in compiled.params.values()
        placeholders = set(re.findall(r"\{(p\d+):[^{}]+\}", compiled.sql))
        assert placeholders == set(compiled.params)


TABLES = r"(?:events|profiles|profile_props|user_aliases)"


def test_every_scan_is_scoped_to_the_account_and_merges_identities() -> None:
    for compiled in all_statements(everything("x"), "ACC-1"):
        scans = re.findall(rf"FROM {TABLES}\b", compiled.sql)
        scoped = re.findall(rf"FROM {TABLES}(?: FINAL)? WHERE account_id = \{{p0:String\}}", compiled.sql)
        assert len(scans) == len(scoped) > 3
        assert compiled.params["p0"] == "ACC-1"
        # Every scan but the alias table's own reads user keys through the alias map.
        assert compiled.sql.count("transform(user_key, _aliases.1, _aliases.2, user_key)") >= len(scans) - 1


def test_cluster_mode_builds_sets_globally() -> None:
    query = parse_query(everything("x"))
    local = compile_user_set(query, account_id="A", options=OPTIONS)
    cluster = compile_user_set(
        query, account_id="A", options=CompileOptions(today=OPTIONS.today, cluster=True)
    )
    assert " IN (" in local.sql and "GLOBAL IN" not in local.sql
    assert " uk IN (" not in cluster.sql and "GLOBAL IN" in cluster.sql


def test_event_endpoints_need_a_base_event() -> None:
    with pytest.raises(CqlError, match="event_name"):
        compile_event_count(
            parse_query({"conditions": [{"first_seen": WINDOW}]}), account_id="A", options=OPTIONS
        )


def nested_all(json_levels: int) -> dict[str, Any]:
    """A query exactly ``json_levels`` deep: ``all`` of a profile filter and the ``all`` below (a ``not`` on
    top when that leaves it one level short)."""
    body = deepest(profile_chain, PROFILE, json_levels)
    if json_depth(body) < json_levels:
        body = {"conditions": [{"not": body["conditions"][0]}]}
    assert json_depth(body) == json_levels
    return body


def test_a_query_at_the_nesting_limit_compiles_and_one_level_more_is_refused() -> None:
    at_limit = parse_query(nested_all(250))
    compiled = compile_user_count(at_limit, account_id="A", options=OPTIONS)
    assert compiled.sql.count("profile_props") > 100
    with pytest.raises(CqlError, match="query: nested more than 250 levels deep"):
        parse_query(nested_all(251))
    inside_a_value = {
        "event_name": "x",
        **WINDOW,
        "event_properties": [{"name": "a", "value": nested_all(250)}],
    }
    with pytest.raises(CqlError, match="nested more than 250 levels"):
        parse_query(inside_a_value)


def test_nested_conditions_are_refused_by_the_nesting_limit_before_the_validator_fails_on_them() -> None:
    # The validator refuses more than 254 nested conditions with misleading messages ("Tuple should have at
    # least 1 item"); the nesting limit refuses them first, by name.
    node: dict[str, Any] = PROFILE
    for _ in range(270):
        node = {"not": node}
    with pytest.raises(CqlError) as refused:
        parse_query({"conditions": [{"all": [node]}]})
    assert str(refused.value) == "query: nested more than 250 levels deep"


def test_a_query_holds_at_most_1000_objects() -> None:
    parse_query(with_objects(1000))
    with pytest.raises(CqlError, match="more than 1000 objects"):
        parse_query(with_objects(1001))


def test_a_statement_longer_than_clickhouse_parses_is_refused_by_the_compiler() -> None:
    # About 1.2 KB of SQL per profile condition: 200 fit in ClickHouse's 256 KiB, 300 do not.
    fits = compile_user_count(parse_query(with_objects(401)), account_id="A", options=OPTIONS)
    assert 200_000 < len(fits.sql) <= 262_144
    with pytest.raises(CqlError, match=r"too large once compiled \(\d+ bytes of SQL, at most 262144\)"):
        compile_user_count(parse_query(with_objects(601)), account_id="A", options=OPTIONS)
