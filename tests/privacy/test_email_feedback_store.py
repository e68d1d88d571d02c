"""Bounce and complaint records under a privacy request: an erasure deletes the person's records (found by
user key or by the hash of their address) and keeps the hashed suppression; an export lists both."""

from __future__ import annotations

import io
import json
import zipfile

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from tapwire_core.control.email_feedback import (
    EmailFeedbackRow,
    FeedbackEntry,
    SoftBouncePolicy,
    record_feedback,
    suppressed_addresses,
)
from tests.privacy.conftest import Rig

pytestmark = pytest.mark.integration


async def seed(rig: Rig) -> None:
    entries = [
        FeedbackEntry("n1", "carol@example.com", "complaint", "arf", "abuse", 1, user_key="i:carol"),
        # A report that named no user: found by the address's hash alone.
        FeedbackEntry("n2", "Carol@Example.com", "soft_bounce", "dsn", "mailbox-full", 2),
        FeedbackEntry(
            "n3", "bob@example.com", "hard_bounce", "ses", "permanent/general", 3, user_key="i:bob"
        ),
    ]
    async with AsyncSession(rig.control.engine) as session, session.begin():
        for entry in entries:
            await record_feedback(session, account_id="ACC-1", entry=entry, policy=SoftBouncePolicy())


async def test_erasure_deletes_the_records_and_keeps_the_hashed_suppression(rig: Rig) -> None:
    await seed(rig)
    view = await rig.repository.requests.create(
        account_id="ACC-1",
        type="erasure",
        scope="subject",
        channel="api",
        jurisdiction="gdpr",
        keys=["i:carol", "e:carol@example.com"],
    )
    await rig.run_until_settled()
    done = await rig.repository.requests.get(view.id)
    assert done.status == "completed", json.dumps(done.progress)[-1500:]
    assert done.progress["stores"]["control.email_feedback"]["removed"] == 2
    async with AsyncSession(rig.control.engine) as session, session.begin():
        assert [r.notice_id for r in await session.scalars(select(EmailFeedbackRow))] == ["n3"]
        still = await suppressed_addresses(
            session, account_id="ACC-1", addresses=["carol@example.com", "bob@example.com"]
        )
    assert still == {"carol@example.com": "complaint", "bob@example.com": "hard_bounce"}


async def test_export_lists_the_records_and_the_suppression(rig: Rig) -> None:
    await seed(rig)
    view = await rig.repository.requests.create(
        account_id="ACC-1",
        type="export",
        scope="subject",
        channel="api",
        jurisdiction="gdpr",
        keys=["e:carol@example.com"],
    )
    await rig.run_until_settled()
    assert (await rig.repository.requests.get(view.id)).status == "completed"
    [path] = list(rig.settings.resolved_export_dir().rglob("*.zip"))
    with zipfile.ZipFile(io.BytesIO(path.read_bytes())) as bundle:
        stores = {name: json.loads(bundle.read(name)) for name in bundle.namelist()}
    feedback = next(v for k, v in stores.items() if "control.email_feedback" in k)
    suppressions = next(v for k, v in stores.items() if "control.email_suppressions" in k)
    assert sorted(row["kind"] for row in feedback) == ["complaint", "soft_bounce"]
    assert [row["reason"] for row in suppressions] == ["complaint"]
    assert "bob" not in json.dumps(stores)
