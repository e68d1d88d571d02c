"""The gateway's side of in-app and inbox messages, in-process (``GET /a`` over a recording bus and a SQLite
control store, requests made by the SDK's own encoder): requests of users with nothing waiting never ask the
database for messages, however many come while another user's message waits; the user's request takes it once
and publishes ``Notification Delivered``; the SDK's viewed event comes back attributed."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from sqlalchemy import event as sa_event
from sqlalchemy.ext.asyncio import AsyncSession

from tapwire_core.control.messaging.models import CampaignRow
from tapwire_core.control.sdk_messages import QueuedMessage, enqueue
from tapwire_core.control.store import ControlStore
from tapwire_core.http.app import create_app
from tapwire_core.http.context import ServiceContext
from tapwire_core.settings import Settings
from tapwire_ingest.http.websdk import router as websdk_router
from tests.credentials import LOOKUP_DIGESTS
from tests.fakes import FakeAuthenticator, RecordingBus
from tests.websdk.requests import event, sdk_url
from tests.websdk.sdk_encoder import SdkEncoder

ACCOUNT = "TEST-WEB-MSG-1"
TR_CALL = re.compile(r"window\.\$WZRK_WR&&window\.\$WZRK_WR\.tr\((.*)\);$", re.MULTILINE)


@pytest.fixture(scope="module")
def encoder() -> Iterator[SdkEncoder]:
    with SdkEncoder() as running:
        yield running


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[ControlStore]:
    control = ControlStore(f"sqlite+aiosqlite:///{tmp_path / 'control.db'}", lookup_digests=LOOKUP_DIGESTS)
    await control.start()
    await control.upsert_account(
        ACCOUNT, passcode="passcode-webmsg-0123456", write_key="writekey-webmsg-0123456", region="eu1"
    )
    try:
        yield control
    finally:
        await control.close()


@pytest.fixture
def bus() -> RecordingBus:
    return RecordingBus()


@pytest.fixture
async def client(bus: RecordingBus, store: ControlStore) -> AsyncIterator[httpx.AsyncClient]:
    settings = Settings(bus_timeout_s=0.5, sdk_requests_per_s_per_address=1000, sdk_burst_per_address=1000)
    context = ServiceContext(
        settings=settings, authenticator=FakeAuthenticator({}), readiness=_ready, bus_=bus, store_=store
    )
    app = create_app(context, [websdk_router])
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="https://eu1.t.example"
    ) as c:
        yield c


async def _ready() -> dict[str, bool]:
    return {"fake": True}


async def _queue(store: ControlStore, user_key: str, title: str, *, device: str) -> int:
    async with AsyncSession(store.engine) as session, session.begin():
        campaign = CampaignRow(
            account_id=ACCOUNT,
            name="welcome",
            kind="campaign",
            channel="inapp",
            status="running",
            audience={},
            variants=[],
            rules={},
            scheduled_ms=0,
            cutoff_ms=2**50,
        )
        session.add(campaign)
        await session.flush()
        campaign_id = int(campaign.id)
    message = QueuedMessage(
        account_id=ACCOUNT,
        campaign_id=campaign_id,
        variant="A",
        channel="inapp",
        kind="campaign",
        user_key=user_key,
        message_key=f"key-{title}",
        lookup_keys=[user_key, f"o:{device}"],
        content={"title": title, "body": "today only"},
        created_ms=1,
        expires_ms=2**50,
    )
    assert await enqueue(store.engine, message)
    return campaign_id


def _tr(response: httpx.Response) -> dict[str, Any] | None:
    assert response.status_code == 200, response.text
    match = TR_CALL.search(response.text)
    return None if match is None else dict(orjson.loads(match.group(1)))


async def test_only_the_users_request_asks_the_database_and_takes_the_message_once(
    client: httpx.AsyncClient, store: ControlStore, bus: RecordingBus, encoder: SdkEncoder
) -> None:
    campaign_id = await _queue(store, "i:ann", "Sale", device="ann-laptop")
    takes: list[str] = []

    def count(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if "sdk_messages" in statement and statement.lstrip().upper().startswith("UPDATE"):
            takes.append(statement)

    sa_event.listen(store.engine.sync_engine, "before_cursor_execute", count)
    try:
        for n in range(30):
            url = sdk_url(
                encoder, "push", event("Browsed", {"n": n}), account_id=ACCOUNT, device_id=f"other-{n}"
            )
            assert _tr(await client.get(url)) is None
        assert takes == [], "no request of a user with nothing waiting asked for messages"

        url = sdk_url(encoder, "push", event("Browsed"), account_id=ACCOUNT, device_id="ann-laptop", rn=2)
        tr = _tr(await client.get(url))
        assert tr is not None and len(takes) == 1
        (popup,) = tr["inapp_notifs"]
        assert popup["msgContent"]["title"] == "Sale" and popup["wzrk_id"].startswith(f"{campaign_id}_")
        # The same request again (its answer lost): the same message; the next request: nothing, no query.
        assert _tr(await client.get(url)) == tr
        later = sdk_url(encoder, "push", event("Browsed"), account_id=ACCOUNT, device_id="ann-laptop", rn=3)
        assert _tr(await client.get(later)) is None
        assert len(takes) == 2, "the retry asked once more; the request after it did not ask"
    finally:
        sa_event.remove(store.engine.sync_engine, "before_cursor_execute", count)

    delivered = [e for e in bus.envelopes("tapwire.events") if e.name == "Notification Delivered"]
    assert {e.event_id for e in delivered} and all(
        e.properties["campaign_id"] == campaign_id for e in delivered
    )
    assert len({e.event_id for e in delivered}) == 1, "one delivery event, however often it is republished"

    # The SDK shows it and reports it viewed: stored with the campaign, variant and channel.
    viewed = event("Notification Viewed", {"wzrk_id": popup["wzrk_id"]})
    url = sdk_url(encoder, "push", viewed, account_id=ACCOUNT, device_id="ann-laptop", rn=4)
    assert (await client.get(url)).status_code == 200
    (stored,) = [e for e in bus.envelopes("tapwire.events") if e.name == "Notification Viewed"]
    assert stored.properties == {
        "wzrk_id": popup["wzrk_id"],
        "campaign_id": campaign_id,
        "variant": "A",
        "channel": "inapp",
    }
    # A wzrk_id of someone else's campaign (CleverTap's own, say) is stored as sent.
    foreign = event("Notification Viewed", {"wzrk_id": "1680000000_20240101"})
    url = sdk_url(encoder, "push", foreign, account_id=ACCOUNT, device_id="ann-laptop", rn=5)
    assert (await client.get(url)).status_code == 200
    assert [e.properties for e in bus.envelopes("tapwire.events") if e.name == "Notification Viewed"][1] == {
        "wzrk_id": "1680000000_20240101"
    }
