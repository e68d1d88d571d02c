"""Erasure forwarded to the SMS provider (Art. 19): the subject's message records are deleted at a real
Twilio-shaped HTTP server on 127.0.0.1, by the SIDs the outbox kept, before the outbox rows go."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from tapwire_core.control.messaging.models import CampaignRow, OutboxRow
from tapwire_core.privacy.scope import Scope
from tapwire_messaging.channels.http_retry import RetryPolicy
from tapwire_messaging.channels.sms import TwilioEndpoint
from tapwire_messaging.data_recipients import SmsDataRecipient, messaging_data_recipients
from tapwire_privacy.registry import default_registry
from tapwire_privacy.worker import PrivacyWorker
from tests.messaging.seeding import completed_campaign
from tests.messaging.servers import HttpReceiver, TwilioMessages, http_receiver
from tests.privacy.conftest import Rig

pytestmark = pytest.mark.integration

FAST = RetryPolicy(attempts=3, base_delay_s=0.01, max_delay_s=0.02)
ANN_SIDS = ("SMann1", "SMann2", "SMann3")


def sms_url(receiver: HttpReceiver) -> str:
    return f"http://AC1:tok@127.0.0.1:{receiver.port}/2010-04-01/Accounts/AC1/Messages.json?From=%2B15551111"


def use_provider(rig: Rig, url: str) -> None:
    """The worker with messaging's recipients, the SMS one pointed at ``url``."""
    settings = rig.settings.model_copy(update={"sms_url": url})
    registry = default_registry(
        warehouse=rig.warehouse,
        engine=rig.control.engine,
        export_dir=rig.settings.resolved_export_dir(),
        data_recipients=messaging_data_recipients(rig.control.engine, settings, sms_policy=FAST),
    )
    rig.registry = registry
    rig.worker = PrivacyWorker(
        repository=rig.repository, registry=registry, settings=rig.settings, clock=rig.clock
    )


async def seed(rig: Rig, provider: TwilioMessages) -> None:
    """Ann got three texts (the provider still holds two of them) and a mail; Bob got one text."""
    texts = [("i:ann", "+4915100000009", sid) for sid in ANN_SIDS] + [("i:bob", "+4915100000010", "SMbob1")]
    async with AsyncSession(rig.control.engine) as session, session.begin():
        campaign = await completed_campaign(session, name="texts", channel="sms")
        rows = [(user, "sms", address, sid, f"v{i}") for i, (user, address, sid) in enumerate(texts)]
        rows.append(("i:ann", "email", "ann@example.com", "<m1@relay>", "v9"))
        for user, channel, address, sid, variant in rows:
            session.add(
                OutboxRow(
                    campaign_id=campaign.id,
                    account_id="ACC-1",
                    variant=variant,
                    user_key=user,
                    channel=channel,
                    address=address,
                    context={},
                    status="sent",
                    due_ms=1,
                    sent_ms=1,
                    provider_id=sid,
                )
            )
    provider.messages.update(
        {sid: {"To": address, "Body": "Hi"} for _, address, sid in texts if sid != "SMann3"}
    )


async def erasure(rig: Rig, key: str = "i:ann") -> str:
    view = await rig.repository.requests.create(
        account_id="ACC-1", type="erasure", scope="subject", channel="api", jurisdiction="gdpr", keys=[key]
    )
    return view.id


async def outbox_users(rig: Rig) -> list[tuple[str, str]]:
    """(user, channel) per outbox row; a row erased in place (kept for the campaign's counts) shows as "erased"."""
    async with AsyncSession(rig.control.engine) as session:
        rows = list(await session.scalars(select(OutboxRow)))
    return sorted(
        ("erased" if r.user_key.startswith("x:") and r.address == "" else r.user_key, r.channel) for r in rows
    )


async def trail(rig: Rig, request_id: str) -> list[tuple[str, str | None, dict[str, Any]]]:
    return [(e["action"], e["store"], e["detail"]) for e in await rig.repository.audit.trail(request_id)]


