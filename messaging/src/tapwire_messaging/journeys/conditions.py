"""The questions journey steps ask about one user: did they do an event lately, does a profile property hold,
are they in a segment, and when is the next HH:MM in their time zone."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, Final
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import orjson

from tapwire_core.control.store import ControlStore
from tapwire_core.warehouse import Warehouse
from tapwire_messaging.journeys.definition import ConditionStep, WaitStep
from tapwire_messaging.recipients import RecipientProfile
from tapwire_messaging.triggers.filters import matches, matches_all
from tapwire_query.audience import SegmentNotFound, member_keys
from tapwire_query.cql import CqlError
from tapwire_query.cql.identity import aliases_clause, canonical

# The user's events of one name since a time, under any of their merged keys; at most 1,000 are looked at.
_RECENT_EVENTS_SQL: Final = (
    f"WITH {aliases_clause('{account:String}')}, {canonical('{user:String}')} AS _wanted "
    "SELECT properties FROM events WHERE account_id = {account:String} AND name = {name:String} "
    f"AND ts >= fromUnixTimestamp64Milli({{since:Int64}}) AND {canonical()} = _wanted LIMIT 1000"
)


class Conditions:
    def __init__(self, warehouse: Warehouse | None, store: ControlStore, *, cluster: bool) -> None:
        self._warehouse = warehouse
        self._store = store
        self._cluster = cluster

    async def holds(
        self, step: ConditionStep, *, account_id: str, profile: RecipientProfile, now_ms: int
    ) -> bool:
        """Whether the step's condition holds for the user now. A segment that is gone holds for nobody.
        ``profile`` is the user's, as read for the runner's batch. Raises what the warehouse raises."""
        user_key = profile.user_key
        if step.profile is not None:
            return matches(step.profile, profile.profile)
        if self._warehouse is None:
            return False
        if step.did is not None:
            rows = await self._warehouse.query(
                _RECENT_EVENTS_SQL,
                {
                    "account": account_id,
                    "user": user_key,
                    "name": step.did.event,
                    "since": now_ms - int(step.did.within_s * 1000),
                },
            )
            return any(matches_all(step.did.filters, _properties(row["properties"])) for row in rows)
        try:
            members = await member_keys(
                self._warehouse,
                account_id=account_id,
                user_keys=[user_key],
                where=step.where,
                segment_id=step.segment_id,
                store=self._store,
                cluster=self._cluster,
            )
        except (CqlError, SegmentNotFound):
            return False
        return user_key in members


def wait_over_ms(step: WaitStep, user_zone: str | None, *, now_ms: int) -> int:
    """When the wait ends: ``duration_s`` from now, or the next ``until`` in the user's zone (else the step's,
    else UTC)."""
    if step.duration_s is not None:
        return now_ms + int(step.duration_s * 1000)
    assert step.until is not None, "a wait has a duration or a time of day"
    zone = _zone(user_zone) or _zone(step.timezone) or ZoneInfo("UTC")
    local = datetime.fromtimestamp(now_ms / 1000, zone)
    hour, minute = (int(part) for part in step.until.split(":"))
    target = local.replace(hour=hour, minute=minute, second=0, microsecond=0)
    if target <= local:
        target += timedelta(days=1)
    # Rebuilt in the zone so a DST change lands on the wall-clock time asked for.
    wall = datetime(target.year, target.month, target.day, hour, minute, tzinfo=zone)
    return int(wall.timestamp() * 1000)


def _properties(raw: Any) -> dict[str, Any]:
    if isinstance(raw, dict):
        return raw
    try:
        parsed = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return {}
    return parsed if isinstance(parsed, dict) else {}


def _zone(name: Any) -> ZoneInfo | None:
    if not isinstance(name, str) or not name:
        return None
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return None
