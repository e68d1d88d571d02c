"""Recording and lifting opt-outs on an open session; the caller owns the transaction."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Final

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from tapwire_core.control.marketing_objections import MarketingObjectionRow, record_objection
from tapwire_core.control.privacy.subject_keys import IDENTIFIER_SALT, deployment_secret, key_hash
from tapwire_core.control.tracking_opt_outs.models import TrackingOptOutRow

OBJECTION_SOURCE: Final = "client-sdk"
"""The ``request_id`` of objections an opt-out made, so opting back in lifts only those."""


async def record_opt_out(
    session: AsyncSession, *, account_id: str, keys: Iterable[str], at: datetime
) -> set[str]:
    """List ``keys`` as opted out and as objecting to marketing. Idempotent; returns the keys' hashes."""
    keys = set(keys)
    salt = await deployment_secret(session, IDENTIFIER_SALT)
    hashes = {key_hash(salt, account_id, key) for key in keys}
    existing = set(
        await session.scalars(
            select(TrackingOptOutRow.key_hash).where(
                TrackingOptOutRow.account_id == account_id, TrackingOptOutRow.key_hash.in_(hashes)
            )
        )
    )
    session.add_all(
        TrackingOptOutRow(account_id=account_id, key_hash=hashed, created_at=at)
        for hashed in sorted(hashes - existing)
    )
    await record_objection(session, account_id=account_id, keys=keys, request_id=OBJECTION_SOURCE, at=at)
    await session.flush()
    return hashes


async def lift_opt_out(session: AsyncSession, *, account_id: str, keys: Iterable[str]) -> set[str]:
    """Remove ``keys`` from the opt-outs and lift the objections their opt-out made; returns the hashes."""
    salt = await deployment_secret(session, IDENTIFIER_SALT)
    hashes = {key_hash(salt, account_id, key) for key in keys}
    if not hashes:
        return hashes
    await session.execute(
        delete(TrackingOptOutRow).where(
            TrackingOptOutRow.account_id == account_id, TrackingOptOutRow.key_hash.in_(hashes)
        )
    )
    await session.execute(
        delete(MarketingObjectionRow).where(
            MarketingObjectionRow.account_id == account_id,
            MarketingObjectionRow.key_hash.in_(hashes),
            MarketingObjectionRow.request_id == OBJECTION_SOURCE,
        )
    )
    return hashes
