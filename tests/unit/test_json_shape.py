"""The JSON shape measured on the text: exact for every valid JSON text, whatever its strings hold."""

from __future__ import annotations

import json
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tapwire_core.http.json_shape import JsonTooDeep, JsonTooLarge, check_shape

# Strings full of the bytes that carry structure, and escapes, are where a text-level measure could go wrong.
tricky_text = st.text(alphabet='ab[]{},:"\\\n\t é\u2028', max_size=12)
values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.floats(allow_nan=False) | tricky_text,
    lambda children: st.lists(children, max_size=5) | st.dictionaries(tricky_text, children, max_size=5),
    max_leaves=40,
)


def decoded_shape(value: Any) -> tuple[int, int]:
    """Values (the top one, each element and member; an empty container counts one) and nesting depth."""
    count, deepest = 1, 0
    stack = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, dict | list):
            deepest = max(deepest, depth)
            children = list(node.values()) if isinstance(node, dict) else node
            count += max(len(children), 1)
            stack.extend((child, depth + 1) for child in children)
    return count, deepest


def encodings(value: Any) -> list[bytes]:
    return [
        orjson.dumps(value),
        json.dumps(value).encode(),  # \uXXXX escapes, spaces after separators
        json.dumps(value, ensure_ascii=False, indent=1).encode(),
    ]


@settings(max_examples=400, deadline=None)
@given(values)
def test_shape_is_exact_at_the_limits(value: Any) -> None:
    count, depth = decoded_shape(value)
    for text in encodings(value):
        assert check_shape(text, max_values=count, max_depth=depth) >= count
        with pytest.raises(JsonTooLarge):
            check_shape(text, max_values=count - 1, max_depth=10**6)
        if depth:
            with pytest.raises(JsonTooDeep):
                check_shape(text, max_values=10**9, max_depth=depth - 1)


def test_commas_and_brackets_inside_strings_are_not_counted() -> None:
    text = orjson.dumps({"a": "[[[[,,,,{{{{", "b": ['"]]]', "\\"]})
    assert check_shape(text, max_values=5, max_depth=2) == 5  # the object, two members, two elements


def test_tiny_objects_are_refused_without_decoding() -> None:
    text = b'{"d":[' + b"{}," * 1_000_000 + b"{}]}"
    with pytest.raises(JsonTooLarge):
        check_shape(text, max_values=200_000, max_depth=32)


def test_deep_nesting_is_refused() -> None:
    text = b"[" * 10_000 + b"]" * 10_000
    with pytest.raises(JsonTooDeep):
        check_shape(text, max_values=200_000, max_depth=32)
