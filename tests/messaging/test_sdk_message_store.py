"""The store of in-app and inbox messages waiting for users' SDKs, on SQLite and PostgreSQL: queued once per
outbox key, taken by one request however many gateways ask at once, given again to a retry of that request only,
seen by every gateway's index without a query per request, attributed once, withdrawn by an objection."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from tapwire_core.control.marketing_objections.operations import record_objection
from tapwire_core.control.messaging.models import CampaignRow
from tapwire_core.control.sdk_messages import (
    MAX_PER_ANSWER,
    KeyFilter,
    QueuedMessage,
    SdkMessageKeyRow,
    SdkMessageRow,
    WaitingSdkMessages,
    attribute,
    enqueue,
    take,
)
from tapwire_core.control.store import ControlStore

pytestmark = pytest.mark.integration

ACCOUNT = "ACC-SDK-1"
NOW = 1_800_000_000_000


async def _campaign(store: ControlStore, channel: str = "inbox") -> int:
    await store.upsert_account(
        ACCOUNT, passcode="passcode-sdk-0123456789", write_key="writekey-sdk-0123456789", region="eu1"
    )
    async with AsyncSession(store.engine) as session, session.begin():
        row = CampaignRow(
            account_id=ACCOUNT,
            name="welcome",
            kind="campaign",
            channel=channel,
            status="running",
            audience={},
            variants=[],
            rules={},
            scheduled_ms=NOW,
            cutoff_ms=NOW + 86_400_000,
        )
        session.add(row)
        await session.flush()
        return int(row.id)


def _message(
    campaign_id: int, key: str, *, user: str = "i:ann", kind: str = "campaign", ttl_ms: int = 60_000
) -> QueuedMessage:
    return QueuedMessage(
        account_id=ACCOUNT,
        campaign_id=campaign_id,
        variant="A",
        channel="inbox",
        kind=kind,
        user_key=user,
        message_key=key,
        lookup_keys=[user, f"o:{user[2:]}-phone"],
        content={"title": "Hello"},
        created_ms=NOW,
        expires_ms=NOW + ttl_ms,
    )


async def test_a_message_is_queued_once_and_taken_by_one_request(store: ControlStore) -> None:
    campaign = await _campaign(store)
    assert await enqueue(store.engine, _message(campaign, "k1"))
    assert not await enqueue(store.engine, _message(campaign, "k1")), "a repeated send queues nothing more"
    index = WaitingSdkMessages(store.engine, wall_ms=lambda: NOW)
    await index.fresh()
    assert index.may_wait(ACCOUNT, ["o:ann-phone"]) and index.may_wait(ACCOUNT, ["o:x", "i:ann"])
    assert not index.may_wait(ACCOUNT, ["o:somebody-else"])
    assert not index.may_wait("OTHER-ACCOUNT", ["o:ann-phone"])

    # Two gateways take it at the same moment, by the device and by the person: one request gets it.
    first, second = await asyncio.gather(
        take(store.engine, account_id=ACCOUNT, keys=["o:ann-phone"], request="r1", now_ms=NOW + 1),
        take(store.engine, account_id=ACCOUNT, keys=["o:x", "i:ann"], request="r2", now_ms=NOW + 1),
    )
    assert sorted([len(first), len(second)]) == [0, 1]
    winner = "r1" if first else "r2"
    (message,) = first or second
    assert message.wzrk_id == f"{campaign}_{message.id}" and message.content == {"title": "Hello"}
    # A retry of the winning request gets it again; any other request nothing.
    again = await take(store.engine, account_id=ACCOUNT, keys=["i:ann"], request=winner, now_ms=NOW + 2)
    assert [m.id for m in again] == [message.id]
    assert await take(store.engine, account_id=ACCOUNT, keys=["i:ann"], request="r3", now_ms=NOW + 2) == []
    assert await take(store.engine, account_id="OTHER", keys=["i:ann"], request=winner, now_ms=NOW + 2) == []


async def test_expired_messages_are_not_taken(store: ControlStore) -> None:
    campaign = await _campaign(store)
    await enqueue(store.engine, _message(campaign, "k-old", ttl_ms=10))
    assert await take(store.engine, account_id=ACCOUNT, keys=["i:ann"], request="r", now_ms=NOW + 11) == []
    index = WaitingSdkMessages(store.engine, wall_ms=lambda: NOW + 11)
    await index.fresh()
    assert not index.may_wait(ACCOUNT, ["i:ann"]), "the filter holds only messages still waiting"


async def test_the_filter_learns_new_messages_and_forgets_checked_keys(store: ControlStore) -> None:
    campaign = await _campaign(store)
    clock = [0.0]
    index = WaitingSdkMessages(store.engine, refresh_s=1.0, clock=lambda: clock[0], wall_ms=lambda: NOW)
    assert index.stale()
    await index.fresh()
    assert not index.stale() and not index.may_wait(ACCOUNT, ["i:ann"])
    await enqueue(store.engine, _message(campaign, "k2"))
    await index.fresh()
    assert not index.may_wait(ACCOUNT, ["i:ann"]), "not read again before refresh_s"
    clock[0] = 1.5
    await index.fresh()
    assert index.may_wait(ACCOUNT, ["i:ann"]) and index.rows_read == 2, "an update reads only the new keys"
    # Another gateway delivers it; this one asks once, finds nothing, and asks no more for these keys.
    await take(store.engine, account_id=ACCOUNT, keys=["i:ann"], request="elsewhere", now_ms=NOW + 5)
    assert await take(store.engine, account_id=ACCOUNT, keys=["i:ann"], request="here", now_ms=NOW + 5) == []
    index.checked(ACCOUNT, ["i:ann"], "here", took=False)
    assert not index.may_wait(ACCOUNT, ["i:ann"]) and index.may_wait(ACCOUNT, ["o:ann-phone"])
    assert index.recent_request(ACCOUNT, "i:ann") is None
    # A newer message for the same person makes the key worth asking about again.
    await enqueue(store.engine, _message(campaign, "k3"))
    clock[0] = 3.0
    await index.fresh()
    assert index.may_wait(ACCOUNT, ["i:ann"])
    index.checked(ACCOUNT, ["i:ann"], "took-it", took=True)
    assert index.recent_request(ACCOUNT, "i:ann") == "took-it"


def test_the_key_filter_has_no_false_negatives_and_few_false_positives() -> None:
    key_filter = KeyFilter(10_000)
    members = [(ACCOUNT, f"o:device-{n}") for n in range(10_000)]
    for member in members:
        key_filter.add(member)
    assert all(member in key_filter for member in members)
    strangers = sum((ACCOUNT, f"o:stranger-{n}") in key_filter for n in range(20_000))
    assert strangers < 20_000 * 0.02


async def test_the_sdks_events_are_attributed_and_counted_once(store: ControlStore) -> None:
    campaign = await _campaign(store)
    await enqueue(store.engine, _message(campaign, "k3"))
    (message,) = await take(store.engine, account_id=ACCOUNT, keys=["i:ann"], request="r", now_ms=NOW)
    found = await attribute(
        store.engine, account_id=ACCOUNT, wzrk_id=message.wzrk_id, interaction="viewed", ts_ms=NOW
    )
    assert found is not None and (found.campaign_id, found.variant, found.channel, found.user_key) == (
        campaign,
        "A",
        "inbox",
        "i:ann",
    )
    assert found.first
    again = await attribute(
        store.engine, account_id=ACCOUNT, wzrk_id=message.wzrk_id, interaction="viewed", ts_ms=NOW
    )
    assert again is not None and not again.first
    for foreign in (
        f"{campaign}_{message.id + 1}",
        f"{campaign + 1}_{message.id}",
        "17_x",
        "1680000000_20240101",
    ):
        assert (
            await attribute(
                store.engine, account_id=ACCOUNT, wzrk_id=foreign, interaction="viewed", ts_ms=NOW
            )
            is None
        )
    assert (
        await attribute(
            store.engine, account_id="OTHER", wzrk_id=message.wzrk_id, interaction="viewed", ts_ms=NOW
        )
        is None
    )


async def test_an_objection_withdraws_waiting_promotional_messages_only(store: ControlStore) -> None:
    campaign = await _campaign(store)
    await enqueue(store.engine, _message(campaign, "promo"))
    await enqueue(store.engine, _message(campaign, "receipt", kind="transactional"))
    async with AsyncSession(store.engine) as session, session.begin():
        await record_objection(
            session,
            account_id=ACCOUNT,
            keys=["i:ann"],
            request_id=None,
            at=datetime.fromtimestamp(NOW / 1000, UTC),
        )
    taken = await take(store.engine, account_id=ACCOUNT, keys=["o:ann-phone"], request="r", now_ms=NOW)
    assert len(taken) == 1 and taken[0].content == {"title": "Hello"}
    async with AsyncSession(store.engine) as session:
        kinds = (await session.execute(select(SdkMessageRow.kind))).scalars().all()
        keys = (await session.execute(select(SdkMessageKeyRow.message_id))).scalars().all()
    assert kinds == ["transactional"] and set(keys) == {taken[0].id}, (
        "the withdrawn message's keys went with it"
    )


async def test_one_request_takes_at_most_a_full_answer(store: ControlStore) -> None:
    campaign = await _campaign(store)
    for n in range(MAX_PER_ANSWER + 5):
        await enqueue(store.engine, _message(campaign, f"many-{n}"))
    first = await take(store.engine, account_id=ACCOUNT, keys=["i:ann"], request="r1", now_ms=NOW)
    assert len(first) == MAX_PER_ANSWER and [m.id for m in first] == sorted(m.id for m in first)
    retried = await take(store.engine, account_id=ACCOUNT, keys=["i:ann"], request="r1", now_ms=NOW)
    assert [m.id for m in retried] == [m.id for m in first], "a retry gets the same answer"
    rest = await take(store.engine, account_id=ACCOUNT, keys=["i:ann"], request="r2", now_ms=NOW)
    assert len(rest) == 5 and not {m.id for m in rest} & {m.id for m in first}
