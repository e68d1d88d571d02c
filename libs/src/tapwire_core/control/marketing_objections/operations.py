"""Recording and checking marketing objections on an open session; the caller owns the transaction."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from tapwire_core.control.marketing_objections.models import MarketingObjectionRow
from tapwire_core.control.messaging.journey_exits import exit_journeys
from tapwire_core.control.privacy.subject_keys import IDENTIFIER_SALT, deployment_secret, key_hash
from tapwire_core.control.sdk_messages.store import withdraw


async def record_objection(
    session: AsyncSession, *, account_id: str, keys: Iterable[str], request_id: str | None, at: datetime
) -> int:
    """List every subject key in ``keys`` as objecting, and take them out of every journey at once (their open
    positions end ``exited``, and their promotional in-app and inbox messages not yet fetched are withdrawn, in
    the same transaction); returns how many keys were new. Idempotent."""
    keys = list(keys)
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
    await exit_journeys(
        session,
        account_id=account_id,
        user_keys=keys,
        reason="objected to marketing",
        now_ms=int(at.timestamp() * 1000),
    )
    # In-app and inbox messages still waiting for the user's SDK are promotional messages not yet delivered.
    await withdraw(session, account_id=account_id, user_keys=keys)
    return len(hashes - existing)


async def has_objected(session: AsyncSession, *, account_id: str, keys: Iterable[str]) -> bool:
    """True when any of ``keys`` (subject keys such as ``e:ann@example.com``) objected to marketing."""
    return bool(await objected_keys(session, account_id=account_id, keys=keys))


async def objected_keys(session: AsyncSession, *, account_id: str, keys: Iterable[str]) -> set[str]:
    """The subset of ``keys`` listed as objecting (one query, however many keys)."""
    salt = await deployment_secret(session, IDENTIFIER_SALT)
    by_hash = {key_hash(salt, account_id, key): key for key in keys}
    if not by_hash:
        return set()
    found = await session.scalars(
        select(MarketingObjectionRow.key_hash).where(
            MarketingObjectionRow.account_id == account_id, MarketingObjectionRow.key_hash.in_(list(by_hash))
        )
    )
    return {by_hash[hashed] for hashed in found}


async def lift_objection(session: AsyncSession, *, account_id: str, keys: Iterable[str]) -> int:
    """Remove ``keys`` from the objection list; returns how many were listed."""
    salt = await deployment_secret(session, IDENTIFIER_SALT)
    hashes = [key_hash(salt, account_id, key) for key in keys]
    if not hashes:
        return 0
    result = await session.execute(
        delete(MarketingObjectionRow).where(
            MarketingObjectionRow.account_id == account_id, MarketingObjectionRow.key_hash.in_(hashes)
        )
    )
    return int(getattr(result, "rowcount", 0) or 0)
