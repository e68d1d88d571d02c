"""Recording bounces and complaints, and the suppression list they feed; the caller owns the transaction.

A hard bounce or a complaint suppresses the address at once. Soft bounces suppress it once ``limit`` of them
were recorded within ``window_ms``. A block (the receiver refused the message for its content or the sender's
reputation) is recorded but never suppresses: the address is fine, the fix is on the sending side.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Final, Literal, cast

from sqlalchemy import delete, func, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from tapwire_core.control.email_feedback.models import EmailFeedbackRow, EmailSuppressionRow
from tapwire_core.control.privacy.subject_keys import IDENTIFIER_SALT, deployment_secret, key_hash

FeedbackKind = Literal["hard_bounce", "soft_bounce", "block", "complaint"]
SuppressionReason = Literal["hard_bounce", "complaint", "soft_bounces"]
FEEDBACK_KINDS: Final[tuple[FeedbackKind, ...]] = ("hard_bounce", "soft_bounce", "block", "complaint")
_MAX_DETAIL: Final = 300


def normalise_address(address: str) -> str:
    return address.strip().lower()


def address_hash(salt: bytes, account_id: str, address: str) -> str:
    """The keyed hash an address is kept under: that of its subject key ``e:<address>``, as the privacy
    tables hash it, so an erasure request naming the address finds its rows."""
    return key_hash(salt, account_id, "e:" + normalise_address(address))


@dataclass(frozen=True, slots=True)
class SoftBouncePolicy:
    """``limit`` soft bounces within ``window_ms`` suppress the address."""

    limit: int = 5
    window_ms: int = 30 * 86_400_000


@dataclass(frozen=True, slots=True)
class FeedbackEntry:
    """One bounce or complaint about one address, ready to record."""

    notice_id: str
    address: str
    kind: FeedbackKind
    source: str
    category: str
    ts_ms: int
    user_key: str | None = None
    campaign_id: int | None = None
    status: str | None = None
    detail: str | None = None


@dataclass(frozen=True, slots=True)
class Recorded:
    new: bool
    """False when this notice was recorded before (a provider's retry): nothing else happened."""
    suppressed: SuppressionReason | None = None
    """Set when this notice put the address on the suppression list (it was not on it before)."""


async def record_feedback(
    session: AsyncSession, *, account_id: str, entry: FeedbackEntry, policy: SoftBouncePolicy
) -> Recorded:
    """Record ``entry`` once (by its notice id) and suppress its address when the rules say so."""
    salt = await deployment_secret(session, IDENTIFIER_SALT)
    hashed = address_hash(salt, account_id, entry.address)
    dialect = session.bind.dialect.name if session.bind is not None else "sqlite"
    insert = pg_insert if dialect == "postgresql" else sqlite_insert
    values = {
        "account_id": account_id,
        "notice_id": entry.notice_id,
        "address_hash": hashed,
        "user_key": entry.user_key,
        "campaign_id": entry.campaign_id,
        "kind": entry.kind,
        "source": entry.source[:16],
        "category": entry.category[:32],
        "status": entry.status[:16] if entry.status else None,
        "detail": entry.detail[:_MAX_DETAIL] if entry.detail else None,
        "ts_ms": entry.ts_ms,
    }
    statement = (
        insert(EmailFeedbackRow)
        .values(**values)
        .on_conflict_do_nothing(index_elements=["account_id", "notice_id"])
        .returning(EmailFeedbackRow.id)
    )
    if (await session.execute(statement)).scalar_one_or_none() is None:
        return Recorded(new=False)
    reason = await _suppression_reason(session, account_id, hashed, entry, policy)
    if reason is None:
        return Recorded(new=True)
    added = await session.execute(
        insert(EmailSuppressionRow)
        .values(
            account_id=account_id,
            address_hash=hashed,
            reason=reason,
            source=entry.source[:16],
            created_ms=entry.ts_ms,
        )
        .on_conflict_do_nothing(index_elements=["account_id", "address_hash"])
        .returning(EmailSuppressionRow.address_hash)
    )
    return Recorded(new=True, suppressed=reason if added.scalar_one_or_none() is not None else None)


async def _suppression_reason(
    session: AsyncSession, account_id: str, hashed: str, entry: FeedbackEntry, policy: SoftBouncePolicy
) -> SuppressionReason | None:
    if entry.kind == "hard_bounce":
        return "hard_bounce"
    if entry.kind == "complaint":
        return "complaint"
    if entry.kind != "soft_bounce":
        return None
    count = await session.scalar(
        select(func.count()).where(
            EmailFeedbackRow.account_id == account_id,
            EmailFeedbackRow.address_hash == hashed,
            EmailFeedbackRow.kind == "soft_bounce",
            EmailFeedbackRow.ts_ms > entry.ts_ms - policy.window_ms,
        )
    )
    return "soft_bounces" if int(count or 0) >= policy.limit else None


async def recorded_notices(session: AsyncSession, *, account_id: str, notice_ids: Iterable[str]) -> set[str]:
    """The notice ids among ``notice_ids`` recorded already (one query)."""
    wanted = sorted(set(notice_ids))
    if not wanted:
        return set()
    found = await session.scalars(
        select(EmailFeedbackRow.notice_id).where(
            EmailFeedbackRow.account_id == account_id, EmailFeedbackRow.notice_id.in_(wanted)
        )
    )
    return set(found)


async def suppressed_addresses(
    session: AsyncSession, *, account_id: str, addresses: Iterable[str]
) -> dict[str, SuppressionReason]:
    """The addresses among ``addresses`` on the suppression list, with why (one query)."""
    salt = await deployment_secret(session, IDENTIFIER_SALT)
    by_hash: dict[str, list[str]] = {}
    for address in addresses:
        by_hash.setdefault(address_hash(salt, account_id, address), []).append(address)
    if not by_hash:
        return {}
    rows = await session.execute(
        select(EmailSuppressionRow.address_hash, EmailSuppressionRow.reason).where(
            EmailSuppressionRow.account_id == account_id, EmailSuppressionRow.address_hash.in_(list(by_hash))
        )
    )
    found: dict[str, SuppressionReason] = {}
    for hashed, reason in rows.all():
        for address in by_hash[hashed]:
            found[address] = cast(SuppressionReason, reason)
    return found


@dataclass(frozen=True, slots=True)
class SuppressionView:
    reason: str
    source: str
    created_ms: int


@dataclass(frozen=True, slots=True)
class FeedbackView:
    kind: str
    source: str
    category: str
    status: str | None
    detail: str | None
    campaign_id: int | None
    ts_ms: int


async def address_state(
    session: AsyncSession, *, account_id: str, address: str, limit: int = 20
) -> tuple[SuppressionView | None, list[FeedbackView]]:
    """Whether ``address`` is suppressed (and why), and its latest bounces and complaints, newest first."""
    salt = await deployment_secret(session, IDENTIFIER_SALT)
    hashed = address_hash(salt, account_id, address)
    suppression = await session.get(EmailSuppressionRow, (account_id, hashed))
    rows = await session.scalars(
        select(EmailFeedbackRow)
        .where(EmailFeedbackRow.account_id == account_id, EmailFeedbackRow.address_hash == hashed)
        .order_by(EmailFeedbackRow.ts_ms.desc(), EmailFeedbackRow.id.desc())
        .limit(limit)
    )
    history = [
        FeedbackView(r.kind, r.source, r.category, r.status, r.detail, r.campaign_id, r.ts_ms) for r in rows
    ]
    view = (
        None
        if suppression is None
        else SuppressionView(suppression.reason, suppression.source, suppression.created_ms)
    )
    return view, history


async def lift_suppression(session: AsyncSession, *, account_id: str, addresses: Sequence[str]) -> int:
    """Take ``addresses`` off the suppression list (an operator's decision); returns how many were on it.
    Their recorded bounces stay, but soft bounces recorded before the lift no longer count towards a new one."""
    salt = await deployment_secret(session, IDENTIFIER_SALT)
    hashes = [address_hash(salt, account_id, address) for address in addresses]
    if not hashes:
        return 0
    await session.execute(
        delete(EmailFeedbackRow).where(
            EmailFeedbackRow.account_id == account_id,
            EmailFeedbackRow.address_hash.in_(hashes),
            EmailFeedbackRow.kind == "soft_bounce",
        )
    )
    result = await session.execute(
        delete(EmailSuppressionRow).where(
            EmailSuppressionRow.account_id == account_id, EmailSuppressionRow.address_hash.in_(hashes)
        )
    )
    return int(getattr(result, "rowcount", 0) or 0)
