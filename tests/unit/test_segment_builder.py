"""The segment builder's form ⇄ tree ⇄ query round trip, every condition kind, validated by the query parser."""

from __future__ import annotations

from typing import Any

from tapwire_console.web import segment_builder as builder
from tapwire_query.cql import parse_query


def _form(tree: builder.Node, path: str = "r") -> dict[str, str]:
    """The form fields a browser would post for ``tree`` (what the template renders)."""
    fields: dict[str, str] = {f"n-{path}-kind": tree["kind"]}
    if tree.get("negate"):
        fields[f"n-{path}-negate"] = "on"
    for key, value in tree.items():
        if key not in ("kind", "negate", "children"):
            fields[f"n-{path}-{key}"] = str(value)
    for index, child in enumerate(tree.get("children", [])):
        fields |= _form(child, f"{path}.{index}")
    return fields


def _filled() -> builder.Node:
    tree = builder.empty_root()
    for kind in (*builder.LEAF_KINDS, "group"):
        tree = builder.apply(tree, f"add:r:{kind}")
    tree = builder.apply(tree, "add:r.8:profile")
    did, did_not, profile, aggregate, first, last, funnel, retention, group = tree["children"]
    did.update(
        event="Charged",
        count_op="greater_than_equals",
        count="2",
        days="30",
        prop="Amount",
        prop_op="greater_than",
        prop_value="10",
    )
    did_not.update(event="App Opened", days="7")
    profile.update(prop="Plan", prop_op="equals", prop_value="pro, plus", negate=True)
    aggregate.update(
        event="Charged", days="90", prop="Amount", function="avg", count_op="less_than", count="50.5"
    )
    first.update({"from": "2026-01-01", "to": "2026-01-07"})
    last.update({"from": "2026-01-20", "to": "2026-01-31"})
    funnel.update(
        {"steps": "Viewed, Carted, Charged", "hours": "24", "from": "2026-01-01", "to": "2026-01-31"}
    )
    retention.update(
        {
            "event": "App Opened",
            "from": "2026-01-01",
            "to": "2026-01-07",
            "returned_event": "App Opened",
            "returned_from": "2026-01-08",
            "returned_to": "2026-01-14",
        }
    )
    group.update(match="any", negate=True)
    group["children"][0].update(prop="Country", prop_op="exists")
    return tree


def test_every_kind_makes_a_query_the_parser_accepts_and_reopens_the_same() -> None:
    tree = _filled()
    definition = builder.definition(builder.tree_from_form(_form(tree)))
    parse_query(definition)  # raises for anything the query service would refuse
    (root,) = definition["conditions"]
    conditions: list[Any] = root["all"]
    assert conditions[0] == {
        "did": {
            "event_name": "Charged",
            "last_days": 30,
            "event_properties": [{"name": "Amount", "operator": "greater_than", "value": 10}],
            "operator": "greater_than_equals",
            "value": 2,
        }
    }
    assert conditions[2] == {
        "not": {"profile": {"name": "Plan", "operator": "equals", "value": ["pro", "plus"]}}
    }
    assert conditions[6]["funnel"]["steps"] == [{"event_name": n} for n in ("Viewed", "Carted", "Charged")]
    assert conditions[8] == {"not": {"any": [{"profile": {"name": "Country", "operator": "exists"}}]}}
    reopened = builder.tree_from_definition(definition)
    assert builder.definition(reopened) == definition


def test_remove_renumbers_and_an_empty_builder_is_everyone() -> None:
    tree = builder.apply(builder.apply(builder.empty_root(), "add:r:did"), "add:r:profile")
    tree = builder.apply(tree, "remove:r.0")
    assert [c["kind"] for c in tree["children"]] == ["profile"]
    assert builder.definition(builder.empty_root()) == {}
    assert builder.apply(builder.empty_root(), "remove:r") == builder.empty_root()
    assert builder.apply(builder.empty_root(), "add:r.7:did") == builder.empty_root()


def test_hostile_form_fields_are_ignored_not_trusted() -> None:
    form = {
        "n-r-kind": "group",
        "n-r.0-kind": "__import__",
        "n-r.0-event": "x",
        "n-r.0.x-kind": "did",
        "n-zz-kind": "did",
    }
    tree = builder.tree_from_form(form)
    assert [c["kind"] for c in tree["children"]] == ["group"]


def test_json_the_builder_cannot_show_opens_as_json() -> None:
    for query in (
        {"event_name": "Charged", "from": 20260101, "to": 20260131},
        {"conditions": [{"did": {"event_name": "A", "session_properties": []}}]},
        {"conditions": [{"cohort": {"name": "A"}}]},
        {"conditions": [{"profile": ["Plan"]}]},
        {"conditions": [{"did": {"event_name": "A"}, "not": {"did": {"event_name": "B"}}}]},
        {
            "conditions": [
                {
                    "did": {
                        "event_name": "A",
                        "event_properties": [
                            {"name": "x", "operator": "equals", "value": 1},
                            {"name": "y", "operator": "equals", "value": 2},
                        ],
                    }
                }
            ]
        },
        {
            "conditions": [
                {
                    "retention": {
                        "first": {"event_name": "A"},
                        "returned": [{"event_name": "B"}, {"event_name": "C"}],
                    }
                }
            ]
        },
    ):
        try:
            builder.tree_from_definition(query)
        except builder.NotRepresentable:
            continue
        raise AssertionError(f"{query} should open as JSON")
