"""The audience a campaign request names, as it is stored: each of the keys that name one, and each refusal."""

from __future__ import annotations

from typing import Any

import pytest

from tapwire_messaging.campaigns import (
    MAX_IDENTITIES,
    MalformedCampaign,
    UnrunnableCampaign,
    parse_campaign,
)
from tapwire_messaging.triggers.spec import parse_trigger

BASE = {"name": "c", "target_mode": "email", "content": {"subject": "s", "body": "b"}}


def _audience(**fields: Any) -> dict[str, Any]:
    return parse_campaign({**BASE, **fields}, now_ms=0).audience


@pytest.mark.parametrize(
    ("fields", "stored"),
    [
        ({"where": {"event_name": "x"}}, {"where": {"event_name": "x"}}),
        ({"segment": "all"}, {"where": {}}),
        ({"segment": 42}, {"segment_id": "42"}),
        ({"segment_id": "all"}, {"segment_id": "all"}),
        ({"segment_id": 7}, {"segment_id": "7"}),
        ({"identities": {"Identity": ["ann"]}}, {"identities": {"Identity": ["ann"]}}),
        ({"to": {"Email": ["a@example.com"]}}, {"identities": {"Email": ["a@example.com"]}}),
    ],
)
def test_each_audience_key_is_stored_in_its_one_shape(fields: dict[str, Any], stored: dict[str, Any]) -> None:
    assert _audience(**fields) == stored


def test_a_trigger_is_stored_as_the_trigger_spec_stores_it() -> None:
    trigger = {"event": "Added To Cart"}
    assert _audience(trigger=trigger) == {"trigger": parse_trigger(trigger).to_stored()}


@pytest.mark.parametrize(
    ("fields", "refusal", "message"),
    [
        ({}, MalformedCampaign, "exactly one of where, segment, segment_id, to (identities) or trigger"),
        ({"where": {}, "segment": "all"}, MalformedCampaign, "exactly one of"),
        ({"where": []}, MalformedCampaign, "where must be a CQL object"),
        ({"trigger": "Added To Cart"}, MalformedCampaign, "trigger must be an object"),
        ({"trigger": {}}, UnrunnableCampaign, "event"),
        ({"to": ["ann"]}, MalformedCampaign, "to must map identity kinds to lists"),
        ({"identities": "ann"}, MalformedCampaign, "identities must map identity kinds to lists"),
        ({"to": {"Fax": ["1"]}}, UnrunnableCampaign, "to: unknown identity kind 'Fax'"),
        ({"identities": {"Identity": []}}, UnrunnableCampaign, "identities names no recipients"),
        (
            {"to": {"Identity": [f"u{n}" for n in range(MAX_IDENTITIES + 1)]}},
            UnrunnableCampaign,
            f"to: at most {MAX_IDENTITIES} recipients per call, got {MAX_IDENTITIES + 1}",
        ),
    ],
)
def test_each_bad_audience_is_refused_naming_the_problem(
    fields: dict[str, Any], refusal: type[Exception], message: str
) -> None:
    with pytest.raises(refusal) as raised:
        _audience(**fields)
    assert type(raised.value) is refusal
    assert message in str(raised.value)
