"""The in-app and inbox channels as campaigns, journeys and the outbox see them: names CleverTap's API uses,
the content they need, how long a message waits, and one outbox row per user addressed to the user."""

from __future__ import annotations

import pytest

from tapwire_messaging.campaign_store import Campaign
from tapwire_messaging.campaigns import UnrunnableCampaign, parse_campaign
from tapwire_messaging.delivery.filling import outbox_rows
from tapwire_messaging.journeys.definition import parse_definition
from tapwire_messaging.journeys.store import send_steps
from tapwire_messaging.recipients import RecipientProfile

NOW = 1_800_000_000_000


def _request(**fields: object) -> dict[str, object]:
    return {"name": "n", "to": {"Identity": ["ann"]}, "content": {"title": "Hi"}, **fields}


@pytest.mark.parametrize(
    ("mode", "channel", "ttl_s"),
    [("inapp", "inapp", 7 * 86400), ("in-app", "inapp", 7 * 86400), ("inbox", "inbox", 30 * 86400)],
)
def test_the_channels_by_their_names_with_their_default_lifetimes(
    mode: str, channel: str, ttl_s: int
) -> None:
    spec = parse_campaign(_request(target_mode=mode), now_ms=NOW)
    assert spec.channel == channel and spec.rules.message_ttl_s == ttl_s
    assert spec.rules.to_json()["message_ttl_s"] == ttl_s
    assert parse_campaign(_request(channel=mode, message_ttl_s=3600), now_ms=NOW).rules.message_ttl_s == 3600


def test_a_title_and_a_sensible_lifetime_are_required() -> None:
    with pytest.raises(UnrunnableCampaign, match=r"content\.title is required for inbox messages"):
        parse_campaign(_request(channel="inbox", content={"body": "no title"}), now_ms=NOW)
    for ttl in (0, 59, 91 * 86400, "1 day", True):
        with pytest.raises(UnrunnableCampaign, match="message_ttl_s"):
            parse_campaign(_request(channel="inapp", message_ttl_s=ttl), now_ms=NOW)
    assert (
        parse_campaign(
            _request(channel="email", content={"subject": "s", "body": "b"}), now_ms=NOW
        ).rules.message_ttl_s
        is None
    )


def test_a_journey_may_send_an_inbox_message() -> None:
    definition = parse_definition(
        {
            "entry": {"trigger": {"event": "Signed Up"}},
            "start": "hello",
            "steps": {"hello": {"type": "send", "channel": "inbox", "content": {"title": "Welcome"}}},
        }
    )
    (step,) = send_steps(definition).values()
    assert parse_campaign(step.campaign_request("journey: hello"), now_ms=NOW).channel == "inbox"


def test_the_outbox_row_of_an_sdk_message_is_addressed_to_the_user() -> None:
    spec = parse_campaign(_request(channel="inapp"), now_ms=NOW)
    campaign = Campaign(
        id=5,
        account_id="A",
        name=spec.name,
        kind=spec.kind,
        channel=spec.channel,
        status="running",
        priority=spec.priority,
        audience=spec.audience,
        variants=spec.variants,
        rules=spec.rules,
        scheduled_ms=NOW,
        cutoff_ms=spec.cutoff_ms,
        filled=False,
        audience_size=1,
        started_ms=NOW,
        finished_ms=None,
    )
    (row,) = outbox_rows(campaign, [("A", 1.0)], RecipientProfile("i:ann"), set())
    assert (row["address"], row["channel"], row["status"], row["device"]) == ("i:ann", "inapp", "pending", "")
