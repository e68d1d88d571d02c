"""An erased person's opt-outs outlive the erasure as keyed hashes: no plaintext address stays, sends still stop."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from tapwire_core.control.messaging import consent
from tapwire_core.control.messaging.models import ConsentRow
from tests.privacy.conftest import Rig

pytestmark = pytest.mark.integration


async def _set(
    rig: Rig, kind: consent.SubjectKind, subject: str, *, channel: str, state: str, at: int
) -> None:
    await consent.set_consent(
        rig.control.engine,
        account_id="ACC-1",
        kind=kind,
        subject=subject,
        channel=channel,
        state=state,  # type: ignore[arg-type]
        source="api",
        now_ms=at,
    )


async def _blocked(rig: Rig, *recipients: consent.Recipient) -> set[int]:
    return await consent.blocked(rig.control.engine, account_id="ACC-1", recipients=list(recipients))


async def test_an_erased_subjects_opt_outs_are_kept_only_as_keyed_hashes(rig: Rig) -> None:
    await _set(rig, "email", "Dana@Example.com", channel="email", state="unsubscribed", at=10)
    await _set(rig, "phone", "+15550199", channel="all", state="unsubscribed", at=11)
    await _set(rig, "user", "i:dana", channel="push", state="subscribed", at=12)
    await _set(rig, "email", "eve@example.com", channel="email", state="unsubscribed", at=13)
    request = await rig.repository.requests.create(
        account_id="ACC-1",
        type="erasure",
        scope="subject",
        channel="api",
        jurisdiction="gdpr",
        keys=["i:dana", "e:dana@example.com", "p:+15550199"],
    )
    await rig.run_until_settled()

    done = await rig.repository.requests.get(request.id)
    assert done.status == "completed"
    checked = done.verification["stores"]["control.message_consent"] if done.verification else {}
    assert (
        checked["residue"] == 0
        and "2 opt-out entries retained by design as keyed hashes" in checked["checked"]
    )
    async with AsyncSession(rig.control.engine) as session:
        rows = [
            (r.subject_kind, r.subject, r.channel, r.state) for r in await session.scalars(select(ConsentRow))
        ]
    assert "dana" not in repr(rows).lower() and "15550199" not in repr(rows)
    assert sorted((kind, channel, state) for kind, _, channel, state in rows) == [
        ("email", "email", "unsubscribed"),  # eve's, untouched
        ("email#", "email", "unsubscribed"),
        ("phone#", "all", "unsubscribed"),
    ]

    # Dana comes back (a re-import under a new user key): the opt-outs still hold, by address.
    assert await _blocked(
        rig,
        consent.Recipient(user_key="i:dana-2", channel="email", email=" DANA@example.com"),
        consent.Recipient(user_key="i:dana-2", channel="sms", phone="+15550199"),
        consent.Recipient(user_key="i:dana-2", channel="push"),
        consent.Recipient(user_key="i:eve", channel="email", email="eve@example.com"),
    ) == {0, 1, 3}
    # A later subscription in plaintext wins over the kept opt-out, as between plaintext entries.
    await _set(rig, "email", "dana@example.com", channel="email", state="subscribed", at=20)
    assert (
        await _blocked(rig, consent.Recipient(user_key="i:dana-2", channel="email", email="dana@example.com"))
        == set()
    )


def _database_bytes(rig: Rig) -> bytes:
    """Every file of the control database: the database itself and its write-ahead log."""
    database = Path(str(rig.control.engine.url.database))
    return b"".join(p.read_bytes() for p in database.parent.glob(database.name + "*") if p.is_file())


async def test_an_erased_address_is_gone_from_the_control_databases_bytes(rig: Rig) -> None:
    await _set(rig, "email", "dana@example.com", channel="email", state="unsubscribed", at=10)
    await _set(rig, "phone", "+15550199", channel="all", state="unsubscribed", at=11)
    await _set(rig, "email", "eve@example.com", channel="email", state="unsubscribed", at=12)
    # The check can fail: before the erasure the address is in the files.
    assert b"dana@example.com" in _database_bytes(rig) and b"+15550199" in _database_bytes(rig)
    await rig.repository.requests.create(
        account_id="ACC-1",
        type="erasure",
        scope="subject",
        channel="api",
        jurisdiction="gdpr",
        keys=["e:dana@example.com", "p:+15550199"],
    )
    await rig.run_until_settled()

    stored = _database_bytes(rig)
    assert b"dana@example.com" not in stored and b"+15550199" not in stored
    assert b"eve@example.com" in stored
    assert await _blocked(
        rig, consent.Recipient(user_key="i:new", channel="email", email="dana@example.com")
    ) == {0}
