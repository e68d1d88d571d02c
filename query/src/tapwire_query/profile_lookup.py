"""Finding one profile: identity/email/objectId → user key → the canonical key it counts as."""

from __future__ import annotations

from typing import Literal

from tapwire_core.warehouse import Warehouse, schema

Selector = Literal["identity", "email", "objectId"]

# Selector → column; identifiers come only from this table, values are always bound.
_SELECTOR_COLUMNS: dict[Selector, str] = {"identity": "identity", "email": "email", "objectId": "object_id"}


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


async def canonical_key(warehouse: Warehouse, *, account_id: str, user_key: str) -> str:
    """The key ``user_key`` counts as after identity merges (itself when it was never merged away)."""
    rows = await warehouse.query(
        "SELECT argMax(canonical_key, version) AS canonical_key, argMax(active, version) AS active "
        f"FROM {schema.USER_ALIASES} WHERE account_id = {{account:String}} AND alias_key = {{key:String}}",
        {"account": account_id, "key": user_key},
    )
    if rows and int(rows[0]["active"]) == 1 and rows[0]["canonical_key"]:
        return str(rows[0]["canonical_key"])
    return user_key
