"""The identity graph and the messaging tables under a privacy request: closure through the graph, erasure
through ``IdentityGraph.forget``, messaging rows stripped or deleted, opt-outs retained, export lists them."""

from __future__ import annotations

import io
import json
import zipfile

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from tapwire_core.control.messaging import consent as consent_api
from tapwire_core.control.messaging.journey_models import JourneyHistoryRow, JourneyPositionRow, JourneyRow
from tapwire_core.control.messaging.models import CampaignRow, ConsentRow, InteractionRow, OutboxRow
from tapwire_core.control.messaging.trigger_models import TriggerTimerRow
from tapwire_core.identity.graph import IdentityGraph, LinkRequest
from tapwire_messaging.recipients import device_id
from tapwire_privacy.records import RequestType
from tests.messaging.seeding import completed_campaign
from tests.privacy.conftest import Rig

pytestmark = pytest.mark.integration


async def seed(rig: Rig) -> IdentityGraph:
    graph = IdentityGraph(rig.control.engine)
    await graph.link_many(
        "ACC-1",
        [
            LinkRequest(("i:carol", "a:anon-carol"), "login"),
            LinkRequest(("i:carol", "e:carol@example.com"), "profile"),
            LinkRequest(("i:bob", "a:anon-bob"), "login"),
        ],
    )
    async with AsyncSession(rig.control.engine) as session, session.begin():
        campaign = await completed_campaign(
            session, name="welcome", channel="email", audience={"identities": {"Identity": ["carol", "bob"]}}
        )
        journey = JourneyRow(
            account_id="ACC-1",
            name="onboarding",
            status="active",
            version=1,
            enrolled_version=1,
            created_ms=1,
            updated_ms=1,
        )
        session.add(journey)
        await session.flush()
        for user in ("i:carol", "i:bob"):
            # Each waits in a journey, with the steps it went through.
            position = JourneyPositionRow(
                journey_id=journey.id,
                version=1,
                account_id="ACC-1",
                user_key=user,
                entry=f"evt-{user}",
                step="pause",
                status="waiting",
                due_ms=10,
                entered_ms=1,
                updated_ms=1,
            )
            session.add(position)
            await session.flush()
            session.add(
                JourneyHistoryRow(
                    position_id=position.id, journey_id=journey.id, step="welcome", action="sent", ts_ms=1
                )
            )
        for user, address in (("i:carol", "carol@example.com"), ("i:bob", "bob@example.com")):
            session.add(
                OutboxRow(
                    campaign_id=campaign.id,
                    account_id="ACC-1",
                    variant="a",
                    user_key=user,
                    channel="email",
                    address=address,
                    context={"profile": {"Name": user}},
                    status="sent",
                    due_ms=1,
                    sent_ms=1,
                    provider_id="<m1@sink>",
                )
            )
            session.add(
                InteractionRow(campaign_id=campaign.id, variant="a", user_key=user, kind="opened", ts_ms=3)
            )
            # A triggered message waiting out its delay, holding the triggering event's properties.
            session.add(
                TriggerTimerRow(
                    campaign_id=campaign.id,
                    account_id="ACC-1",
                    user_key=user,
                    firing=f"evt-{user}",
                    event={"product": "shoes"},
                    trigger_ms=1,
                    due_ms=2,
                    status="waiting",
                )
            )
        # A push to each of Carol's devices: the row's key names the device by a hash of its token.
        session.add(
            OutboxRow(
                campaign_id=campaign.id,
                account_id="ACC-1",
                variant="a",
                user_key="i:carol",
                channel="push",
                device=device_id("tok-carol"),
                address="tok-carol",
                platform="fcm",
                context={},
                status="sent",
                due_ms=1,
                sent_ms=1,
            )
        )
        session.add_all(
            [
                ConsentRow(
                    account_id="ACC-1",
                    subject_kind="email",
                    subject="carol@example.com",
                    channel="email",
                    state="subscribed",
                    source="api",
                    updated_ms=1,
                ),
                ConsentRow(
                    account_id="ACC-1",
                    subject_kind="user",
                    subject="i:carol",
                    channel="sms",
                    state="unsubscribed",
                    source="api",
                    updated_ms=2,
                ),
            ]
        )
    return graph


async def request(rig: Rig, kind: RequestType, key: str) -> str:
    view = await rig.repository.requests.create(
        account_id="ACC-1", type=kind, scope="subject", channel="api", jurisdiction="gdpr", keys=[key]
    )
    return view.id


