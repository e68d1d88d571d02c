"""The delivery outbox in the control-plane database: one row per message, from fill to outcome.

Claiming is one ``UPDATE … WHERE id IN (SELECT … FOR UPDATE SKIP LOCKED) RETURNING``: on PostgreSQL concurrent
senders skip each other's rows; on SQLite the statement runs under the database's single write lock, which
gives the same exclusivity. A claimed row carries a lease; a sender that dies leaves its rows to be claimed
again when the lease runs out, and they are re-sent with the same idempotency key.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Table, and_, bindparam, distinct, func, or_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncEngine

from tapwire_core.control.messaging.models import CampaignRow, OutboxRow

_OUTBOX: Table = OutboxRow.__table__  # type: ignore[assignment]

_CLAIMED_COLUMNS = (
    OutboxRow.id,
    OutboxRow.campaign_id,
    OutboxRow.account_id,
    OutboxRow.variant,
    OutboxRow.user_key,
    OutboxRow.channel,
    OutboxRow.device,
    OutboxRow.address,
    OutboxRow.platform,
    OutboxRow.context,
    OutboxRow.attempts,
)

FINAL_STATUSES = frozenset(
    {
        "sent",
        "failed",
        "rejected",
        "unregistered",
        "suppressed",
        "capped",
        "control",
        "expired",
        "stopped",
        "no_address",
    }
)


@dataclass(frozen=True, slots=True)
class Claimed:
    id: int
    campaign_id: int
    account_id: str
    variant: str
    user_key: str
    channel: str
    device: str
    address: str
    platform: str | None
    context: dict[str, Any]
    attempts: int


@dataclass(frozen=True, slots=True)
class Verdict:
    """What became of a claimed row: a final status, or back to pending at ``due_ms``."""

    id: int
    status: str
    detail: str | None = None
    provider_id: str | None = None
    sent_ms: int | None = None
    due_ms: int | None = None


class Outbox:
    """The outbox table: rows added by the fill, claimed under a lease, given their outcome by the claimant."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self._insert = pg_insert if engine.dialect.name == "postgresql" else sqlite_insert

    async def add(self, rows: Sequence[Mapping[str, Any]]) -> None:
        """Insert rows; a row whose key (campaign, variant, user, channel, device) exists is left as it is."""
        if not rows:
            return
        statement = self._insert(OutboxRow).on_conflict_do_nothing(
            index_elements=["campaign_id", "variant", "user_key", "channel", "device"]
        )
        async with self.engine.begin() as connection:
            await connection.execute(statement, list(rows))

    async def claim(self, *, worker: str, now_ms: int, lease_ms: int, limit: int) -> list[Claimed]:
        """Claim up to ``limit`` rows of running campaigns: first rows whose previous claimant's lease ran out
        (a crashed sender's), then due pending rows, highest priority first.

        The pending query walks the (status, priority, id) index backwards and stops after ``limit`` matches,
        so a claim costs the same with ten rows waiting as with ten million. Within one priority the newest
        rows go first: delivery order inside a campaign carries no promise, and one index direction keeps
        the index portable (expression indexes compare unreliably across dialects).
        """
        running = select(CampaignRow.id).where(CampaignRow.status == "running")
        expired = (
            select(OutboxRow.id)
            .where(
                OutboxRow.status == "sending",
                OutboxRow.lease_until_ms < now_ms,
                OutboxRow.campaign_id.in_(running),
            )
            .limit(limit)
        )
        due = (
            select(OutboxRow.id)
            .where(
                OutboxRow.status == "pending", OutboxRow.due_ms <= now_ms, OutboxRow.campaign_id.in_(running)
            )
            .order_by(OutboxRow.priority.desc(), OutboxRow.id.desc())
        )
        claimed: list[Claimed] = []
        async with self.engine.begin() as connection:
            for candidates in (expired, due):
                room = limit - len(claimed)
                if room <= 0:
                    break
                statement = (
                    update(OutboxRow)
                    .where(
                        OutboxRow.id.in_(
                            candidates.limit(room).with_for_update(skip_locked=True).scalar_subquery()
                        )
                    )
                    .values(
                        status="sending",
                        lease_until_ms=now_ms + lease_ms,
                        claimed_by=worker,
                        attempts=OutboxRow.attempts + 1,
                    )
                    .returning(*_CLAIMED_COLUMNS)
                )
                claimed += [Claimed(**row._mapping) for row in (await connection.execute(statement)).all()]
        return sorted(claimed, key=lambda c: c.id)

    async def renew(self, ids: Iterable[int], *, worker: str, until_ms: int) -> None:
        ids = list(ids)
        if not ids:
            return
        async with self.engine.begin() as connection:
            await connection.execute(
                update(OutboxRow)
                .where(OutboxRow.id.in_(ids), OutboxRow.claimed_by == worker, OutboxRow.status == "sending")
                .values(lease_until_ms=until_ms)
            )

    async def record(self, verdicts: Sequence[Verdict], *, worker: str) -> None:
        """Write each claimed row's outcome, only while this worker still holds it."""
        if not verdicts:
            return
        final = [v for v in verdicts if v.due_ms is None]
        deferred = [v for v in verdicts if v.due_ms is not None]
        table = _OUTBOX
        async with self.engine.begin() as connection:
            if final:
                await connection.execute(
                    update(table)
                    .where(table.c.id == bindparam("row_id"), table.c.claimed_by == worker)
                    .values(
                        status=bindparam("new_status"),
                        detail=bindparam("new_detail"),
                        provider_id=bindparam("new_provider_id"),
                        sent_ms=bindparam("new_sent_ms"),
                        lease_until_ms=None,
                    ),
                    [
                        {
                            "row_id": v.id,
                            "new_status": v.status,
                            "new_detail": (v.detail or "")[:500] or None,
                            "new_provider_id": (v.provider_id or "")[:255] or None,
                            "new_sent_ms": v.sent_ms,
                        }
                        for v in final
                    ],
                )
            if deferred:
                await connection.execute(
                    update(table)
                    .where(table.c.id == bindparam("row_id"), table.c.claimed_by == worker)
                    .values(
                        status="pending",
                        due_ms=bindparam("new_due_ms"),
                        detail=bindparam("new_detail"),
                        lease_until_ms=None,
                    ),
                    [{"row_id": v.id, "new_due_ms": v.due_ms, "new_detail": v.detail} for v in deferred],
                )

    async def recent_sends(
        self,
        *,
        account_id: str,
        channel: str | None,
        user_keys: Sequence[str],
        since_ms: int,
        campaign_id: int,
        exclude: Sequence[int],
    ) -> dict[str, int]:
        """Other campaigns than ``campaign_id`` with a message sent (or in flight, apart from the rows
        ``exclude``) to each user on ``channel`` (None: on any channel) since ``since_ms``. A campaign counts once
        per user however many of the user's devices it reached."""
        if not user_keys:
            return {}
        # Across channels, the index on (account, user, channel, sent) still narrows by its first two columns.
        on_channel = () if channel is None else (OutboxRow.channel == channel,)
        statement = (
            select(OutboxRow.user_key, func.count(distinct(OutboxRow.campaign_id)))
            .where(
                OutboxRow.account_id == account_id,
                *on_channel,
                OutboxRow.user_key.in_(list(user_keys)),
                or_(
                    and_(OutboxRow.status == "sent", OutboxRow.sent_ms >= since_ms),
                    OutboxRow.status == "sending",
                ),
                OutboxRow.campaign_id != campaign_id,
                OutboxRow.id.not_in(list(exclude)),
            )
            .group_by(OutboxRow.user_key)
        )
        async with self.engine.connect() as connection:
            rows = (await connection.execute(statement)).all()
        return {str(user): int(count) for user, count in rows}

    async def status_counts(self, campaign_ids: Sequence[int]) -> dict[int, dict[str, dict[str, int]]]:
        """campaign → variant → status → rows."""
        if not campaign_ids:
            return {}
        statement = (
            select(OutboxRow.campaign_id, OutboxRow.variant, OutboxRow.status, func.count())
            .where(OutboxRow.campaign_id.in_(list(campaign_ids)))
            .group_by(OutboxRow.campaign_id, OutboxRow.variant, OutboxRow.status)
        )
        counts: dict[int, dict[str, dict[str, int]]] = {}
        async with self.engine.connect() as connection:
            for campaign, variant, status, count in (await connection.execute(statement)).all():
                counts.setdefault(int(campaign), {}).setdefault(str(variant), {})[str(status)] = int(count)
        return counts

    async def recipients(
        self, campaign_id: int, statuses: Sequence[str]
    ) -> list[tuple[str, str, int | None]]:
        """(user key, variant, sent ms) of rows in ``statuses`` — for conversion attribution."""
        statement = select(OutboxRow.user_key, OutboxRow.variant, OutboxRow.sent_ms).where(
            OutboxRow.campaign_id == campaign_id, OutboxRow.status.in_(list(statuses))
        )
        async with self.engine.connect() as connection:
            return [(str(u), str(v), s) for u, v, s in (await connection.execute(statement)).all()]
