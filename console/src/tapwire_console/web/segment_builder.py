"""The segment builder's state: form fields ⇄ a tree of conditions ⇄ the query's ``conditions`` JSON.

The builder is a form whose fields are named ``n-<path>-<field>``: ``r`` is the root group, ``r.0`` its first
child, ``r.0.2`` the third child of that (a nested group), and so on. Every edit posts the whole form and the
server answers the re-rendered builder, so it works without JavaScript and the query service validates the
result (422 names the field). The tree is plain dicts so templates can read it.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

Node = dict[str, Any]

LEAF_KINDS = ("did", "did_not", "profile", "aggregate", "first_seen", "last_seen", "funnel", "retention")
KIND_LABELS = {
    "did": "Did an event",
    "did_not": "Did not do an event",
    "profile": "Profile property",
    "aggregate": "Sum / average of an event property",
    "first_seen": "First seen between",
    "last_seen": "Last seen between",
    "funnel": "Went through a funnel",
    "retention": "Came back (retention)",
    "group": "Group (all / any)",
}
PROPERTY_OPERATORS = (
    "equals",
    "not_equals",
    "contains",
    "does_not_contain",
    "exists",
    "does_not_exist",
    "greater_than",
    "greater_than_equals",
    "less_than",
    "less_than_equals",
)
COUNT_OPERATORS = (
    "at_least_once",
    "equals",
    "greater_than",
    "greater_than_equals",
    "less_than",
    "less_than_equals",
)
AGGREGATE_FUNCTIONS = ("sum", "avg", "min", "max")
_NUMERIC = frozenset({"greater_than", "greater_than_equals", "less_than", "less_than_equals"})
_FIELD = re.compile(r"^n-(r(?:\.\d+)*)-([a-z_]+)$")
MAX_DEPTH = 4


def empty_root() -> Node:
    return {"kind": "group", "match": "all", "negate": False, "children": []}


def new_node(kind: str) -> Node:
    if kind == "group":
        return empty_root()
    defaults: dict[str, Node] = {
        "did": {
            "event": "",
            "count_op": "at_least_once",
            "count": "",
            "days": "30",
            "prop": "",
            "prop_op": "equals",
            "prop_value": "",
            "prop_type": "text",
        },
        "did_not": {"event": "", "days": "30"},
        "profile": {"prop": "", "prop_op": "equals", "prop_value": "", "prop_type": "text"},
        "aggregate": {
            "event": "",
            "days": "30",
            "prop": "",
            "function": "sum",
            "count_op": "greater_than",
            "count": "",
        },
        "first_seen": {"from": "", "to": ""},
        "last_seen": {"from": "", "to": ""},
        "funnel": {"steps": "", "hours": "24", "from": "", "to": ""},
        "retention": {
            "event": "",
            "from": "",
            "to": "",
            "returned_event": "",
            "returned_from": "",
            "returned_to": "",
        },
    }
    return {"kind": kind, "negate": False, **defaults[kind]}


def tree_from_form(form: Mapping[str, Any]) -> Node:
    """The tree the form's fields describe (missing pieces take their defaults)."""
    fields: dict[str, dict[str, str]] = {}
    for key, value in form.items():
        match = _FIELD.match(key)
        if match and isinstance(value, str):
            fields.setdefault(match.group(1), {})[match.group(2)] = value
    return _node("r", fields) if "r" in fields else empty_root()


def _node(path: str, fields: dict[str, dict[str, str]]) -> Node:
    own = fields.get(path, {})
    kind = own.get("kind", "group")
    if kind not in (*LEAF_KINDS, "group"):
        kind = "group"
    node = new_node(kind)
    node.update({k: v for k, v in own.items() if k in node and k not in ("kind", "children")})
    node["negate"] = own.get("negate") == "on"
    if kind == "group":
        node["match"] = "any" if own.get("match") == "any" else "all"
        prefix = f"{path}."
        heads = {p[len(prefix) :].split(".", 1)[0] for p in fields if p.startswith(prefix)}
        child_paths = [f"{prefix}{head}" for head in sorted((h for h in heads if h.isdigit()), key=int)]
        node["children"] = [_node(child, fields) for child in child_paths if path.count(".") < MAX_DEPTH]
    return node


