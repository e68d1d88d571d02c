from __future__ import annotations

from typing import Any

import pytest

from tapwire_core.profile_values import ProfileOp, apply, classify, fold


@pytest.mark.parametrize(
    ("value", "kind"),
    [
        ("x", "set"),
        (["a"], "set"),
        ({"$delete": 1}, "delete"),
        ({"$incr": 1}, "op"),
        ({"$add": ["a"]}, "op"),
        ({"a": 1}, "set"),
    ],
)
def test_classify(value: Any, kind: str) -> None:
    assert classify(value) == kind


def test_incr_decr_from_nothing_and_from_a_number() -> None:
    assert apply(None, "$incr", 2) == 2
    assert apply(5, "$decr", 1.5) == 3.5
    assert apply("text", "$incr", 1) == 1


def test_add_promotes_scalar_keeps_unique_and_caps() -> None:
    assert apply("a", "$add", ["b", "a"]) == ["b", "a"]
    assert apply(None, "$add", "x") == ["x"]
    many = apply([str(i) for i in range(100)], "$add", ["new"])
    assert len(many) == 100 and many[0] == "1" and many[-1] == "new"


def test_remove() -> None:
    assert apply(["a", "b", "c"], "$remove", ["a", "c"]) == ["b"]
    assert apply("a", "$remove", "a") == []


def test_fold_ignores_ops_older_than_the_set() -> None:
    ops = [
        ProfileOp("$incr", 1, 100, "e1"),
        ProfileOp("$incr", 10, 300, "e2"),
        ProfileOp("$incr", 5, 200, "e0"),
    ]
    ordered = sorted(ops, key=lambda o: (o.ts_ms, o.event_id))
    assert fold(1000, 200, ordered) == 1015
    assert fold(None, None, ordered) == 16
