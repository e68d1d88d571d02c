"""Send-time audience rules that need no database: stable assignment, profile opt-outs, quiet hours, throttling.

Caps and consent need the control store and live in the sender; everything here is a pure function of its
arguments (and an injected monotonic timer), so it is unit-tested directly.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError


def _unit(*parts: object) -> float:
    """A stable number in [0, 1) for ``parts``: same input, same number, in every process and release."""
    digest = hashlib.blake2b("\x1f".join(str(p) for p in parts).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


def in_control_group(campaign_id: int, user_key: str, percent: float) -> bool:
    """A stable ``percent``% holdout of users for this campaign."""
    return percent > 0 and _unit(campaign_id, "control", user_key) * 100 < percent


def assign_variant(campaign_id: int, user_key: str, variants: Sequence[tuple[str, float]]) -> str:
    """Pick a variant by weight, stably per (campaign, user). ``variants`` are (name, weight > 0)."""
    total = sum(weight for _, weight in variants)
    point = _unit(campaign_id, "variant", user_key) * total
    for name, weight in variants:
        if point < weight:
            return name
        point -= weight
    return variants[-1][0]


# Channel → the MSG-* profile flag that opts the profile out when false, and the DND flag that does when true.
_OPT_OUT_FLAGS: Mapping[str, tuple[str, str | None]] = {
    "email": ("msg-email", "msg-dndemail"),
    "sms": ("msg-sms", "msg-dndphone"),
    "push": ("msg-push", None),
    "whatsapp": ("msg-whatsapp", "msg-dndwhatsapp"),
}


def profile_opted_out(profile: Mapping[str, Any], channel: str) -> bool:
    """True when the profile's ``MSG-<channel>`` is false or its DND flag true (keys matched case-insensitively)."""
    flags = _OPT_OUT_FLAGS.get(channel)
    if flags is None:
        return False
    lowered = {key.lower(): value for key, value in profile.items() if key.lower().startswith("msg-")}
    subscribe, dnd = flags
    if _falsy(lowered.get(subscribe)):
        return True
    return dnd is not None and _truthy(lowered.get(dnd))


def _falsy(value: Any) -> bool:
    return value is False or (isinstance(value, str) and value.lower() in ("false", "0", "n", "no"))


def _truthy(value: Any) -> bool:
    return value is True or (isinstance(value, str) and value.lower() in ("true", "1", "y", "yes"))


@dataclass(frozen=True, slots=True)
class QuietHours:
    """A daily window ``start``-``end`` (``HH:MM``, may wrap midnight) in the user's zone, default ``zone``.
    Messages that fall inside wait until it ends, or with ``drop`` are suppressed."""

    start_minute: int
    end_minute: int
    zone: str = "UTC"
    drop: bool = False

    @classmethod
    def parse(cls, spec: Mapping[str, Any]) -> QuietHours:
        """From ``{"start": "22:00", "end": "08:00", "timezone": "Europe/Berlin", "drop": false}`` (``timezone``
        and ``drop`` optional); ValueError naming the fault."""
        zone = str(spec.get("timezone", "UTC"))
        try:
            ZoneInfo(zone)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"quiet_hours.timezone: unknown time zone {zone!r}") from exc
        start, end = _minute(spec.get("start"), "start"), _minute(spec.get("end"), "end")
        return cls(start, end, zone, bool(spec.get("drop", False)))

    def to_json(self) -> dict[str, Any]:
        """The spec :meth:`parse` reads."""
        return {
            "start": f"{self.start_minute // 60:02d}:{self.start_minute % 60:02d}",
            "end": f"{self.end_minute // 60:02d}:{self.end_minute % 60:02d}",
            "timezone": self.zone,
            "drop": self.drop,
        }

    def resume_at(self, now_s: float, user_zone: str | None) -> float | None:
        """When the window ends if ``now_s`` falls inside it (epoch seconds), else None."""
        zone = _zone(user_zone) or ZoneInfo(self.zone)
        local = datetime.fromtimestamp(now_s, zone)
        minute = local.hour * 60 + local.minute
        start, end = self.start_minute, self.end_minute
        inside = start <= minute < end if start < end else (minute >= start or minute < end)
        if not inside or start == end:
            return None
        end_today = local.replace(hour=end // 60, minute=end % 60, second=0, microsecond=0)
        if end_today <= local:
            end_today += timedelta(days=1)
        # Re-resolve in the zone so a DST change inside the window lands on the wall-clock end.
        resumed = datetime(
            end_today.year, end_today.month, end_today.day, end_today.hour, end_today.minute, tzinfo=zone
        )
        return resumed.timestamp()


def _minute(value: Any, name: str) -> int:
    try:
        hours, minutes = str(value).split(":")
        minute = int(hours) * 60 + int(minutes)
    except (ValueError, AttributeError) as exc:
        raise ValueError(f"quiet_hours.{name} must be HH:MM, got {value!r}") from exc
    if not 0 <= minute < 24 * 60:
        raise ValueError(f"quiet_hours.{name} must be HH:MM, got {value!r}")
    return minute


def _zone(name: str | None) -> ZoneInfo | None:
    if not name:
        return None
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return None


class TokenBucket:
    """At most ``rate`` acquisitions per second on average, bursts up to ``rate`` (one second's worth)."""

    def __init__(
        self,
        rate: float,
        *,
        monotonic: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.rate = rate
        self._monotonic = monotonic
        self._sleep = sleep
        self._tokens = rate
        self._updated = monotonic()
        self._lock = asyncio.Lock()

    async def acquire(self) -> None:
        async with self._lock:
            while True:
                now = self._monotonic()
                self._tokens = min(self.rate, self._tokens + (now - self._updated) * self.rate)
                self._updated = now
                if self._tokens >= 1:
                    self._tokens -= 1
                    return
                await self._sleep((1 - self._tokens) / self.rate)