def apply(tree: Node, op: str) -> Node:
    """An edit from a builder button: ``add:<path>:<kind>`` appends to a group, ``remove:<path>`` drops a node."""
    parts = op.split(":")
    if parts[0] == "add" and len(parts) == 3:
        group = _find(tree, parts[1])
        nested_too_deep = parts[2] == "group" and parts[1].count(".") >= MAX_DEPTH - 1
        if (
            group is not None
            and group["kind"] == "group"
            and parts[2] in (*LEAF_KINDS, "group")
            and not nested_too_deep
        ):
            group["children"].append(new_node(parts[2]))
    elif parts[0] == "remove" and len(parts) == 2 and parts[1] != "r":
        parent_path, _, index = parts[1].rpartition(".")
        parent = _find(tree, parent_path)
        if parent is not None and index.isdigit() and int(index) < len(parent["children"]):
            del parent["children"][int(index)]
    return tree


def _find(tree: Node, path: str) -> Node | None:
    node: Node | None = tree
    for index in path.split(".")[1:]:
        if (
            node is None
            or node["kind"] != "group"
            or not index.isdigit()
            or int(index) >= len(node["children"])
        ):
            return None
        node = node["children"][int(index)]
    return node


# Tree → query JSON.


def definition(tree: Node) -> dict[str, Any]:
    """The query for the tree: ``{}`` (everyone) for an empty root, else ``{"conditions": [root]}``."""
    root = _condition(tree)
    return {} if root is None else {"conditions": [root]}


def _condition(node: Node) -> dict[str, Any] | None:
    if node["kind"] == "group":
        children = [c for c in (_condition(child) for child in node["children"]) if c is not None]
        if not children:
            return None
        built: dict[str, Any] = {node["match"]: children}
    else:
        built = _leaf(node)
    return {"not": built} if node.get("negate") else built


def _leaf(node: Node) -> dict[str, Any]:
    kind = node["kind"]
    if kind == "did":
        spec: dict[str, Any] = {"event_name": node["event"].strip(), **_days(node["days"])}
        if node["prop"].strip():
            spec["event_properties"] = [_property(node)]
        if node["count_op"] != "at_least_once":
            spec["operator"] = node["count_op"]
            spec["value"] = _number(node["count"])
        return {"did": spec}
    if kind == "did_not":
        return {"did_not": {"event_name": node["event"].strip(), **_days(node["days"])}}
    if kind == "profile":
        return {"profile": _property(node)}
    if kind == "aggregate":
        return {
            "aggregate": {
                "event_name": node["event"].strip(),
                **_days(node["days"]),
                "property": node["prop"].strip(),
                "function": node["function"],
                "operator": node["count_op"],
                "value": _number(node["count"]),
            }
        }
    if kind in ("first_seen", "last_seen"):
        return {kind: {"from": _date(node["from"]), "to": _date(node["to"])}}
    if kind == "funnel":
        steps = [{"event_name": s.strip()} for s in node["steps"].split(",") if s.strip()]
        return {
            "funnel": {
                "steps": steps,
                "within_seconds": int(_number(node["hours"]) * 3600) if _number(node["hours"]) else 0,
                "from": _date(node["from"]),
                "to": _date(node["to"]),
            }
        }
    return {
        "retention": {
            "first": {
                "event_name": node["event"].strip(),
                "from": _date(node["from"]),
                "to": _date(node["to"]),
            },
            "returned": [
                {
                    "event_name": node["returned_event"].strip(),
                    "from": _date(node["returned_from"]),
                    "to": _date(node["returned_to"]),
                }
            ],
        }
    }


def _days(text: str) -> dict[str, Any]:
    return {"last_days": int(text)} if text.strip().isdigit() else {}


def _property(node: Node) -> dict[str, Any]:
    spec: dict[str, Any] = {"name": node["prop"].strip(), "operator": node["prop_op"]}
    if node["prop_op"] in ("exists", "does_not_exist"):
        return spec
    raw = (
        [v.strip() for v in node["prop_value"].split(",")]
        if "," in node["prop_value"]
        else [node["prop_value"]]
    )
    numeric = node.get("prop_type") == "number" or node["prop_op"] in _NUMERIC
    values: list[Any] = [_number(v) if numeric else v for v in raw]
    spec["value"] = values[0] if len(values) == 1 else values
    return spec


def _number(text: str) -> Any:
    """A number when the text is one; otherwise the text itself, for the API to refuse with the field's name."""
    try:
        number = float(text)
    except ValueError:
        return text
    return int(number) if number.is_integer() else number


def _date(text: str) -> Any:
    """``YYYY-MM-DD`` (a date input) or ``YYYYMMDD`` as the query's ``YYYYMMDD`` integer."""
    digits = text.replace("-", "").strip()
    return int(digits) if digits.isdigit() and len(digits) == 8 else text


# Query JSON → tree (for opening a saved segment).


class NotRepresentable(ValueError):
    """The definition uses parts the builder does not show; the page opens it as JSON."""


