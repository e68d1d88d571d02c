"""Which opt-outs stop which messages, in the control store on SQLite and PostgreSQL: unsubscribes and objections
stop promotional messages only; explicit opt-outs of a channel, hard bounces and complaints stop transactional
ones too, and only a later resubscribe lifts an explicit opt-out."""

from __future__ import annotations

import pytest
from sqlalchemy.ext.asyncio import AsyncSession

from tapwire_core.control.email_feedback import FeedbackEntry, SoftBouncePolicy, record_feedback
from tapwire_core.control.messaging import consent
from tapwire_core.control.store import ControlStore

pytestmark = pytest.mark.integration

ACCOUNT = "ACC-1"


async def _set(
    store: ControlStore, kind: consent.SubjectKind, subject: str, state: consent.ConsentState, at: int
) -> None:
    channel = {"email": "email", "phone": "sms"}.get(kind, "all")
    await consent.set_consent(
        store.engine,
        account_id=ACCOUNT,
        kind=kind,
        subject=subject,
        channel=channel,
        state=state,
        source="test",
        now_ms=at,
    )


async def _blocked(store: ControlStore, recipients: list[consent.Recipient]) -> tuple[set[str], set[str]]:
    """(blocked for a promotional message, blocked for a transactional one), by user key."""
    found = []
    for transactional in (False, True):
        indexes = await consent.blocked(
            store.engine, account_id=ACCOUNT, recipients=recipients, transactional=transactional
        )
        found.append({recipients[i].user_key for i in indexes})
    return found[0], found[1]


def _email(user: str) -> consent.Recipient:
    return consent.Recipient(f"i:{user}", "email", email=f"{user}@example.com")


async def test_unsubscribes_and_objections_stop_promotions_explicit_opt_outs_stop_everything(
    store: ControlStore,
) -> None:
    await _set(store, "email", "unsub@example.com", "unsubscribed", 1)
    await consent.record_objection(
        store.engine, account_id=ACCOUNT, user_key="i:objector", source="t", now_ms=1
    )
    await _set(store, "email", "optout@example.com", "opted_out", 1)
    # An unsubscribe after an explicit opt-out must not weaken it to promotional messages only.
    await _set(store, "email", "optout-unsub@example.com", "opted_out", 1)
    await _set(store, "email", "optout-unsub@example.com", "unsubscribed", 2)
    # A resubscribe lifts it, for both kinds of message.
    await _set(store, "email", "optout-resub@example.com", "opted_out", 1)
    await _set(store, "email", "optout-resub@example.com", "subscribed", 2)
    # An opt-out of every channel by the user holds for email too.
    await _set(store, "user", "i:optout-all", "opted_out", 1)
    recipients = [
        _email(user)
        for user in ("fine", "unsub", "objector", "optout", "optout-unsub", "optout-resub", "optout-all")
    ]
    promotional, transactional = await _blocked(store, recipients)
    assert promotional == {"i:unsub", "i:objector", "i:optout", "i:optout-unsub", "i:optout-all"}
    assert transactional == {"i:optout", "i:optout-unsub", "i:optout-all"}
    entries = await consent.entries_for(
        store.engine, account_id=ACCOUNT, subjects=[("email", "optout-unsub@example.com")]
    )
    assert [(e.state, e.updated_ms) for e in entries] == [("opted_out", 2)]


async def test_an_opt_out_of_sms_leaves_email_alone(store: ControlStore) -> None:
    await _set(store, "phone", "+4915100000001", "opted_out", 1)
    recipients = [
        consent.Recipient("i:ann", "sms", phone="+4915100000001"),
        consent.Recipient("i:ann", "email", email="ann@example.com"),
    ]
    promotional, transactional = await _blocked(store, recipients[:1])
    assert promotional == transactional == {"i:ann"}
    promotional, transactional = await _blocked(store, recipients[1:])
    assert promotional == transactional == set()


async def test_hard_bounces_and_complaints_stop_receipts_a_run_of_soft_bounces_only_promotions(
    store: ControlStore,
) -> None:
    policy = SoftBouncePolicy(limit=2, window_ms=60_000)
    reports = [
        ("hard", "hard_bounce"),
        ("complained", "complaint"),
        ("full", "soft_bounce"),
        ("full", "soft_bounce"),
    ]
    for index, (user, kind) in enumerate(reports):
        entry = FeedbackEntry(f"n{index}", f"{user}@example.com", kind, "dsn", "c", 1000 + index)  # type: ignore[arg-type]
        async with AsyncSession(store.engine) as session, session.begin():
            recorded = await record_feedback(session, account_id=ACCOUNT, entry=entry, policy=policy)
        assert recorded.new
    promotional, transactional = await _blocked(
        store, [_email(u) for u in ("fine", "hard", "complained", "full")]
    )
    assert promotional == {"i:hard", "i:complained", "i:full"}
    assert transactional == {"i:hard", "i:complained"}
