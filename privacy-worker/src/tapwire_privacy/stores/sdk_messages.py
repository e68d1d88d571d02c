"""Privacy handler for in-app and inbox messages waiting for (or fetched by) users' SDKs (``sdk_messages`` and
their ``sdk_message_keys``, models in ``tapwire_core.control.sdk_messages``).

A message names the user (their key, and as its key rows the keys their SDKs may ask by, device ids among them)
and holds the message as rendered for them (a template may have put profile values into it), so an erasure deletes the
subject's rows outright: a waiting message is then never delivered, and a delivered one only served to
attribute the SDK's viewed and clicked events. A tenant-level scope deletes every row of the account.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Sequence
from typing import Any

from sqlalchemy import ColumnElement, delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from tapwire_core.control.sdk_messages import SdkMessageKeyRow, SdkMessageRow
from tapwire_core.privacy.scope import Scope
from tapwire_privacy.stores.control_deletes import make_deletes_physical
from tapwire_privacy.stores.messaging import _ControlHandler


class SdkMessagesHandler(_ControlHandler):
    table = SdkMessageRow.__tablename__
    name = "control.sdk_messages"

    async def settle(self) -> None:
        await make_deletes_physical(self._engine, [self.table, SdkMessageKeyRow.__tablename__])

    def _match(self, scope: Scope) -> ColumnElement[bool]:
        condition = SdkMessageRow.account_id == scope.account_id
        if scope.keys is None:
            return condition
        # The user key is the person's canonical key, which the erasure's closure holds with every other key.
        return condition & SdkMessageRow.user_key.in_(sorted(scope.keys))

    async def export(self, scope: Scope) -> AsyncGenerator[list[dict[str, Any]], None]:
        # One batch: a subject has a handful of rows; a whole account's are read at once (not streamed yet).
        yield await self._exported(scope)

    async def _exported(self, scope: Scope) -> list[dict[str, Any]]:
        async with AsyncSession(self._engine) as session:
            rows = list(
                await session.scalars(
                    select(SdkMessageRow).where(self._match(scope)).order_by(SdkMessageRow.id)
                )
            )
            keys: dict[int, list[str]] = {}
            listed = select(SdkMessageKeyRow.message_id, SdkMessageKeyRow.key).where(
                SdkMessageKeyRow.message_id.in_([r.id for r in rows])
            )
            for message_id, key in (await session.execute(listed)).all():
                keys.setdefault(int(message_id), []).append(str(key))
            return [
                {
                    "campaign_id": r.campaign_id,
                    "channel": r.channel,
                    "user_key": r.user_key,
                    "lookup_keys": sorted(keys.get(r.id, [])),
                    "content": r.content,
                    "created_ms": r.created_ms,
                    "expires_ms": r.expires_ms,
                    "delivered_ms": r.delivered_ms,
                }
                for r in rows
            ]

    async def erase(self, scopes: Sequence[Scope]) -> None:
        async with AsyncSession(self._engine) as session, session.begin():
            for scope in scopes:
                matched = select(SdkMessageRow.id).where(self._match(scope))
                await session.execute(
                    delete(SdkMessageKeyRow).where(SdkMessageKeyRow.message_id.in_(matched))
                )
                await session.execute(delete(SdkMessageRow).where(self._match(scope)))
