"""Trigger property filters on one event, in memory: the same meaning as the filter in a segment query."""

from __future__ import annotations

from typing import Any

import pytest

from tapwire_messaging.triggers.filters import matches_all
from tapwire_messaging.triggers.spec import TriggerRefused, TriggerSpec, parse_trigger
from tapwire_query.cql.ast import PropertyFilter

EVENT = {
    "price": 20,
    "product": "red shoes",
    "gift": True,
    "code": "5",
    "Items": [{"sku": "a1"}, {"sku": "b2"}],
}


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ({"name": "price", "operator": "greater_than", "value": 10}, True),
        ({"name": "price", "operator": "less_than", "value": 10}, False),
        ({"name": "price", "value": [5, 20]}, True),
        ({"name": "code", "value": 5}, False),  # typed: the string "5" is not the number 5
        ({"name": "code", "value": "5"}, True),
        ({"name": "product", "operator": "contains", "value": "shoe"}, True),
        ({"name": "price", "operator": "contains", "value": "2"}, False),  # contains looks into strings only
        ({"name": "gift", "value": "True"}, True),
        ({"name": "gift", "value": "False"}, False),
        ({"name": "missing", "operator": "not_equals", "value": "x"}, False),  # needs the property to exist
        ({"name": "product", "operator": "not_equals", "value": "x"}, True),
        ({"name": "missing", "operator": "does_not_exist"}, True),
        ({"name": "price", "operator": "exists"}, True),
        ({"name": "product", "operator": "greater_than", "value": 1}, False),
        ({"name": "Items.sku", "value": "b2"}, True),
        ({"name": "Items.sku", "value": "c3"}, False),
    ],
)
def test_a_filter_holds_as_in_a_segment(raw: dict[str, Any], expected: bool) -> None:
    assert matches_all([PropertyFilter.model_validate(raw)], EVENT) is expected


def test_every_filter_must_hold() -> None:
    filters = [
        PropertyFilter.model_validate({"name": "price", "operator": "greater_than", "value": 10}),
        PropertyFilter.model_validate({"name": "product", "value": "hat"}),
    ]
    assert matches_all(filters, EVENT) is False
    assert matches_all([], EVENT) is True


def test_a_trigger_round_trips_through_its_stored_shape() -> None:
    spec = parse_trigger(
        {
            "event": "Added To Cart",
            "filters": [{"name": "price", "operator": "greater_than", "value": 10}],
            "not_done": {"event": "Charged", "within_s": 3600},
            "delay_s": 60,
            "frequency": {"mode": "window", "limit": 2, "window_s": 86400},
        }
    )
    assert TriggerSpec.from_stored(spec.to_stored()) == spec
    assert spec.wait_ms == 3_660_000 and spec.repeats
    assert parse_trigger({"event": "A"}).repeats is False


def test_segment_and_where_together_are_refused() -> None:
    with pytest.raises(TriggerRefused, match="segment_id or where"):
        parse_trigger({"event": "A", "segment_id": "s", "where": {}})
