"""The outbox, campaign, interaction and consent tables behave the same on SQLite (embedded) and PostgreSQL (distributed)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tapwire_core.control.messaging import consent
from tapwire_core.control.store import ControlStore
from tapwire_messaging.campaign_store import Campaigns
from tapwire_messaging.campaigns import parse_campaign
from tapwire_messaging.interactions import Interactions
from tapwire_messaging.outbox import Outbox, Verdict
from tests.credentials import LOOKUP_DIGESTS

pytestmark = pytest.mark.integration

ACCOUNT = "TAP-OUTBOX-1"


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'control.db'}"
    url: str = request.getfixturevalue("fresh_postgres_url")
    return url


@pytest.fixture
async def store(store_url: str) -> AsyncIterator[ControlStore]:
    control = ControlStore(store_url, lookup_digests=LOOKUP_DIGESTS)
    await control.start()
    await control.upsert_account(ACCOUNT, passcode="p" * 20, write_key="w" * 20, region="eu1")
    try:
        yield control
    finally:
        await control.close()


async def _campaign(outbox: Outbox, users: int, *, now: int = 1_000) -> int:
    spec = parse_campaign(
        {"name": "c", "target_mode": "email", "where": {}, "content": {"subject": "s", "body": "b"}},
        now_ms=now,
    )
    campaigns = Campaigns(outbox.engine)
    campaign_id = await campaigns.create(ACCOUNT, spec)
    await campaigns.start(campaign_id, now)
    await outbox.add([_row(campaign_id, f"i:u{i}") for i in range(users)])
    return campaign_id


def _row(campaign_id: int, user: str) -> dict[str, object]:
    return {
        "campaign_id": campaign_id,
        "account_id": ACCOUNT,
        "variant": "A",
        "user_key": user,
        "channel": "email",
        "address": f"{user[2:]}@example.com",
        "platform": None,
        "context": {},
        "priority": 0,
        "status": "pending",
        "due_ms": 0,
        "attempts": 0,
    }


async def test_filling_twice_keeps_one_row_per_key(store: ControlStore) -> None:
    outbox = Outbox(store.engine)
    campaign_id = await _campaign(outbox, 50)
    await outbox.add([_row(campaign_id, f"i:u{i}") for i in range(60)])
    counts = await outbox.status_counts([campaign_id])
    assert counts == {campaign_id: {"A": {"pending": 60}}}


async def test_each_device_has_its_own_row_and_refilling_adds_none(store: ControlStore) -> None:
    outbox = Outbox(store.engine)
    campaign_id = await _campaign(outbox, 0)
    devices = [
        _row(campaign_id, "i:ann") | {"channel": "push", "device": device, "address": f"tok-{device}"}
        for device in ("d1", "d2")
    ]
    for _ in range(2):
        await outbox.add(devices)
    claimed = await outbox.claim(worker="w", now_ms=2_000, lease_ms=10_000, limit=10)
    assert sorted((row.device, row.address) for row in claimed) == [("d1", "tok-d1"), ("d2", "tok-d2")]
    # Recording one device's outcome leaves the other's row as it was.
    await outbox.record([Verdict(claimed[0].id, "unregistered", "gone")], worker="w")
    counts = await outbox.status_counts([campaign_id])
    assert counts[campaign_id]["A"] == {"unregistered": 1, "sending": 1}


async def test_concurrent_claimers_never_share_a_row(store: ControlStore, store_url: str) -> None:
    outbox = Outbox(store.engine)
    campaign_id = await _campaign(outbox, 600)
    others = [ControlStore(store_url, lookup_digests=LOOKUP_DIGESTS) for _ in range(2)]
    for other in others:
        await other.start()
    try:
        claimers = [Outbox(s.engine) for s in (store, *others)]
        seen: list[list[int]] = [[] for _ in claimers]

        async def drain(index: int) -> None:
            while rows := await claimers[index].claim(
                worker=f"w{index}", now_ms=2_000, lease_ms=60_000, limit=25
            ):
                seen[index].extend(r.id for r in rows)

        await asyncio.gather(*(drain(i) for i in range(len(claimers))))
    finally:
        for other in others:
            await other.close()
    claimed = [row for rows in seen for row in rows]
    assert len(claimed) == len(set(claimed)) == 600
    assert (await outbox.status_counts([campaign_id]))[campaign_id] == {"A": {"sending": 600}}


async def test_expired_lease_is_claimed_again_and_only_the_holder_records(store: ControlStore) -> None:
    outbox = Outbox(store.engine)
    await _campaign(outbox, 1)
    (first,) = await outbox.claim(worker="dead", now_ms=2_000, lease_ms=1_000, limit=10)
    assert await outbox.claim(worker="live", now_ms=2_500, lease_ms=1_000, limit=10) == []
    (again,) = await outbox.claim(worker="live", now_ms=3_001, lease_ms=1_000, limit=10)
    assert again.id == first.id and again.attempts == 2
    await outbox.record([Verdict(first.id, "sent", sent_ms=3_100)], worker="dead")  # too late: not its row
    await outbox.record([Verdict(first.id, "sent", sent_ms=3_200)], worker="live")
    assert await outbox.recipients(again.campaign_id, ["sent"]) == [("i:u0", "A", 3_200)]


async def test_deferred_rows_wait_for_their_time(store: ControlStore) -> None:
    outbox = Outbox(store.engine)
    await _campaign(outbox, 1)
    (row,) = await outbox.claim(worker="w", now_ms=2_000, lease_ms=1_000, limit=10)
    await outbox.record([Verdict(row.id, "pending", "quiet hours", due_ms=10_000)], worker="w")
    assert await outbox.claim(worker="w", now_ms=9_999, lease_ms=1_000, limit=10) == []
    assert [r.id for r in await outbox.claim(worker="w", now_ms=10_000, lease_ms=1_000, limit=10)] == [row.id]


async def test_stopping_a_campaign_stops_its_pending_rows(store: ControlStore) -> None:
    outbox = Outbox(store.engine)
    campaign_id = await _campaign(outbox, 20)
    campaigns = Campaigns(store.engine)
    assert await campaigns.stop(campaign_id, 5_000)
    assert not await campaigns.stop(campaign_id, 5_001)  # already stopped: a no-op
    assert await outbox.claim(worker="w", now_ms=6_000, lease_ms=1_000, limit=50) == []
    assert (await outbox.status_counts([campaign_id]))[campaign_id] == {"A": {"stopped": 20}}
    assert await campaigns.stopped_among([campaign_id]) == {campaign_id}


async def test_consent_objections_unsubscribes_and_resubscribes(store: ControlStore) -> None:
    engine = store.engine
    recipients = [
        consent.Recipient("i:ann", "email", email="ann@example.com"),
        consent.Recipient("i:bob", "email", email="Bob@Example.com"),
        consent.Recipient("i:bob", "sms", phone="+4915100"),
        consent.Recipient("i:cy", "email", email="cy@example.com"),
    ]

    async def refused() -> set[int]:
        return await consent.blocked(engine, account_id=ACCOUNT, recipients=recipients)

    assert await refused() == set()
    await consent.record_objection(engine, account_id=ACCOUNT, user_key="i:ann", source="privacy", now_ms=1)
    await consent.set_consent(
        engine,
        account_id=ACCOUNT,
        kind="email",
        subject="BOB@example.com",
        channel="email",
        state="unsubscribed",
        source="subscribe_api",
        now_ms=2,
    )
    assert await refused() == {0, 1}
    # A later resubscribe of the address lifts the unsubscribe, but never an objection.
    await consent.set_consent(
        engine,
        account_id=ACCOUNT,
        kind="email",
        subject="bob@example.com",
        channel="email",
        state="subscribed",
        source="subscribe_api",
        now_ms=3,
    )
    await consent.set_consent(
        engine,
        account_id=ACCOUNT,
        kind="user",
        subject="i:ann",
        channel="email",
        state="subscribed",
        source="subscribe_api",
        now_ms=4,
    )
    assert await refused() == {0}
    await consent.lift_objection(engine, account_id=ACCOUNT, user_key="i:ann")
    assert await refused() == set()
    # Unsubscribing a user from all channels covers every channel.
    await consent.set_consent(
        engine,
        account_id=ACCOUNT,
        kind="user",
        subject="i:bob",
        channel="all",
        state="unsubscribed",
        source="one_click",
        now_ms=5,
    )
    assert await refused() == {1, 2}


async def test_higher_priority_rows_are_claimed_first(store: ControlStore) -> None:
    outbox = Outbox(store.engine)
    bulk = await _campaign(outbox, 50)
    spec = parse_campaign(
        {
            "name": "t",
            "channel": "email",
            "to": {"Identity": ["vip"]},
            "content": {"subject": "s", "body": "b"},
        },
        now_ms=1_000,
        kind="transactional",
    )
    campaigns = Campaigns(store.engine)
    urgent = await campaigns.create(ACCOUNT, spec)
    await campaigns.start(urgent, 1_000)
    await outbox.add([_row(urgent, "i:vip") | {"priority": spec.priority}])
    (first,) = await outbox.claim(worker="w", now_ms=2_000, lease_ms=1_000, limit=1)
    assert (first.campaign_id, first.user_key) == (urgent, "i:vip")
    assert {
        r.campaign_id for r in await outbox.claim(worker="w", now_ms=2_000, lease_ms=1_000, limit=100)
    } == {bulk}


async def test_erasure_strips_personal_data_but_keeps_counts_and_suppressions(store: ControlStore) -> None:
    from tapwire_core.control.messaging.erasure import erase_user

    outbox = Outbox(store.engine)
    campaign_id = await _campaign(outbox, 3)
    interactions = Interactions(store.engine)
    await interactions.record(campaign_id=campaign_id, variant="A", user_key="i:u1", kind="clicked", ts_ms=5)
    await consent.record_objection(
        store.engine, account_id=ACCOUNT, user_key="i:u1", source="privacy", now_ms=6
    )
    assert await erase_user(store.engine, account_id=ACCOUNT, user_key="i:u1") == 1
    rows = await outbox.claim(worker="w", now_ms=2_000, lease_ms=1_000, limit=10)
    erased = next(r for r in rows if r.user_key == "i:u1")
    assert (erased.address, erased.context) == ("", {})
    assert all(r.address for r in rows if r.user_key != "i:u1")
    assert await interactions.counts([campaign_id]) == {}
    assert await consent.blocked(
        store.engine, account_id=ACCOUNT, recipients=[consent.Recipient("i:u1", "email")]
    ) == {0}