def tree_from_definition(query: Mapping[str, Any]) -> Node:
    if not query:
        return empty_root()
    if (
        set(query) != {"conditions"}
        or not isinstance(query["conditions"], list)
        or len(query["conditions"]) != 1
    ):
        raise NotRepresentable("only a single conditions tree opens in the builder")
    node = _from_condition(query["conditions"][0])
    if node["kind"] != "group":
        node = {**empty_root(), "children": [node]}
    return node


def _from_condition(condition: Any, negate: bool = False) -> Node:
    if not isinstance(condition, dict) or len(condition) != 1:
        raise NotRepresentable("a condition has exactly one key")
    ((key, spec),) = condition.items()
    if key == "not":
        return _from_condition(spec, negate=not negate)
    if key in ("all", "any"):
        return {
            "kind": "group",
            "match": key,
            "negate": negate,
            "children": [_from_condition(c) for c in spec],
        }
    reader = _LEAF_READERS.get(key)
    if reader is None or not isinstance(spec, dict):
        raise NotRepresentable(f"{key} is not shown by the builder")
    node = new_node(key)
    node["negate"] = negate
    reader(node, key, spec)
    return node


_EVENT_PARTS = frozenset(
    {"event_name", "last_days", "event_properties", "operator", "value", "property", "function"}
)


def _read_event(node: Node, key: str, spec: Mapping[str, Any]) -> None:
    """did, did_not and aggregate: the event and its window, then did's property filter and count or the
    aggregate's property, function and comparison."""
    if set(spec) - _EVENT_PARTS:
        raise NotRepresentable(f"{key} with parts the builder does not show")
    node["event"] = str(spec.get("event_name", ""))
    node["days"] = str(spec.get("last_days", ""))
    if key == "did":
        props = spec.get("event_properties") or []
        if len(props) > 1:
            raise NotRepresentable("more than one event property filter")
        if props:
            _to_property(node, props[0])
        if "operator" in spec:
            node["count_op"], node["count"] = spec["operator"], str(spec.get("value", ""))
    if key == "aggregate":
        node.update(prop=str(spec.get("property", "")), function=spec.get("function", "sum"))
        node.update(count_op=spec.get("operator", "greater_than"), count=str(spec.get("value", "")))


def _read_profile(node: Node, key: str, spec: Mapping[str, Any]) -> None:
    _to_property(node, spec)


def _read_seen(node: Node, key: str, spec: Mapping[str, Any]) -> None:
    node.update({"from": _iso(spec.get("from")), "to": _iso(spec.get("to"))})


def _read_funnel(node: Node, key: str, spec: Mapping[str, Any]) -> None:
    node.update(
        steps=", ".join(str(s.get("event_name", "")) for s in spec.get("steps", [])),
        hours=str(round(int(spec.get("within_seconds", 0)) / 3600, 2)).removesuffix(".0"),
    )
    node.update({"from": _iso(spec.get("from")), "to": _iso(spec.get("to"))})


def _read_retention(node: Node, key: str, spec: Mapping[str, Any]) -> None:
    first, returned = spec.get("first", {}), (spec.get("returned") or [{}])
    if len(returned) != 1:
        raise NotRepresentable("retention with more than one return window")
    node.update(event=str(first.get("event_name", "")), returned_event=str(returned[0].get("event_name", "")))
    node.update({"from": _iso(first.get("from")), "to": _iso(first.get("to"))})
    node.update(returned_from=_iso(returned[0].get("from")), returned_to=_iso(returned[0].get("to")))


# One reader per leaf kind: fills the builder's node from the condition's spec, or refuses what it cannot show.
_LEAF_READERS: Mapping[str, Callable[[Node, str, Mapping[str, Any]], None]] = {
    "did": _read_event,
    "did_not": _read_event,
    "aggregate": _read_event,
    "profile": _read_profile,
    "first_seen": _read_seen,
    "last_seen": _read_seen,
    "funnel": _read_funnel,
    "retention": _read_retention,
}


def _to_property(node: Node, spec: Mapping[str, Any]) -> None:
    value = spec.get("value", "")
    values = value if isinstance(value, list) else [value]
    node["prop"] = str(spec.get("name", ""))
    node["prop_op"] = str(spec.get("operator", "equals"))
    node["prop_value"] = ", ".join(str(v) for v in values)
    node["prop_type"] = (
        "number"
        if values and all(isinstance(v, int | float) and not isinstance(v, bool) for v in values)
        else "text"
    )


def _iso(value: Any) -> str:
    text = str(value or "")
    return f"{text[:4]}-{text[4:6]}-{text[6:8]}" if len(text) == 8 and text.isdigit() else text
