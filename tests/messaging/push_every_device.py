"""What the push end-to-end tests share once tokens are registered: waiting until the user's tokens count as
theirs, then a push campaign to the user's identity on every device, and its result."""

from __future__ import annotations

import time
from typing import Any

from tests.infra.suite_api import AccountApi, wait_for


def push_to_every_device(
    api: AccountApi, *, identity: str, name: str, what: str, timeout_s: float
) -> dict[str, Any]:
    """Push to ``identity`` on all of its devices once the suite is ready, and return the campaign's result
    when it completes. ``what`` names, for a timeout, what the tokens wait for.

    Ready once the tokens (registered today) are stored and their key counts as the user's: only then is the one
    person who registered tokens today the one whose profile says Name=``name``, and there is one person in all.
    ("Every user is one person" alone is no proof: the count of all users can read 1 before the token events are
    visible.)
    """
    today = int(time.strftime("%Y%m%d", time.gmtime()))
    tokens_of_user = {
        "event_name": "__push_token",
        "from": today,
        "to": today,
        "common_profile_properties": {
            "profile_fields": [{"name": "Name", "operator": "equals", "value": name}]
        },
    }
    wait_for(
        lambda: api.reach(tokens_of_user, channel="push") == 1 and api.reach({}, channel="push") == 1,
        what,
        timeout_s=timeout_s,
        poll_s=0.2,
    )
    campaign = {
        "name": "every device",
        "target_mode": "push",
        "to": {"Identity": [identity]},
        "send_to_all_devices": True,
        "content": {"title": "Hi", "body": "News"},
    }
    created = api.post("/1/targets/create.json", campaign)
    assert created.status_code == 200, created.text
    campaign_id = created.json()["id"]
    wait_for(
        lambda: api.campaign_result(campaign_id) is not None,
        "the campaign to complete",
        timeout_s=timeout_s,
        poll_s=0.2,
    )
    result = api.campaign_result(campaign_id)
    assert result is not None
    return result
