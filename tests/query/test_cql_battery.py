"""Every CQL operator and combinator, compiled and run on both warehouse paths, against plain-Python truth."""

from __future__ import annotations

from typing import Any

import pytest

from tapwire_core.warehouse import Warehouse
from tapwire_query.cql import (
    CompileOptions,
    compile_event_count,
    compile_user_count,
    compile_user_set,
    parse_query,
)
from tests.query.dataset import ACCOUNT, TODAY, truth

pytestmark = pytest.mark.integration

JAN = {"from": 20260101, "to": 20260131}
OPTIONS = CompileOptions(today=TODAY)


def ev(name: str, *props: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"event_name": name, **JAN, "event_properties": list(props), **extra}


def prop(name: str, operator: str, value: Any = None) -> dict[str, Any]:
    body: dict[str, Any] = {"name": name, "operator": operator}
    if value is not None:
        body["value"] = value
    return body


QUERIES: dict[str, dict[str, Any]] = {
    "base event": ev("Shared"),
    "base event, narrow window": {"event_name": "Charged", "from": 20260105, "to": 20260107},
    "equals string": ev("Product Viewed", prop("category", "equals", "books")),
    "equals list is OR": ev("Product Viewed", prop("category", "equals", ["books", "toys"])),
    "default operator is equals": ev("Searched", {"name": "query", "value": "yoga mat"}),
    "not_equals": ev("Added To Cart", prop("category", "not_equals", "books")),
    "not_equals list": ev("Added To Cart", prop("category", "not_equals", ["books", "music", "toys"])),
    "contains": ev("Searched", prop("query", "contains", "o")),
    "contains list": ev("Searched", prop("query", "contains", ["Lego", "vinyl"])),
    "does_not_contain": ev("Searched", prop("query", "does_not_contain", "e")),
    "exists": ev("Product Viewed", prop("Quantity", "exists")),
    "does_not_exist": ev("Product Viewed", prop("Quantity", "does_not_exist")),
    "numeric equals": ev("Searched", prop("results", "equals", 7)),
    "numeric equals list": ev("Searched", prop("results", "equals", [0, 1, 2])),
    "greater_than": ev("Product Viewed", prop("price", "greater_than", 150)),
    "greater_than_equals": ev("Product Viewed", prop("price", "greater_than_equals", 100.5)),
    "less_than": ev("Added To Cart", prop("price", "less_than", 10)),
    "less_than_equals": ev("Searched", prop("results", "less_than_equals", 3)),
    "greater_than list": ev("Shared", prop("price", "greater_than", [190, 180])),
    "comparison that zero satisfies": ev("Searched", prop("results", "greater_than", -1)),
    "equals zero": ev("Searched", prop("results", "equals", 0)),
    "equals empty string": ev("Searched", prop("query", "not_equals", "")),
    "boolean as string": ev("App Opened", prop("first", "equals", "True")),
    "boolean as JSON bool": ev("App Opened", prop("first", "equals", False)),
    "string value matches only numbers sent as strings": ev("Searched", prop("results", "equals", "7")),
    "contains looks inside strings only": ev("App Opened", prop("first", "contains", "ru")),
    "charged item string": ev("Charged", prop("Items.Category", "equals", "garden")),
    "charged item number": ev("Charged", prop("Items.Quantity", "greater_than_equals", 3)),
    "several filters are AND": ev(
        "Product Viewed", prop("category", "equals", "books"), prop("price", "greater_than", 50)
    ),
    "props alias": {"event_name": "Product Viewed", **JAN, "props": [prop("category", "equals", "toys")]},
    "session time_of_day": {
        **ev("App Opened"),
        "session_properties": [{"name": "time_of_day", "value": ["00:00", "05:59"]}],
    },
    "profile field with base event": {
        **ev("Charged"),
        "common_profile_properties": {"profile_fields": [prop("City", "equals", "Mumbai")]},
    },
    "profile field alone": {"common_profile_properties": {"profile_fields": [prop("Plan", "equals", "pro")]}},
    "profile numeric": {"common_profile_properties": {"profile_fields": [prop("Age", "greater_than", 60)]}},
    "profile counter after $incr": {
        "common_profile_properties": {"profile_fields": [prop("Visits", "greater_than_equals", 5)]}
    },
    "profile number after $decr": {
        "common_profile_properties": {"profile_fields": [prop("Score", "less_than", 30)]}
    },
    "profile set later wins": {
        "common_profile_properties": {"profile_fields": [prop("Plan", "equals", "free")]}
    },
    "profile does_not_exist": {
        "common_profile_properties": {"profile_fields": [prop("Plan", "does_not_exist")]}
    },
    "profile boolean": {"common_profile_properties": {"profile_fields": [prop("Premium", "equals", "True")]}},
    "profile contains": {
        "common_profile_properties": {"profile_fields": [prop("Email", "contains", "00001")]}
    },
    "geo fields": {"common_profile_properties": {"geo_fields": [["India"], ["Germany", "Berlin"]]}},
    "demographics": {
        "common_profile_properties": {"demographics": [{"name": "Plan", "value": ["free", "plus"]}]}
    },
    "property_name alias": {
        "common_profile_properties": {
            "profile_fields": [{"property_name": "City", "property_value": "Osaka"}]
        }
    },
    "did_all with count": {
        "advanced_query": {"did_all": [{**ev("App Opened"), "operator": "greater_than_equals", "value": 3}]}
    },
    "did_all two events": {"advanced_query": {"did_all": [ev("Charged"), ev("Searched")]}},
    "did_any": {"advanced_query": {"did_any": {"any_events": [ev("Charged"), ev("Shared")]}}},
    "did_any with total count": {
        "advanced_query": {
            "did_any": {"any_events": [ev("Charged"), ev("Shared")], "operator": "equals", "value": 2}
        }
    },
    "did_none": {**ev("App Opened"), "advanced_query": {"did_none": [ev("Charged")]}},
    "did less than (includes never)": {
        "advanced_query": {"did_all": [{**ev("Charged"), "operator": "less_than", "value": 2}]}
    },
    "nested and/or/not": {
        "conditions": [
            {
                "any": [
                    {"all": [{"did": ev("Charged")}, {"profile": prop("Plan", "equals", "pro")}]},
                    {"not": {"did": ev("App Opened")}},
                ]
            }
        ]
    },
    "did_not": {"event_name": "Searched", **JAN, "conditions": [{"did_not": ev("Added To Cart")}]},
    # Combinations of event conditions share one scan of the events table (compile.py, ``fuse``).
    "shared scan: n times but never another": {
        "conditions": [
            {"did": {**ev("App Opened"), "operator": "greater_than_equals", "value": 3}},
            {"did_not": ev("Charged")},
        ]
    },
    "shared scan: only negatives": {"conditions": [{"did_not": ev("Charged")}, {"did_not": ev("Shared")}]},
    "shared scan: fewer than n beside another event": {
        "conditions": [
            {"did": {**ev("Charged"), "operator": "less_than", "value": 2}},
            {"did": ev("Searched")},
        ]
    },
    "shared scan: any of did and did not": {
        "conditions": [
            {
                "any": [
                    {"did": {**ev("Searched"), "operator": "greater_than", "value": 2}},
                    {"not": {"did": ev("App Opened")}},
                ]
            }
        ]
    },
    "shared scan: one event in two windows": {
        "conditions": [
            {"did": {"event_name": "Charged", "from": 20260101, "to": 20260110}},
            {"did_not": {"event_name": "Charged", "from": 20260111, "to": 20260131}},
        ]
    },
    "shared scan beside a profile filter": {
        **ev("Product Viewed"),
        "common_profile_properties": {"profile_fields": [prop("Plan", "not_equals", "free")]},
        "advanced_query": {"did_none": [ev("Shared")]},
        "conditions": [{"did": {**ev("Charged"), "operator": "greater_than_equals", "value": 2}}],
    },
    "did exactly n times": {"conditions": [{"did": {**ev("Searched"), "operator": "equals", "value": 2}}]},
    "did at most n times": {
        "conditions": [{"did": {**ev("Product Viewed"), "operator": "less_than_equals", "value": 1}}]
    },
    "did more than n times in a window": {
        "conditions": [
            {
                "did": {
                    "event_name": "App Opened",
                    "from": 20260110,
                    "to": 20260120,
                    "operator": "greater_than",
                    "value": 2,
                }
            }
        ]
    },
    "did in last days": {"conditions": [{"did": {"event_name": "Charged", "last_days": 20}}]},
    "aggregate sum": {
        "conditions": [
            {"aggregate": {**ev("Charged"), "property": "Amount", "operator": "greater_than", "value": 700}}
        ]
    },
    "aggregate avg": {
        "conditions": [
            {
                "aggregate": {
                    **ev("Product Viewed"),
                    "property": "price",
                    "function": "avg",
                    "operator": "greater_than_equals",
                    "value": 120,
                }
            }
        ]
    },
    "aggregate max with filter": {
        "conditions": [
            {
                "aggregate": {
                    **ev("Charged", prop("Currency", "equals", "EUR")),
                    "property": "Amount",
                    "function": "max",
                    "operator": "less_than",
                    "value": 100,
                }
            }
        ]
    },
    "aggregate min": {
        "conditions": [
            {
                "aggregate": {
                    **ev("Searched"),
                    "property": "results",
                    "function": "min",
                    "operator": "equals",
                    "value": 0,
                }
            }
        ]
    },
    "first seen": {"conditions": [{"first_seen": {"from": 20260101, "to": 20260101}}]},
    "last seen": {"conditions": [{"last_seen": {"from": 20260125, "to": 20260131}}]},
    "funnel two steps": {
        "conditions": [
            {
                "funnel": {
                    "steps": [{"event_name": "Product Viewed"}, {"event_name": "Added To Cart"}],
                    "within_seconds": 86_400,
                    **JAN,
                }
            }
        ]
    },
    "funnel three steps with filter": {
        "conditions": [
            {
                "funnel": {
                    "steps": [
                        {"event_name": "Searched"},
                        {
                            "event_name": "Product Viewed",
                            "event_properties": [prop("price", "greater_than", 50)],
                        },
                        {"event_name": "Charged"},
                    ],
                    "within_seconds": 5 * 86_400,
                    **JAN,
                }
            }
        ]
    },
    "funnel within more than 2^32 milliseconds": {
        "conditions": [
            {
                "funnel": {
                    "steps": [{"event_name": "Shared"}, {"event_name": "Charged"}],
                    "within_seconds": 60 * 86_400,
                    **JAN,
                }
            }
        ]
    },
    "funnel over a window too long for 32-bit times": {
        "conditions": [
            {
                "funnel": {
                    "steps": [{"event_name": "Product Viewed"}, {"event_name": "Added To Cart"}],
                    "within_seconds": 86_400,
                    "from": 20251115,
                    "to": 20260131,
                }
            }
        ]
    },
    "retention": {
        "conditions": [
            {
                "retention": {
                    "first": {"event_name": "App Opened", "from": 20260101, "to": 20260107},
                    "returned": [
                        {"event_name": "App Opened", "from": 20260108, "to": 20260114},
                        {"event_name": "Charged", "from": 20260115, "to": 20260131},
                    ],
                }
            }
        ]
    },
    "everyone": {},
    "not profile": {"conditions": [{"not": {"profile": prop("City", "equals", "Lagos")}}]},
    "everything together": {
        **ev("Product Viewed", prop("category", "not_equals", "garden")),
        "common_profile_properties": {"profile_fields": [prop("Age", "less_than", 50)]},
        "advanced_query": {"did_none": [ev("Shared")]},
        "conditions": [{"any": [{"did": ev("Charged")}, {"profile": prop("Premium", "equals", "True")}]}],
    },
}

