"""Whether triggered users are in their trigger's segment when the event arrives: one warehouse query per
triggered campaign and evaluated batch, asking only about the batch's users."""

from __future__ import annotations

import logging
from collections.abc import Sequence

from tapwire_core.control.store import ControlStore
from tapwire_core.warehouse import Warehouse
from tapwire_messaging.triggers.live import LiveTrigger
from tapwire_messaging.triggers.timers import NewTimer
from tapwire_query.audience import SegmentNotFound, member_keys
from tapwire_query.cql import CqlError

log = logging.getLogger(__name__)


class SegmentMembership:
    def __init__(self, warehouse: Warehouse | None, store: ControlStore, *, cluster: bool) -> None:
        self._warehouse = warehouse
        self._store = store
        self._cluster = cluster

    async def admitted(self, checks: Sequence[tuple[LiveTrigger, NewTimer]]) -> list[NewTimer]:
        """The timers of ``checks`` whose user is in their trigger's segment. A segment that was deleted or no
        longer compiles admits nobody (logged). Raises what the warehouse raises."""
        if not checks:
            return []
        if self._warehouse is None:
            log.warning("segment triggers need a warehouse; none in this process")
            return []
        by_campaign: dict[int, list[tuple[LiveTrigger, NewTimer]]] = {}
        for trigger, timer in checks:
            by_campaign.setdefault(trigger.campaign_id, []).append((trigger, timer))
        admitted: list[NewTimer] = []
        for campaign_id, pairs in by_campaign.items():
            trigger = pairs[0][0]
            segment = trigger.spec.segment() or {}
            try:
                members = await member_keys(
                    self._warehouse,
                    account_id=trigger.account_id,
                    user_keys=sorted({timer.user_key for _, timer in pairs}),
                    where=segment.get("where"),
                    segment_id=segment.get("segment_id"),
                    store=self._store,
                    cluster=self._cluster,
                )
            except (CqlError, SegmentNotFound) as exc:
                log.warning(
                    "a trigger's segment cannot be evaluated; its events trigger nothing",
                    extra={"campaign": campaign_id, "error": str(exc)},
                )
                continue
            admitted += [timer for _, timer in pairs if timer.user_key in members]
        return admitted