async def test_erasure_deletes_the_subjects_texts_at_the_provider_retrying_a_500(rig: Rig) -> None:
    provider = TwilioMessages(fail_next=[500])
    with http_receiver(provider.respond) as receiver:
        use_provider(rig, sms_url(receiver))
        await seed(rig, provider)
        request_id = await erasure(rig)
        await rig.run_until_settled()
    view = await rig.repository.requests.get(request_id)
    assert view.status == "completed"
    assert sorted(provider.messages) == ["SMbob1"]
    deletes = provider.deletes(receiver)
    # The first DELETE got the 500 and was sent again; each of Ann's SIDs was asked for, no one else's.
    assert sorted(deletes) == sorted([*ANN_SIDS, deletes[0]])
    assert all(r.headers["authorization"].startswith("Basic ") for r in receiver.requests)
    counts = {"messages": 3, "deleted": 2, "already_gone": 1, "without_id": 0}
    assert view.progress["recipients"]["messaging.sms"] == {"outcome": "notified", **counts, "sweep": 0}
    actions = await trail(rig, request_id)
    assert ("recipient_notified", "messaging.sms", {"action": "erasure", **counts}) in actions
    assert not [a for a in actions if a[0] == "failed"]  # the 500 was retried within the step
    assert any(
        action == "recipient_not_notified" and store == "messaging.email" and "SMTP relay" in detail["reason"]
        for action, store, detail in actions
    )
    # Counts and reasons only: no SID or number reaches the audit trail.
    assert "SMann" not in repr(actions) and "+49151" not in repr(actions)
    assert await outbox_users(rig) == [("erased", "email"), *[("erased", "sms")] * 3, ("i:bob", "sms")]


async def test_provider_down_keeps_the_outbox_and_the_request_open_until_it_returns(rig: Rig) -> None:
    provider = TwilioMessages()
    with http_receiver(provider.respond) as receiver:
        port = receiver.port
    use_provider(rig, sms_url(receiver))
    await seed(rig, provider)
    request_id = await erasure(rig)
    for _ in range(3):
        await rig.worker.tick()
        rig.clock.advance(seconds=rig.settings.privacy_sweep_delay_s + 1)
    stalled = await rig.repository.requests.get(request_id)
    assert stalled.status != "completed"
    assert stalled.progress["recipients"]["messaging.sms"]["outcome"] == "failed"
    assert stalled.progress["recipients"]["messaging.sms"]["error"] == "ProviderUnavailable"
    # No store was erased: the SIDs the provider needs are all still there.
    assert await outbox_users(rig) == [("i:ann", "email"), *[("i:ann", "sms")] * 3, ("i:bob", "sms")]
    assert ("failed", "messaging.sms") in [(a, s) for a, s, _ in await trail(rig, request_id)]

    with http_receiver(provider.respond, port=port) as back:
        await rig.run_until_settled()
    done = await rig.repository.requests.get(request_id)
    assert done.status == "completed"
    assert sorted(provider.messages) == ["SMbob1"]
    assert sorted(provider.deletes(back)) == sorted(ANN_SIDS)
    assert done.progress["recipients"]["messaging.sms"]["outcome"] == "notified"
    assert await outbox_users(rig) == [("erased", "email"), *[("erased", "sms")] * 3, ("i:bob", "sms")]


async def test_forwarding_again_after_a_crash_finds_the_records_already_gone(rig: Rig) -> None:
    """A worker that dies between the provider's DELETEs and the outbox erasure forwards again on resume."""
    provider = TwilioMessages()
    with http_receiver(provider.respond) as receiver:
        settings = rig.settings.model_copy(update={"sms_url": sms_url(receiver)})
        await seed(rig, provider)
        recipient = SmsDataRecipient(rig.control.engine, settings, policy=FAST)
        scope = Scope("r1", "ACC-1", frozenset({"i:ann"}))
        first = await recipient.forward("erasure", scope, None)
        again = await recipient.forward("erasure", scope, None)
    assert first == {"messages": 3, "deleted": 2, "already_gone": 1, "without_id": 0}
    assert again == {"messages": 3, "deleted": 0, "already_gone": 3, "without_id": 0}
    assert sorted(provider.messages) == ["SMbob1"]