EVENT_QUERIES = [
    "base event",
    "equals list is OR",
    "greater_than",
    "charged item string",
    "session time_of_day",
    "profile field with base event",
    "did_none",
    "everything together",
    "shared scan beside a profile filter",
]


@pytest.mark.parametrize("name", list(QUERIES))
async def test_user_set_matches_truth(loaded: Warehouse, name: str) -> None:
    query = parse_query(QUERIES[name])
    expected = truth().users(query)
    compiled = compile_user_set(query, account_id=ACCOUNT, options=OPTIONS)
    rows = await loaded.query(compiled.sql, compiled.params)
    got = [row["uk"] for row in rows]
    assert len(got) == len(set(got)), "each user once"
    assert set(got) == expected
    counted = compile_user_count(query, account_id=ACCOUNT, options=OPTIONS)
    assert (await loaded.query(counted.sql, counted.params))[0]["n"] == len(expected)


@pytest.mark.parametrize("name", EVENT_QUERIES)
async def test_event_count_matches_truth(loaded: Warehouse, name: str) -> None:
    query = parse_query(QUERIES[name])
    compiled = compile_event_count(query, account_id=ACCOUNT, options=OPTIONS)
    rows = await loaded.query(compiled.sql, compiled.params)
    assert rows[0]["n"] == len(truth().event_rows(query))


def test_the_battery_is_not_trivial() -> None:
    """Each query must select a proper, non-empty subset somewhere, or it tests nothing."""
    everyone = truth().everyone()
    sizes = {name: len(truth().users(parse_query(body))) for name, body in QUERIES.items()}
    assert len(QUERIES) >= 40
    trivial = [n for n, size in sizes.items() if n != "everyone" and size in (0, len(everyone))]
    assert trivial == ["contains looks inside strings only"]
