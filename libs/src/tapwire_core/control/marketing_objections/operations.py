"""Recording and checking marketing objections on an open session; the caller owns the transaction."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from tapwire_core.control.marketing_objections.models import MarketingObjectionRow
from tapwire_core.control.privacy.subject_keys import IDENTIFIER_SALT, deployment_secret, key_hash


async def record_objection(
    session: AsyncSession, *, account_id: str, keys: Iterable[str], request_id: str | None, at: datetime
) -> int:
    """List every subject key in ``keys`` as objecting; returns how many were new. Idempotent."""
    salt = await deployment_secret(session, IDENTIFIER_SALT)
    hashes = {key_hash(salt, account_id, key) for key in keys}
    existing = set(
        await session.scalars(
            select(MarketingObjectionRow.key_hash).where(
                MarketingObjectionRow.account_id == account_id, MarketingObjectionRow.key_hash.in_(hashes)
            )
        )
    )
    for hashed in sorted(hashes - existing):
        session.add(
            MarketingObjectionRow(
                account_id=account_id, key_hash=hashed, request_id=request_id, created_at=at
            )
        )
    await session.flush()
    return len(hashes - existing)


async def has_objected(session: AsyncSession, *, account_id: str, keys: Iterable[str]) -> bool:
    """True when any of ``keys`` (subject keys such as ``e:ann@example.com``) objected to marketing."""
    salt = await deployment_secret(session, IDENTIFIER_SALT)
    hashes = [key_hash(salt, account_id, key) for key in keys]
    if not hashes:
        return False
    found = await session.scalar(
        select(MarketingObjectionRow.key_hash)
        .where(MarketingObjectionRow.account_id == account_id, MarketingObjectionRow.key_hash.in_(hashes))
        .limit(1)
    )
    return found is not None
