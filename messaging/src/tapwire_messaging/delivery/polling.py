"""What messaging's polling workers share (the outbox claimer, the trigger timer runner, the journey runner): the
loop that works in rounds until told to stop, and claiming one batch of due items under the messaging lease."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Protocol, TypeVar

from tapwire_core.settings import Settings
from tapwire_messaging.delivery.wakeup import Wakeup

Item = TypeVar("Item")


class LeasedQueue(Protocol[Item]):
    """A store of due items that leases them to one worker at a time (outbox rows, trigger timers, journey
    positions): an item whose lease ran out is claimable again."""

    async def claim(self, *, worker: str, now_ms: int, lease_ms: int, limit: int) -> list[Item]: ...


async def poll_until_stopped(
    stopping: asyncio.Event,
    work_once: Callable[[], Awaitable[int]],
    *,
    wakeup: Wakeup,
    poll_s: float,
    log: logging.Logger,
    failure: str,
) -> None:
    """Call ``work_once`` until ``stopping`` is set, waiting ``poll_s`` (or a wake-up) after a round that found
    nothing to do (returned 0). A round that raises is logged on ``log`` as ``failure`` and counts as nothing
    done: what it had claimed comes back when its lease runs out. Cancellation propagates."""
    while not stopping.is_set():
        try:
            worked = await work_once()
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception(failure)
            worked = 0
        if worked == 0:
            await wakeup.wait(poll_s)


def lease_ms(settings: Settings) -> int:
    """How long a claim holds what it took (``TAPWIRE_MESSAGING_LEASE_S``), in milliseconds."""
    return int(settings.messaging_lease_s * 1000)


async def claim_due(
    queue: LeasedQueue[Item], *, worker: str, now_ms: int, settings: Settings, limit: int | None = None
) -> list[Item]:
    """One batch of the items due at ``now_ms``, leased to ``worker`` for the messaging lease: at most the claim
    batch (``TAPWIRE_MESSAGING_CLAIM_BATCH``), or ``limit``. Raises what the store raises."""
    return await queue.claim(
        worker=worker,
        now_ms=now_ms,
        lease_ms=lease_ms(settings),
        limit=settings.messaging_claim_batch if limit is None else limit,
    )
