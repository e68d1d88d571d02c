"""Campaign figures from the outbox and interactions, and goal conversions from the warehouse."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from tapwire_core.warehouse import Warehouse
from tapwire_messaging.campaign_rules import ConversionGoal
from tapwire_messaging.campaign_store import Campaign
from tapwire_messaging.interactions import Interactions
from tapwire_messaging.outbox import Outbox

_FAILED = ("failed", "rejected", "unregistered")
_CHUNK = 5000


def ymd(ms: int | None) -> int | None:
    return None if ms is None else int(datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y%m%d"))


def figures(statuses: Mapping[str, int], interactions: Mapping[str, int]) -> dict[str, int]:
    return {
        "sent": statuses.get("sent", 0),
        "failed": sum(statuses.get(s, 0) for s in _FAILED),
        "suppressed": statuses.get("suppressed", 0),
        "capped": statuses.get("capped", 0),
        "control": statuses.get("control", 0),
        "expired": statuses.get("expired", 0),
        "stopped": statuses.get("stopped", 0),
        "no_address": statuses.get("no_address", 0),
        "pending": statuses.get("pending", 0) + statuses.get("sending", 0),
        "viewed": interactions.get("viewed", 0),
        "clicked": interactions.get("clicked", 0),
        "unsubscribed": interactions.get("unsubscribed", 0),
    }


def _sum(groups: Mapping[str, Mapping[str, int]]) -> dict[str, int]:
    total: dict[str, int] = {}
    for counts in groups.values():
        for key, value in counts.items():
            total[key] = total.get(key, 0) + value
    return total


async def summaries(
    campaigns: Sequence[Campaign], *, outbox: Outbox, interactions: Interactions
) -> list[dict[str, Any]]:
    """Each campaign's figures, all variants together."""
    ids = [c.id for c in campaigns]
    statuses = await outbox.status_counts(ids)
    interacted = await interactions.counts(ids)
    return [
        {
            "id": c.id,
            "name": c.name,
            "channel": c.channel,
            "kind": c.kind,
            "status": c.status,
            "scheduled_on": ymd(c.scheduled_ms),
            "audience": c.audience_size,
            **figures(_sum(statuses.get(c.id, {})), _sum(interacted.get(c.id, {}))),
        }
        for c in campaigns
    ]


async def per_variant(
    campaign: Campaign, *, outbox: Outbox, interactions: Interactions, warehouse: Warehouse | None
) -> dict[str, Any]:
    """Figures per variant and for the control group, with conversions to the goal event when one is set."""
    statuses = (await outbox.status_counts([campaign.id])).get(campaign.id, {})
    interacted = (await interactions.counts([campaign.id])).get(campaign.id, {})
    variants: dict[str, Any] = {
        name: figures(counts, interacted.get(name, {})) for name, counts in sorted(statuses.items())
    }
    goal = campaign.rules.conversion_goal
    report: dict[str, Any] = {"variants": variants}
    if goal is not None and warehouse is not None:
        report["conversion_goal"] = goal.to_json()
        report["conversions"] = await _conversions(outbox, warehouse, campaign, goal)
    return report


async def _conversions(
    outbox: Outbox, warehouse: Warehouse, campaign: Campaign, goal: ConversionGoal
) -> dict[str, Any]:
    """Users who did the goal event within the window after their message (control: after campaign start)."""
    window_ms = int(goal.window_s * 1000)
    start = campaign.started_ms or campaign.scheduled_ms
    groups: dict[str, list[tuple[str, int]]] = {}
    for user, variant, sent_ms in await outbox.recipients(campaign.id, ["sent"]):
        groups.setdefault(variant, []).append((user, sent_ms or start))
    for user, _variant, _ in await outbox.recipients(campaign.id, ["control"]):
        groups.setdefault("control", []).append((user, start))
    result: dict[str, Any] = {}
    for group, members in sorted(groups.items()):
        converted = 0
        for offset in range(0, len(members), _CHUNK):
            chunk = dict(members[offset : offset + _CHUNK])
            rows = await warehouse.query(
                "SELECT user_key, groupArray(toUnixTimestamp64Milli(ts)) AS times FROM events "
                "WHERE account_id = {account:String} AND name = {name:String} "
                "AND user_key IN {keys:Array(String)} GROUP BY user_key",
                {"account": campaign.account_id, "name": goal.event, "keys": list(chunk)},
            )
            for row in rows:
                since = chunk[row["user_key"]]
                if any(since <= int(t) <= since + window_ms for t in row["times"]):
                    converted += 1
        result[group] = {
            "users": len(members),
            "converted": converted,
            "rate": round(converted / len(members), 4) if members else 0.0,
        }
    return result
