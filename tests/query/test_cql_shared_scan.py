"""Event conditions combined in one query share one scan of the events table; answers are the battery's job."""

from __future__ import annotations

from typing import Any

import pytest

from tapwire_query.cql import CompileOptions, compile_event_count, compile_user_count, parse_query
from tests.query.dataset import ACCOUNT, TODAY

OPTIONS = CompileOptions(today=TODAY)
JAN = {"from": 20260101, "to": 20260131}
OPENED = {"event_name": "App Opened", **JAN}
BOUGHT = {"event_name": "Charged", **JAN}


def scans(body: dict[str, Any], *, events: bool = False) -> int:
    compile_ = compile_event_count if events else compile_user_count
    compiled = compile_(parse_query(body), account_id=ACCOUNT, options=OPTIONS)
    return compiled.sql.count("FROM events")


@pytest.mark.parametrize(
    "body",
    [
        {**OPENED, "conditions": [{"did_not": BOUGHT}]},
        {
            "conditions": [
                {"did": {**OPENED, "operator": "greater_than_equals", "value": 5}},
                {"did_not": BOUGHT},
            ]
        },
        {"conditions": [{"did_not": OPENED}, {"did_not": BOUGHT}]},
        {"advanced_query": {"did_any": {"any_events": [OPENED, BOUGHT]}}},
        {"conditions": [{"any": [{"did": OPENED}, {"not": {"did": BOUGHT}}]}]},
    ],
)
def test_event_conditions_share_one_scan(body: dict[str, Any]) -> None:
    assert scans(body) == 1


def test_other_conditions_keep_their_own_sets() -> None:
    body = {
        **OPENED,
        "common_profile_properties": {"profile_fields": [{"name": "Plan", "value": "pro"}]},
        "conditions": [
            {"did_not": BOUGHT},
            {
                "funnel": {
                    "steps": [{"event_name": "Searched"}, {"event_name": "Shared"}],
                    "within_seconds": 600,
                    **JAN,
                }
            },
        ],
    }
    # One shared scan for the two event conditions, one for the funnel.
    assert scans(body) == 2


def test_event_rows_exclude_through_one_set() -> None:
    body = {**OPENED, "conditions": [{"did_not": BOUGHT}, {"did_not": {"event_name": "Shared", **JAN}}]}
    # The base rows, and one shared set for the two exclusions.
    assert scans(body, events=True) == 2


def test_every_bound_value_is_used_with_a_snapshot() -> None:
    # Paged reads pin a snapshot; the scans a shared one replaces must not leave their values behind.
    body = {
        **OPENED,
        "conditions": [{"did": {**BOUGHT, "operator": "less_than", "value": 3}}, {"did_not": OPENED}],
    }
    options = CompileOptions(today=TODAY, snapshot_ms=1_770_000_000_000)
    compiled = compile_user_count(parse_query(body), account_id=ACCOUNT, options=options)
    assert compiled.sql.count("FROM events") == 1
    assert all(f"{{{name}:" in compiled.sql for name in compiled.params)
