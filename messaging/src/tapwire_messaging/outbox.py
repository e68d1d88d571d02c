"""The delivery outbox and campaign rows in the control-plane database.

Claiming is one ``UPDATE … WHERE id IN (SELECT … FOR UPDATE SKIP LOCKED) RETURNING``: on PostgreSQL concurrent
senders skip each other's rows; on SQLite the statement runs under the database's single write lock, which
gives the same exclusivity. A claimed row carries a lease; a sender that dies leaves its rows to be claimed
again when the lease runs out, and they are re-sent with the same idempotency key.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Table, and_, bindparam, distinct, func, insert, or_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncEngine

from tapwire_core.control.accounts.models import AccountRow
from tapwire_core.control.messaging.models import CampaignRow, InteractionRow, OutboxRow
from tapwire_messaging.campaigns import CampaignSpec

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
class Campaign:
    id: int
    account_id: str
    name: str
    kind: str
    channel: str
    status: str
    priority: int
    audience: dict[str, Any]
    variants: list[dict[str, Any]]
    rules: dict[str, Any]
    scheduled_ms: int
    cutoff_ms: int
    filled: bool
    audience_size: int
    started_ms: int | None
    finished_ms: int | None


def _campaign(row: CampaignRow) -> Campaign:
    return Campaign(
        id=row.id,
        account_id=row.account_id,
        name=row.name,
        kind=row.kind,
        channel=row.channel,
        status=row.status,
        priority=row.priority,
        audience=row.audience,
        variants=row.variants,
        rules=row.rules,
        scheduled_ms=row.scheduled_ms,
        cutoff_ms=row.cutoff_ms,
        filled=bool(row.filled),
        audience_size=row.audience_size,
        started_ms=row.started_ms,
        finished_ms=row.finished_ms,
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
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self._insert = pg_insert if engine.dialect.name == "postgresql" else sqlite_insert

    # Campaigns.

    async def create_campaign(self, account_id: str, spec: CampaignSpec) -> int:
        async with self.engine.begin() as connection:
            result = await connection.execute(
                insert(CampaignRow)
                .values(
                    account_id=account_id,
                    name=spec.name,
                    kind=spec.kind,
                    channel=spec.channel,
                    status="scheduled",
                    priority=spec.priority,
                    audience=spec.audience,
                    variants=spec.variants,
                    rules=spec.rules,
                    scheduled_ms=spec.scheduled_ms,
                    cutoff_ms=spec.cutoff_ms,
                )
                .returning(CampaignRow.id)
            )
            return int(result.scalar_one())

    async def campaign(self, campaign_id: int, account_id: str | None = None) -> Campaign | None:
        statement = select(CampaignRow).where(CampaignRow.id == campaign_id)
        if account_id is not None:
            statement = statement.where(CampaignRow.account_id == account_id)
        async with self.engine.connect() as connection:
            row = (await connection.execute(statement)).first()
        return _campaign(CampaignRow(**row._mapping)) if row else None

    async def campaigns(
        self, account_id: str, *, start_ms: int | None = None, end_ms: int | None = None
    ) -> list[Campaign]:
        statement = select(CampaignRow).where(CampaignRow.account_id == account_id)
        if start_ms is not None:
            statement = statement.where(CampaignRow.scheduled_ms >= start_ms)
        if end_ms is not None:
            statement = statement.where(CampaignRow.scheduled_ms < end_ms)
        async with self.engine.connect() as connection:
            rows = (await connection.execute(statement.order_by(CampaignRow.id))).all()
        return [_campaign(CampaignRow(**row._mapping)) for row in rows]

    async def due_for_fill(self, now_ms: int) -> list[Campaign]:
        """Campaigns whose start has come and whose outbox is not filled yet (including a fill cut short by a
        crash: filling again is idempotent)."""
        statement = select(CampaignRow).where(
            CampaignRow.status.in_(("scheduled", "running")),
            CampaignRow.filled == 0,
            CampaignRow.scheduled_ms <= now_ms,
        )
        async with self.engine.connect() as connection:
            rows = (
                await connection.execute(statement.order_by(CampaignRow.priority.desc(), CampaignRow.id))
            ).all()
        return [_campaign(CampaignRow(**row._mapping)) for row in rows]

    async def start_campaign(self, campaign_id: int, now_ms: int) -> None:
        async with self.engine.begin() as connection:
            await connection.execute(
                update(CampaignRow)
                .where(CampaignRow.id == campaign_id, CampaignRow.status == "scheduled")
                .values(status="running", started_ms=now_ms)
            )

    async def mark_filled(self, campaign_id: int, audience_size: int) -> None:
        async with self.engine.begin() as connection:
            await connection.execute(
                update(CampaignRow)
                .where(CampaignRow.id == campaign_id)
                .values(filled=1, audience_size=audience_size)
            )

    async def stop_campaign(self, campaign_id: int, now_ms: int) -> bool:
        """Stop a scheduled or running campaign: its pending rows become ``stopped``. False when already over."""
        async with self.engine.begin() as connection:
            changed = await connection.execute(
                update(CampaignRow)
                .where(CampaignRow.id == campaign_id, CampaignRow.status.in_(("scheduled", "running")))
                .values(status="stopped", finished_ms=now_ms)
            )
            await connection.execute(
                update(OutboxRow)
                .where(OutboxRow.campaign_id == campaign_id, OutboxRow.status == "pending")
                .values(status="stopped")
            )
        return bool(changed.rowcount)

    async def account_caps(self, account_id: str, channel: str) -> list[dict[str, float]]:
        """The account's frequency caps for ``channel``: account setting ``frequency_caps``, a map of channel
        (or ``all``) to a list of ``{limit, window_s}``. Malformed entries are ignored."""
        async with self.engine.connect() as connection:
            settings = (
                await connection.execute(select(AccountRow.settings).where(AccountRow.id == account_id))
            ).scalar_one_or_none()
        caps = (settings or {}).get("frequency_caps", {})
        if not isinstance(caps, dict):
            return []
        found = []
        for key in (channel, "all"):
            for cap in caps.get(key, []) if isinstance(caps.get(key), list) else []:
                if (
                    isinstance(cap, dict)
                    and isinstance(cap.get("limit"), int)
                    and isinstance(cap.get("window_s"), int | float)
                ):
                    found.append({"limit": int(cap["limit"]), "window_s": float(cap["window_s"])})
        return found

    async def stopped_among(self, campaign_ids: Sequence[int]) -> set[int]:
        async with self.engine.connect() as connection:
            rows = await connection.execute(
                select(CampaignRow.id).where(
                    CampaignRow.id.in_(list(campaign_ids)), CampaignRow.status == "stopped"
                )
            )
            return {int(i) for i in rows.scalars()}

    async def complete_finished(self, now_ms: int) -> list[int]:
        """Mark running, filled campaigns with nothing left pending or in flight as completed."""
        open_rows = (
            select(OutboxRow.id)
            .where(OutboxRow.campaign_id == CampaignRow.id, OutboxRow.status.in_(("pending", "sending")))
            .exists()
        )
        async with self.engine.begin() as connection:
            done = (
                (
                    await connection.execute(
                        select(CampaignRow.id).where(
                            CampaignRow.status == "running", CampaignRow.filled == 1, ~open_rows
                        )
                    )
                )
                .scalars()
                .all()
            )
            if done:
                await connection.execute(
                    update(CampaignRow)
                    .where(CampaignRow.id.in_(done), CampaignRow.status == "running")
                    .values(status="completed", finished_ms=now_ms)
                )
        return [int(i) for i in done]

    # Outbox rows.

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
        channel: str,
        user_keys: Sequence[str],
        since_ms: int,
        campaign_id: int,
        exclude: Sequence[int],
    ) -> dict[str, int]:
        """Other campaigns than ``campaign_id`` with a message sent (or in flight, apart from the rows
        ``exclude``) to each user on ``channel`` since ``since_ms``. A campaign counts once per user however many
        of the user's devices it reached."""
        if not user_keys:
            return {}
        statement = (
            select(OutboxRow.user_key, func.count(distinct(OutboxRow.campaign_id)))
            .where(
                OutboxRow.account_id == account_id,
                OutboxRow.channel == channel,
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

    # Reports.

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

    async def interaction_counts(self, campaign_ids: Sequence[int]) -> dict[int, dict[str, dict[str, int]]]:
        """campaign → variant → kind (viewed, clicked, unsubscribed, converted) → unique users."""
        if not campaign_ids:
            return {}
        statement = (
            select(InteractionRow.campaign_id, InteractionRow.variant, InteractionRow.kind, func.count())
            .where(InteractionRow.campaign_id.in_(list(campaign_ids)))
            .group_by(InteractionRow.campaign_id, InteractionRow.variant, InteractionRow.kind)
        )
        counts: dict[int, dict[str, dict[str, int]]] = {}
        async with self.engine.connect() as connection:
            for campaign, variant, kind, count in (await connection.execute(statement)).all():
                counts.setdefault(int(campaign), {}).setdefault(str(variant), {})[str(kind)] = int(count)
        return counts

    async def record_interaction(
        self, *, campaign_id: int, variant: str, user_key: str, kind: str, ts_ms: int
    ) -> bool:
        """Store a user's first interaction of ``kind``; False when it was already recorded."""
        statement = (
            self._insert(InteractionRow)
            .values(campaign_id=campaign_id, variant=variant, user_key=user_key, kind=kind, ts_ms=ts_ms)
            .on_conflict_do_nothing(index_elements=["campaign_id", "user_key", "kind"])
        )
        async with self.engine.begin() as connection:
            result = await connection.execute(statement)
        return bool(result.rowcount)

    async def recipients(
        self, campaign_id: int, statuses: Sequence[str]
    ) -> list[tuple[str, str, int | None]]:
        """(user key, variant, sent ms) of rows in ``statuses`` — for conversion attribution."""
        statement = select(OutboxRow.user_key, OutboxRow.variant, OutboxRow.sent_ms).where(
            OutboxRow.campaign_id == campaign_id, OutboxRow.status.in_(list(statuses))
        )
        async with self.engine.connect() as connection:
            return [(str(u), str(v), s) for u, v, s in (await connection.execute(statement)).all()]