async def test_erasure_named_by_a_graph_only_identifier_reaches_every_linked_row(rig: Rig) -> None:
    graph = await seed(rig)
    # Only the graph links the anonymous id to carol: no warehouse row names it.
    request_id = await request(rig, "erasure", "a:anon-carol")
    await rig.run_until_settled()

    done = await rig.repository.requests.get(request_id)
    assert done.status == "completed", json.dumps(done.progress)[-1500:]
    assert await graph.linked_identifiers("ACC-1", "i:carol") == []
    assert await graph.linked_identifiers("ACC-1", "e:carol@example.com") == []
    assert await graph.linked_identifiers("ACC-1", "i:bob") == ["a:anon-bob", "i:bob"]
    async with AsyncSession(rig.control.engine) as session:
        outbox = {(r.channel, r.address): r for r in await session.scalars(select(OutboxRow))}
        assert set(outbox) == {("email", ""), ("push", ""), ("email", "bob@example.com")}
        assert outbox["email", ""].user_key.startswith("x:") and outbox["email", ""].context == {}
        assert outbox["push", ""].user_key == outbox["email", ""].user_key
        assert len(outbox["push", ""].device) == 32 and outbox["push", ""].device != device_id("tok-carol")
        assert outbox["email", "bob@example.com"].user_key == "i:bob"
        assert [r.user_key for r in await session.scalars(select(InteractionRow))] == ["i:bob"]
        assert [r.user_key for r in await session.scalars(select(TriggerTimerRow))] == ["i:bob"]
        # Out of every journey at once: her position and its history are gone, bob's stay.
        assert [r.user_key for r in await session.scalars(select(JourneyPositionRow))] == ["i:bob"]
        assert len(list(await session.scalars(select(JourneyHistoryRow)))) == 1
        consent = [(r.subject_kind, r.subject, r.state) for r in await session.scalars(select(ConsentRow))]
        # The opt-out stays, as a keyed hash of the user key; the subscription is gone.
        assert [(kind, state) for kind, _, state in consent] == [("user#", "unsubscribed")]
        assert "carol" not in repr(consent)
        campaign = (await session.scalars(select(CampaignRow))).one()
        assert campaign.audience == {"identities": {"Identity": ["bob"]}}
    # Sends are still checked against it: carol re-imported gets no text, and her email is no longer refused.
    recipients = [
        consent_api.Recipient(user_key="i:carol", channel="sms", phone="+15550100"),
        consent_api.Recipient(user_key="i:carol", channel="email", email="carol@example.com"),
    ]
    assert await consent_api.blocked(rig.control.engine, account_id="ACC-1", recipients=recipients) == {0}


async def test_export_holds_the_graph_and_messaging_rows(rig: Rig) -> None:
    await seed(rig)
    request_id = await request(rig, "export", "e:carol@example.com")
    await rig.run_until_settled()
    done = await rig.repository.requests.get(request_id)
    assert done.status == "completed", json.dumps(done.progress)[-1500:]
    archive = rig.settings.resolved_export_dir()
    [path] = [p for p in archive.rglob("*.zip")]
    with zipfile.ZipFile(io.BytesIO(path.read_bytes())) as bundle:
        stores = {name: json.loads(bundle.read(name)) for name in bundle.namelist()}
    text = json.dumps(stores)
    assert "a:anon-carol" in text and "carol@example.com" in text
    assert "bob" not in text
    outbox = next(v for k, v in stores.items() if "control.outbox" in k)
    assert [row["address"] for row in outbox] == ["carol@example.com", "tok-carol"]


async def test_a_batch_attributes_each_stores_rows_to_the_right_request(rig: Rig) -> None:
    await seed(rig)
    # Recorded together, erased by one pass: the graph knows only carol's key, the other two hold nothing.
    carol, nobody, other = await rig.repository.requests.create_many(
        account_id="ACC-1",
        type="erasure",
        scope="subject",
        channel="clevertap",
        jurisdiction="gdpr",
        subjects=[["a:anon-carol"], ["i:nobody"], ["e:other@example.com"]],
    )
    await rig.run_until_settled()
    removed = {}
    for view in (carol, nobody, other):
        done = await rig.repository.requests.get(view.id)
        assert done.status == "completed", json.dumps(done.progress)[-1500:]
        removed[view.id] = {name: state["removed"] for name, state in done.progress["stores"].items()}
    assert removed[carol.id]["control.outbox"] == 2  # her email and her push device
    assert removed[carol.id]["control.message_interactions"] == 1
    assert removed[carol.id]["control.trigger_timers"] == 1
    assert removed[carol.id]["control.journey_positions"] == 1
    # Her subscription deleted and her opt-out rewritten under a keyed hash.
    assert removed[carol.id]["control.message_consent"] == 2
    assert removed[carol.id]["control.identity_graph"] >= 3  # its nodes and the edges between them
    for quiet in (nobody.id, other.id):
        assert not any(removed[quiet][name] for name in removed[quiet] if name.startswith("control."))
    async with AsyncSession(rig.control.engine) as session:
        assert [r.user_key for r in await session.scalars(select(InteractionRow))] == ["i:bob"]
