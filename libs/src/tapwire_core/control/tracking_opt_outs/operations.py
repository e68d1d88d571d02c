"""Recording and lifting opt-outs on an open session; the caller owns the transaction."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Final

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from tapwire_core.control.marketing_objections import MarketingObjectionRow, record_objection
from tapwire_core.control.privacy.subject_keys import IDENTIFIER_SALT, deployment_secret, key_hash
from tapwire_core.control.tracking_opt_outs.models import TrackingOptOutRow

OBJECTION_SOURCE: Final = "client-sdk"
"""The ``request_id`` of objections an opt-out made, so opting back in lifts only those."""
LIFTED_KEPT: Final = timedelta(days=1)
"""How long a lifted opt-out stays as a mark for gateways reading the list incrementally. Far longer than
their full reload period (``TrackingOptOutList``), so none misses a lift."""


async def record_opt_out(
    session: AsyncSession, *, account_id: str, keys: Iterable[str], at: datetime
) -> set[str]:
    """List ``keys`` as opted out and as objecting to marketing. Idempotent; returns the keys' hashes."""
    keys = set(keys)
    salt = await deployment_secret(session, IDENTIFIER_SALT)
    hashes = {key_hash(salt, account_id, key) for key in keys}
    rows = await session.execute(
        select(TrackingOptOutRow.key_hash, TrackingOptOutRow.lifted_at).where(
            TrackingOptOutRow.account_id == account_id, TrackingOptOutRow.key_hash.in_(hashes)
        )
    )
    existing = {hashed: lifted_at for hashed, lifted_at in rows}
    session.add_all(
        TrackingOptOutRow(account_id=account_id, key_hash=hashed, created_at=at, changed_at=at)
        for hashed in sorted(hashes - set(existing))
    )
    lifted = sorted(hashed for hashed, lifted_at in existing.items() if lifted_at is not None)
    if lifted:
        await session.execute(
            update(TrackingOptOutRow)
            .where(TrackingOptOutRow.account_id == account_id, TrackingOptOutRow.key_hash.in_(lifted))
            .values(created_at=at, changed_at=at, lifted_at=None)
        )
    await record_objection(session, account_id=account_id, keys=keys, request_id=OBJECTION_SOURCE, at=at)
    await session.flush()
    return hashes


async def lift_opt_out(
    session: AsyncSession, *, account_id: str, keys: Iterable[str], at: datetime | None = None
) -> set[str]:
    """Lift the opt-out of ``keys`` and the objections their opt-out made; returns the hashes.

    The rows stay as lifted marks for ``LIFTED_KEPT`` (then this deletes them, account by account)."""
    at = at or datetime.now(UTC)
    salt = await deployment_secret(session, IDENTIFIER_SALT)
    hashes = {key_hash(salt, account_id, key) for key in keys}
    if not hashes:
        return hashes
    await session.execute(
        update(TrackingOptOutRow)
        .where(
            TrackingOptOutRow.account_id == account_id,
            TrackingOptOutRow.key_hash.in_(hashes),
            TrackingOptOutRow.lifted_at.is_(None),
        )
        .values(changed_at=at, lifted_at=at)
    )
    await session.execute(
        delete(TrackingOptOutRow).where(
            TrackingOptOutRow.account_id == account_id,
            TrackingOptOutRow.lifted_at < at - LIFTED_KEPT,
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
