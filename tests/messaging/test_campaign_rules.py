"""Campaign rules, typed: what a request turns into, the stored shape, and rows stored by earlier versions."""

from __future__ import annotations

from typing import Any

import pytest

from tapwire_messaging.campaign_rules import CampaignRules, ConversionGoal, FrequencyCap, WebhookTarget
from tapwire_messaging.campaigns import MalformedCampaign, UnrunnableCampaign, parse_campaign
from tapwire_messaging.rules import QuietHours

CONTENT = {"subject": "s", "body": "b"}


def _rules(**fields: Any) -> CampaignRules:
    payload = {"name": "c", "target_mode": "email", "where": {}, "content": CONTENT, **fields}
    return parse_campaign(payload, now_ms=0).rules


def test_a_request_with_every_rule_is_stored_as_before_with_quiet_hours_spelled_out() -> None:
    rules = _rules(
        control_group_percent=5,
        respect_frequency_caps=False,
        caps=[{"limit": 2, "window_s": 3600}],
        quiet_hours={"start": "22:00", "end": "8:00", "drop": True},
        throttle_per_s=50,
        conversion_goal={"event": "Charged"},
        devices=["Android"],
        event={"Amount": 42},
        labels=["spring", 7],
    )
    assert rules.to_json() == {
        "control_group_percent": 5.0,
        "respect_frequency_caps": False,
        "caps": [{"limit": 2, "window_s": 3600.0}],
        "quiet_hours": {"start": "22:00", "end": "08:00", "timezone": "UTC", "drop": True},
        "throttle_per_s": 50.0,
        "conversion_goal": {"event": "Charged", "window_s": 86400.0},
        "devices": ["android"],
        "event": {"Amount": 42},
        "labels": ["spring", "7"],
    }
    assert CampaignRules.from_json(rules.to_json()) == rules


def test_channel_specific_rules_appear_only_on_their_channel() -> None:
    push = parse_campaign(
        {"name": "p", "target_mode": "push", "where": {}, "content": {"body": "b"}}, now_ms=0
    ).rules
    assert push.to_json()["send_to_all_devices"] is False
    assert "send_to_all_devices" not in _rules().to_json()
    hook = {"url": "https://hooks.example/in", "secret": "s" * 16}
    webhook = parse_campaign(
        {"name": "w", "target_mode": "webhook", "where": {}, "content": {}, "webhook": hook}, now_ms=0
    ).rules
    assert webhook.webhook == WebhookTarget(hook["url"], hook["secret"])
    assert webhook.to_json()["webhook"] == hook
    assert "webhook" not in _rules(webhook=hook).to_json()


def test_a_cap_across_channels_keeps_its_scope_through_the_stored_shape() -> None:
    rules = _rules(caps=[{"limit": 3, "window_s": 86400, "channel": "all"}, {"limit": 1, "window_s": 3600}])
    assert rules.caps == (FrequencyCap(3, 86400.0, "all"), FrequencyCap(1, 3600.0))
    assert [cap.across_channels for cap in rules.caps] == [True, False]
    assert rules.to_json()["caps"] == [
        {"limit": 3, "window_s": 86400.0, "channel": "all"},
        {"limit": 1, "window_s": 3600.0},
    ]
    assert CampaignRules.from_json(rules.to_json()) == rules


def test_rules_stored_by_earlier_versions_read_with_defaults() -> None:
    assert CampaignRules.from_json({}) == CampaignRules()
    older = CampaignRules.from_json(
        {
            "caps": [{"limit": 1, "window_s": 60}],
            "quiet_hours": {"start": "23:00", "end": "06:00", "timezone": "Europe/Berlin"},
            "conversion_goal": {"event": "Bought", "window_s": 3600},
        }
    )
    assert older.caps == (FrequencyCap(1, 60.0),)
    assert older.quiet_hours == QuietHours(23 * 60, 6 * 60, "Europe/Berlin", drop=False)
    assert older.conversion_goal == ConversionGoal("Bought", 3600.0)
    assert older.respect_frequency_caps and older.control_group_percent == 0.0


@pytest.mark.parametrize(
    ("fields", "refusal", "message"),
    [
        ({"name": ""}, MalformedCampaign, "name is required"),
        ({"send_to_all_devices": "yes"}, MalformedCampaign, "send_to_all_devices must be true or false"),
        ({"control_group_percent": 100}, UnrunnableCampaign, "control_group_percent"),
        ({"caps": [{"limit": 0, "window_s": 1}]}, UnrunnableCampaign, r"caps\[0\]"),
        ({"caps": [{"limit": 1, "window_s": 60, "channel": "sms"}]}, UnrunnableCampaign, r"caps\[0\]"),
        ({"quiet_hours": {"start": "25:00", "end": "08:00"}}, UnrunnableCampaign, "quiet_hours.start"),
    ],
)
def test_refusals_say_whether_the_request_is_malformed_or_cannot_run(
    fields: dict[str, Any], refusal: type[Exception], message: str
) -> None:
    with pytest.raises(refusal, match=message):
        _rules(**fields)
