"""Reading one profile back: identity/email/objectId → profile record in CleverTap's shape."""

from __future__ import annotations

from typing import Any, Literal

import orjson

from tapwire_core.identity.warehouse_view import canonical_user_key, merged_user_keys
from tapwire_core.profile_values import ProfileOp, fold
from tapwire_core.warehouse import Warehouse

Selector = Literal["identity", "email", "objectId"]

# Selector → column; identifiers come only from this table, values are always bound.
_SELECTOR_COLUMNS: dict[Selector, str] = {"identity": "identity", "email": "email", "objectId": "object_id"}

_PREFER_CANONICAL = ", ".join(
    f"coalesce(anyLastIf({column}, user_key = {{canonical:String}}), anyLast({column})) AS {column}"
    for column in ("identity", "object_id", "email", "phone")
)


async def find_user_key(
    warehouse: Warehouse, *, account_id: str, selector: Selector, value: str
) -> str | None:
    column = _SELECTOR_COLUMNS[selector]
    # FINAL: anyLast() is only "the latest non-null" once parts are merged; unmerged parts come in any order.
    rows = await warehouse.query(
        f"SELECT user_key FROM profiles FINAL WHERE account_id = {{account:String}} "
        f"GROUP BY user_key HAVING anyLast({column}) = {{value:String}} "
        f"ORDER BY max(last_seen) DESC LIMIT 1",
        {"account": account_id, "value": value},
    )
    return str(rows[0]["user_key"]) if rows else None


async def profile_record(warehouse: Warehouse, *, account_id: str, user_key: str) -> dict[str, Any] | None:
    """The profile with its custom properties and a per-event summary, or None when unknown.

    Keys merged into ``user_key`` by the identity graph (``user_aliases``) count as this profile: an anonymous
    visitor's events from before the identify call show up under the identified user.
    """
    canonical = await canonical_user_key(warehouse, account_id=account_id, user_key=user_key)
    users = await merged_user_keys(warehouse, account_id=account_id, canonical_key=canonical)
    params: dict[str, Any] = {"account": account_id, "users": users}
    heads = await warehouse.query(
        # The canonical key's own identifiers first; a merged key's only where the canonical one has none.
        f"SELECT {_PREFER_CANONICAL}, toUnixTimestamp(min(first_seen)) AS first_seen, "
        "toUnixTimestamp(max(last_seen)) AS last_seen "
        "FROM profiles FINAL WHERE account_id = {account:String} AND user_key IN {users:Array(String)}",
        params | {"canonical": canonical},
    )
    if not heads or heads[0]["first_seen"] in (None, 0):
        return None
    head = heads[0]
    profile_data = await _profile_data(warehouse, params)
    events = await warehouse.query(
        "SELECT name, count() AS count, toUnixTimestamp(min(ts)) AS first_seen, "
        "toUnixTimestamp(max(ts)) AS last_seen FROM events FINAL "
        "WHERE account_id = {account:String} AND user_key IN {users:Array(String)} GROUP BY name ORDER BY name",
        params,
    )
    record: dict[str, Any] = {
        "identity": head["identity"],
        "objectId": head["object_id"],
        "email": head["email"],
        "phone": head["phone"],
        "first_seen": int(head["first_seen"]),
        "last_seen": int(head["last_seen"]),
        "profileData": profile_data,
        "events": {
            row["name"]: {
                "count": int(row["count"]),
                "first_seen": int(row["first_seen"]),
                "last_seen": int(row["last_seen"]),
            }
            for row in events
        },
    }
    return {key: value for key, value in record.items() if value is not None}


async def _profile_data(warehouse: Warehouse, params: dict[str, Any]) -> dict[str, Any]:
    """Latest set per property (across the merged keys) with later operators folded on; deleted properties
    are left out."""
    sets = await warehouse.query(
        "SELECT key, value, toUnixTimestamp64Milli(ts) AS ts_ms, deleted FROM profile_props FINAL "
        "WHERE account_id = {account:String} AND user_key IN {users:Array(String)} ORDER BY ts",
        params,
    )
    ops = await warehouse.query(
        "SELECT key, op, operand, toUnixTimestamp64Milli(ts) AS ts_ms, event_id FROM profile_ops FINAL "
        "WHERE account_id = {account:String} AND user_key IN {users:Array(String)} ORDER BY key, ts, event_id",
        params,
    )
    base: dict[str, tuple[Any, int | None]] = {
        row["key"]: (None if row["deleted"] else orjson.loads(row["value"]), int(row["ts_ms"]))
        for row in sets
    }
    pending: dict[str, list[ProfileOp]] = {}
    for row in ops:
        pending.setdefault(row["key"], []).append(
            ProfileOp(row["op"], orjson.loads(row["operand"]), int(row["ts_ms"]), row["event_id"])
        )
    data: dict[str, Any] = {}
    for key in sorted(base.keys() | pending.keys()):
        value, ts_ms = base.get(key, (None, None))
        folded = fold(value, ts_ms, pending.get(key, ()))
        if folded is not None:
            data[key] = folded
    return data
