"""Queueing, handing out and attributing SDK messages (``SdkMessageRow``), on the control store's engine.

Messaging queues (:func:`enqueue`); gateways take what a user's SDK request may have (:func:`take`), read the
keys of newly queued messages for their in-memory filter (:func:`waiting_keys_since`) and attribute the SDK's viewed and clicked events
(:func:`attribute`); an objection withdraws what is still waiting (:func:`withdraw`). Every function may raise
SQLAlchemyError when the database is unreachable.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal

from sqlalchemy import delete, func, or_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from tapwire_core.control.messaging.models import InteractionRow
from tapwire_core.control.sdk_messages.models import SdkMessageKeyRow, SdkMessageRow

SdkChannel = Literal["inapp", "inbox"]
SDK_CHANNELS: Final[tuple[SdkChannel, ...]] = ("inapp", "inbox")
# The events the SDKs raise about the messages they show, and the interaction each counts as.
INTERACTIONS: Final = {"Notification Viewed": "viewed", "Notification Clicked": "clicked"}
MAX_PER_ANSWER: Final = 20
"""The most messages one SDK request takes: the answer stays small, and the rest go to the next request."""


@dataclass(frozen=True, slots=True)
class QueuedMessage:
    """A message to queue; ``message_key`` is its outbox row's idempotency key."""

    account_id: str
    campaign_id: int
    variant: str
    channel: SdkChannel
    kind: str
    user_key: str
    message_key: str
    lookup_keys: Sequence[str]
    content: dict[str, Any]
    created_ms: int
    expires_ms: int


@dataclass(frozen=True, slots=True)
class PendingMessage:
    """A message handed to an SDK request."""

    id: int
    campaign_id: int
    variant: str
    channel: str
    user_key: str
    content: dict[str, Any]
    created_ms: int
    expires_ms: int

    @property
    def wzrk_id(self) -> str:
        """CleverTap's message id as the SDKs use it: ``<campaign>_<message>``. The SDKs read the part before
        the underscore as the campaign (the Web SDK writes it into a script as a number) and send the whole id
        back with the viewed and clicked events, which is how those are attributed."""
        return f"{self.campaign_id}_{self.id}"


@dataclass(frozen=True, slots=True)
class Attribution:
    campaign_id: int
    variant: str
    channel: str
    user_key: str
    first: bool
    """The first such interaction of the user with the campaign (the campaign's figures count it)."""


async def enqueue(engine: AsyncEngine, message: QueuedMessage) -> bool:
    """Queue ``message`` with its lookup keys; False when a message with its key was queued before (a repeated
    send)."""
    insert = pg_insert if engine.dialect.name == "postgresql" else sqlite_insert
    statement = (
        insert(SdkMessageRow)
        .values(
            account_id=message.account_id,
            campaign_id=message.campaign_id,
            variant=message.variant,
            channel=message.channel,
            kind=message.kind,
            user_key=message.user_key,
            message_key=message.message_key,
            content=message.content,
            created_ms=message.created_ms,
            expires_ms=message.expires_ms,
        )
        .on_conflict_do_nothing(index_elements=["message_key"])
        .returning(SdkMessageRow.id)
    )
    async with engine.begin() as connection:
        message_id = (await connection.execute(statement)).scalar()
        if message_id is None:
            return False
        keys = sorted({message.user_key, *message.lookup_keys})
        await connection.execute(
            insert(SdkMessageKeyRow),
            [{"message_id": message_id, "key": key, "account_id": message.account_id} for key in keys],
        )
    return True