async def test_rectification_of_texts_is_recorded_as_impossible(rig: Rig) -> None:
    provider = TwilioMessages()
    with http_receiver(provider.respond) as receiver:
        use_provider(rig, sms_url(receiver))
        await seed(rig, provider)
        view = await rig.repository.requests.create(
            account_id="ACC-1",
            type="rectify",
            scope="subject",
            channel="api",
            jurisdiction="gdpr",
            keys=["i:ann"],
            payload={"fields": {"Name": "Ann B."}},
        )
        await rig.run_until_settled()
    assert (await rig.repository.requests.get(view.id)).status == "completed"
    assert provider.deletes(receiver) == []
    assert (
        "recipient_not_notified",
        "messaging.sms",
        {
            "action": "rectify",
            "reason": "a sent text message cannot be corrected; the SMS provider's records of it are deleted on "
            "erasure",
        },
    ) in await trail(rig, view.id)


def test_message_ids_stay_in_their_path_segment() -> None:
    endpoint = TwilioEndpoint.from_url(
        "https://AC1:tok@api.example/2010-04-01/Accounts/AC1/Messages.json?From=%2B1555"
    )
    assert endpoint.message_url("SM1") == "https://api.example/2010-04-01/Accounts/AC1/Messages/SM1.json"
    assert (
        endpoint.message_url("../x?y")
        == "https://api.example/2010-04-01/Accounts/AC1/Messages/..%2Fx%3Fy.json"
    )
    assert endpoint.auth == ("AC1", "tok")


async def test_a_text_sent_after_the_first_pass_is_deleted_by_the_second_sweep(rig: Rig) -> None:
    provider = TwilioMessages()
    with http_receiver(provider.respond) as receiver:
        use_provider(rig, sms_url(receiver))
        await seed(rig, provider)
        request_id = await erasure(rig)
        await rig.worker.tick()
        assert (await rig.repository.requests.get(request_id)).status == "awaiting_sweep"
        assert sorted(provider.messages) == ["SMbob1"]
        # A campaign that had Ann in its audience already sends her one more text in between.
        async with AsyncSession(rig.control.engine) as session, session.begin():
            campaign = (await session.scalars(select(CampaignRow))).one()
            session.add(
                OutboxRow(
                    campaign_id=campaign.id,
                    account_id="ACC-1",
                    variant="late",
                    user_key="i:ann",
                    channel="sms",
                    address="+4915100000009",
                    context={},
                    status="sent",
                    due_ms=2,
                    sent_ms=2,
                    provider_id="SMann4",
                )
            )
        provider.messages["SMann4"] = {"To": "+4915100000009", "Body": "Hi"}
        rig.clock.advance(seconds=rig.settings.privacy_sweep_delay_s + 1)
        await rig.run_until_settled()
    view = await rig.repository.requests.get(request_id)
    assert view.status == "completed"
    assert sorted(provider.messages) == ["SMbob1"]
    assert sorted(provider.deletes(receiver)) == sorted([*ANN_SIDS, "SMann4"])
    assert view.progress["recipients"]["messaging.sms"] == {
        "outcome": "notified",
        "messages": 4,
        "deleted": 3,
        "already_gone": 1,
        "without_id": 0,
        "sweep": 1,
    }
    notified = [
        d for a, s, d in await trail(rig, request_id) if (a, s) == ("recipient_notified", "messaging.sms")
    ]
    assert [d["messages"] for d in notified] == [3, 1]
