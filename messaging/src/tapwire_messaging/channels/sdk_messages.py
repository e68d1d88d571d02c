"""In-app and inbox messages: "sending" one queues it for the user's CleverTap SDKs, which fetch it themselves.

No provider is involved: CleverTap's Web, Android and iOS SDKs ask the gateway on every request, and the gateway
answers with the messages waiting for the user (``tapwire_core.control.sdk_messages``; the answer's shapes are
built in ``tapwire_ingest.clevertap_sdk.sdk_messages``). So a send writes the message to the control store,
where it waits until an SDK of the user takes it or it expires; ``sent`` means queued, and the gateway publishes
``Notification Delivered`` when an SDK takes it.

The message is stored under every key the identity graph knows the person by at that moment (their device ids
among them), since an SDK request names its device, and a login its person. The outbox's idempotency key makes
a repeated send (after a crash) queue nothing more.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine

from tapwire_core.control.sdk_messages import QueuedMessage, SdkChannel, enqueue, purge
from tapwire_core.identity import IdentityGraph
from tapwire_messaging.channels.base import ChannelAdapter, OutboundMessage, SendResult

log = logging.getLogger(__name__)

# Expired messages are deleted this often (by whichever process queues messages), a day after they expired.
_PURGE_EVERY_S = 600.0
_PURGE_AFTER_MS = 86_400_000


class SdkMessageAdapter(ChannelAdapter):
    """``message.data`` holds what the store needs: ``account_id``, ``campaign_id``, ``variant``, ``channel``
    (``inapp`` or ``inbox``), ``kind``, ``user_key``, ``ttl_s`` and the rendered ``content``."""

    name = "sdk"

    def __init__(self, engine: AsyncEngine, *, clock: Callable[[], float] = time.time) -> None:
        self._engine = engine
        self._graph = IdentityGraph(engine)
        self._clock = clock
        self._purged_at = 0.0

    async def send(self, message: OutboundMessage) -> SendResult:
        data = message.data
        now_ms = int(self._clock() * 1000)
        try:
            account_id, user_key = str(data["account_id"]), str(data["user_key"])
            keys = await self._graph.linked_identifiers(account_id, user_key)
            queued = await enqueue(
                self._engine,
                QueuedMessage(
                    account_id=account_id,
                    campaign_id=int(data["campaign_id"]),
                    variant=str(data["variant"]),
                    channel=_channel(data["channel"]),
                    kind=str(data["kind"]),
                    user_key=user_key,
                    message_key=message.idempotency_key,
                    lookup_keys=sorted({user_key, *keys}),
                    content=dict(data["content"]),
                    created_ms=now_ms,
                    expires_ms=now_ms + int(float(data["ttl_s"]) * 1000),
                ),
            )
            await self._purge(now_ms)
        except (SQLAlchemyError, OSError) as exc:
            return SendResult("failed", f"the message store is unavailable: {exc}")
        return SendResult("sent", "queued for the user's SDK" if queued else "queued before")

    async def _purge(self, now_ms: int) -> None:
        if self._clock() - self._purged_at < _PURGE_EVERY_S:
            return
        self._purged_at = self._clock()
        removed = await purge(self._engine, before_ms=now_ms - _PURGE_AFTER_MS)
        if removed:
            log.info("expired SDK messages deleted", extra={"count": removed})


def _channel(raw: object) -> SdkChannel:
    if raw == "inapp":
        return "inapp"
    if raw == "inbox":
        return "inbox"
    raise ValueError(f"not an SDK message channel: {raw!r}")