async def take(
    engine: AsyncEngine, *, account_id: str, keys: Iterable[str], request: str, now_ms: int
) -> list[PendingMessage]:
    """Mark the messages waiting for any of ``keys`` delivered to ``request`` and return them, with those
    delivered to this same request before (a retry whose first answer was lost): the oldest
    :data:`MAX_PER_ANSWER`. Expired messages and messages another request took are left out. One statement: two
    gateways taking the same message at once get it once between them."""
    wanted = sorted(set(keys))
    if not wanted:
        return []
    for_request = or_(SdkMessageRow.delivered_ms.is_(None), SdkMessageRow.delivered_request == request)
    by_key = (
        select(SdkMessageKeyRow.message_id)
        .join(SdkMessageRow, SdkMessageRow.id == SdkMessageKeyRow.message_id)
        .where(
            SdkMessageKeyRow.account_id == account_id,
            SdkMessageKeyRow.key.in_(wanted),
            SdkMessageRow.expires_ms > now_ms,
            for_request,
        )
        .order_by(SdkMessageKeyRow.message_id)
        .limit(MAX_PER_ANSWER)
    )
    statement = (
        update(SdkMessageRow)
        .where(
            SdkMessageRow.id.in_(by_key),
            SdkMessageRow.account_id == account_id,
            SdkMessageRow.expires_ms > now_ms,
            for_request,
        )
        .values(
            delivered_ms=func.coalesce(SdkMessageRow.delivered_ms, now_ms),
            delivered_request=request,
        )
        .returning(
            SdkMessageRow.id,
            SdkMessageRow.campaign_id,
            SdkMessageRow.variant,
            SdkMessageRow.channel,
            SdkMessageRow.user_key,
            SdkMessageRow.content,
            SdkMessageRow.created_ms,
            SdkMessageRow.expires_ms,
        )
    )
    async with engine.begin() as connection:
        rows = (await connection.execute(statement)).all()
    return sorted((PendingMessage(*row) for row in rows), key=lambda m: m.id)


async def waiting_keys_since(
    engine: AsyncEngine, *, since_ms: int | None, now_ms: int
) -> list[tuple[str, str]]:
    """(account, key) of the messages still waiting that were queued at or after ``since_ms`` (all of them when
    None)."""
    query = (
        select(SdkMessageKeyRow.account_id, SdkMessageKeyRow.key)
        .join(SdkMessageRow, SdkMessageRow.id == SdkMessageKeyRow.message_id)
        .where(SdkMessageRow.delivered_ms.is_(None), SdkMessageRow.expires_ms > now_ms)
    )
    if since_ms is not None:
        query = query.where(SdkMessageRow.created_ms >= since_ms)
    async with engine.connect() as connection:
        return [(str(account), str(key)) for account, key in (await connection.execute(query)).all()]


async def attribute(
    engine: AsyncEngine, *, account_id: str, wzrk_id: str, interaction: str, ts_ms: int
) -> Attribution | None:
    """The message an SDK event's ``wzrk_id`` names (``<campaign>_<message>``) in this account, with the user's
    interaction recorded once per campaign (``viewed``, ``clicked``); None when it names none of ours."""
    campaign, _, message = wzrk_id.partition("_")
    if not (campaign.isascii() and campaign.isdigit() and message.isascii() and message.isdigit()):
        return None
    if len(campaign) > 18 or len(message) > 18:
        return None
    async with AsyncSession(engine) as session, session.begin():
        row = (
            await session.execute(
                select(
                    SdkMessageRow.campaign_id,
                    SdkMessageRow.variant,
                    SdkMessageRow.channel,
                    SdkMessageRow.user_key,
                ).where(
                    SdkMessageRow.id == int(message),
                    SdkMessageRow.campaign_id == int(campaign),
                    SdkMessageRow.account_id == account_id,
                )
            )
        ).first()
        if row is None:
            return None
        campaign_id, variant, channel, user_key = row
        insert = pg_insert if engine.dialect.name == "postgresql" else sqlite_insert
        recorded = await session.execute(
            insert(InteractionRow)
            .values(
                campaign_id=campaign_id, variant=variant, user_key=user_key, kind=interaction, ts_ms=ts_ms
            )
            .on_conflict_do_nothing(index_elements=["campaign_id", "user_key", "kind"])
        )
    return Attribution(int(campaign_id), str(variant), str(channel), str(user_key), bool(recorded.rowcount))  # type: ignore[attr-defined]


async def withdraw(session: AsyncSession, *, account_id: str, user_keys: Iterable[str]) -> int:
    """Delete the promotional messages still waiting for ``user_keys`` (an objection); in the caller's
    transaction. Returns how many."""
    keys = sorted(set(user_keys))
    if not keys:
        return 0
    result = await session.execute(
        delete(SdkMessageRow).where(
            SdkMessageRow.account_id == account_id,
            SdkMessageRow.user_key.in_(keys),
            SdkMessageRow.kind != "transactional",
            SdkMessageRow.delivered_ms.is_(None),
        )
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


async def purge(engine: AsyncEngine, *, before_ms: int) -> int:
    """Delete messages that expired before ``before_ms`` (delivered or not); how many."""
    async with engine.begin() as connection:
        result = await connection.execute(delete(SdkMessageRow).where(SdkMessageRow.expires_ms < before_ms))
    return int(result.rowcount)
