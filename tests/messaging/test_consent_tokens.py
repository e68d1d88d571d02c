"""Dead push tokens in the consent table, whatever their length: a web push endpoint can be longer than the
subject column, on PostgreSQL as on SQLite."""

from __future__ import annotations

import pytest

from tapwire_core.control.messaging import consent
from tapwire_core.control.store import ControlStore

pytestmark = pytest.mark.integration

ENDPOINT = "https://updates.push.services.mozilla.com/wpush/v2/" + "gAAAAABl" * 60


async def test_a_long_endpoint_is_remembered_as_gone_and_found_again(store: ControlStore) -> None:
    assert len(ENDPOINT) > 320
    short = "fcm-token-1"
    for token in (ENDPOINT, short):
        await consent.set_consent(
            store.engine,
            account_id="ACC-1",
            kind="token",
            subject=token,
            channel="push",
            state="unsubscribed",
            source="provider",
            now_ms=1,
        )
    found = await consent.dead_tokens(
        store.engine, account_id="ACC-1", tokens=[ENDPOINT, short, ENDPOINT + "x", "other"]
    )
    assert found == {ENDPOINT, short}
