"""What the dispatcher makes of an email the server refused: the outcome and the bounce it records. A hard
bounce is final at once; a soft one counts against the address only once the outbox gave up on the message; a
refusal that says nothing of the recipient records no bounce."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy.ext.asyncio import create_async_engine

from tapwire_messaging.campaign_rules import CampaignRules
from tapwire_messaging.campaign_store import Campaign, Campaigns
from tapwire_messaging.channels import OutboundMessage, Providers, SendResult
from tapwire_messaging.channels.base import ChannelAdapter
from tapwire_messaging.delivery.campaign_views import CampaignView, CampaignViews
from tapwire_messaging.delivery.claimer import Dispatch
from tapwire_messaging.delivery.dispatcher import Dispatcher
from tapwire_messaging.delivery.messages import MessageBuilder
from tapwire_messaging.delivery.opt_outs import RecentOptOuts
from tapwire_messaging.delivery.outcomes import MAX_ATTEMPTS, Outcome, SenderStats
from tapwire_messaging.email_feedback.classify import Bounce
from tapwire_messaging.links import Links
from tapwire_messaging.outbox import Claimed
from tapwire_messaging.signing import LinkSigner
from tapwire_messaging.templates import compile_content

NOW = dt.datetime(2026, 12, 7, 10, 0, tzinfo=dt.UTC)


class Answers(ChannelAdapter):
    name = "scripted"

    def __init__(self, result: SendResult) -> None:
        self.result = result

    async def send(self, message: OutboundMessage) -> SendResult:
        return self.result


CAMPAIGN = Campaign(
    id=7,
    account_id="ACC",
    name="c",
    kind="campaign",
    channel="email",
    status="running",
    priority=0,
    audience={"where": {}},
    variants=[{"name": "A", "weight": 1.0, "content": {"subject": "s", "body": "b"}}],
    rules=CampaignRules(),
    scheduled_ms=0,
    cutoff_ms=2**62,
    filled=True,
    audience_size=1,
    started_ms=0,
    finished_ms=None,
)


async def outcome(result: SendResult, *, attempts: int) -> Outcome:
    engine = create_async_engine("sqlite+aiosqlite://")
    links = Links("https://t.example", LinkSigner("secret-0123456789abcdef"), ttl_s=86400, clock=lambda: 0.0)
    dispatcher = Dispatcher(
        providers=Providers(email=Answers(result)),
        messages=MessageBuilder(links),
        views=CampaignViews(Campaigns(engine)),
        opt_outs=RecentOptOuts(engine, lambda: NOW),
        stats=SenderStats(),
        clock=lambda: NOW,
    )
    row = Claimed(1, 7, "ACC", "A", "i:ann", "email", "", "ann@example.com", None, {}, attempts)
    view = CampaignView(CAMPAIGN, {"A": compile_content({"subject": "s", "body": "b"})}, ())
    try:
        return await dispatcher.send(Dispatch(row, view, 0))
    finally:
        await engine.dispose()


async def test_a_hard_bounce_is_final_and_recorded_without_a_failed_event() -> None:
    result = SendResult(
        "unregistered",
        "550 5.1.1 no such user ann@example.com",
        bounce=Bounce("hard_bounce", "bad-mailbox", "5.1.1"),
    )
    done = await outcome(result, attempts=1)
    assert done.verdict.status == "unregistered" and done.feedback is None
    assert done.bounce is not None
    assert (done.bounce.kind, done.bounce.source, done.bounce.row_id, done.bounce.status) == (
        "hard_bounce",
        "smtp",
        1,
        "5.1.1",
    )
    assert done.bounce.detail is not None and "ann@example.com" not in done.bounce.detail


@pytest.mark.parametrize(
    ("attempts", "status", "bounced"), [(1, "pending", False), (MAX_ATTEMPTS, "failed", True)]
)
async def test_a_soft_bounce_counts_once_the_outbox_gives_up(
    attempts: int, status: str, bounced: bool
) -> None:
    result = SendResult(
        "failed", "452 4.2.2 mailbox full", bounce=Bounce("soft_bounce", "mailbox-full", "4.2.2")
    )
    done = await outcome(result, attempts=attempts)
    assert done.verdict.status == status
    assert (done.bounce is not None) == bounced
    if done.bounce is not None:
        assert done.bounce.kind == "soft_bounce"


async def test_a_relays_own_refusal_records_no_bounce() -> None:
    done = await outcome(SendResult("failed", "421 4.7.0 try again later"), attempts=MAX_ATTEMPTS)
    assert done.verdict.status == "failed" and done.bounce is None
    blocked = await outcome(
        SendResult("rejected", "554 5.7.1 blocked", bounce=Bounce("block", "policy", "5.7.1")), attempts=1
    )
    assert (
        blocked.verdict.status == "rejected" and blocked.bounce is not None and blocked.bounce.kind == "block"
    )
