"""Lease keeping: rows in flight keep their lease while this sender works on them.

A claimed row's lease (``TAPWIRE_MESSAGING_LEASE_S``) is renewed every third of it for every row the claimer
took and the recorder has not yet written, so a row waiting for a throttle or a slow provider is not claimed
again by another sender. A sender that dies stops renewing, and its rows come back when the lease runs out.
"""

from __future__ import annotations

import asyncio
import logging

from tapwire_core.clock import Clock, epoch_ms
from tapwire_messaging.outbox import Outbox

log = logging.getLogger(__name__)

_MIN_INTERVAL_S = 0.2


class LeaseKeeper:
    def __init__(
        self, *, outbox: Outbox, in_flight: set[int], lease_s: float, worker: str, clock: Clock
    ) -> None:
        self._outbox = outbox
        self._in_flight = in_flight
        self._lease_s = lease_s
        self._worker = worker
        self._clock = clock

    async def run(self) -> None:
        """Renew forever, until cancelled; a failed renewal is logged and tried again at the next interval."""
        interval = max(_MIN_INTERVAL_S, self._lease_s / 3)
        while True:
            await asyncio.sleep(interval)
            try:
                await self._outbox.renew(
                    list(self._in_flight),
                    worker=self._worker,
                    until_ms=epoch_ms(self._clock()) + int(self._lease_s * 1000),
                )
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("renewing leases failed")
