"""Finding one profile: identity/email/objectId → user key → the canonical key it counts as."""

from __future__ import annotations

from typing import Any, Literal

from tapwire_core.identity.warehouse_view import canonical_user_key
from tapwire_core.warehouse import Warehouse
from tapwire_query.profile_batch import profile_records

Selector = Literal["identity", "email", "objectId"]

# Selector → column; identifiers come only from this table, values are always bound.
_SELECTOR_COLUMNS: dict[Selector, str] = {"identity": "identity", "email": "email", "objectId": "object_id"}


async def find_user_key(
    warehouse: Warehouse, *, account_id: str, selector: Selector, value: str
) -> str | None:
    column = _SELECTOR_COLUMNS[selector]
    # FINAL: anyLast() is only "the latest non-null" once parts are merged; unmerged parts come in any order.
    # Only keys that ever had the value can have it as their latest, so FINAL merges just those (found by the
    # primary key) instead of every profile of the account.
    rows = await warehouse.query(
        f"SELECT user_key FROM profiles FINAL WHERE account_id = {{account:String}} AND user_key IN ("
        f"SELECT user_key FROM profiles WHERE account_id = {{account:String}} AND {column} = {{value:String}}) "
        f"GROUP BY user_key HAVING anyLast({column}) = {{value:String}} "
        f"ORDER BY max(last_seen) DESC LIMIT 1",
        {"account": account_id, "value": value},
    )
    return str(rows[0]["user_key"]) if rows else None


async def profile_record(warehouse: Warehouse, *, account_id: str, user_key: str) -> dict[str, Any] | None:
    """The record of the person ``user_key`` counts as (a merged-away key answers with the person it now
    belongs to), or None when unknown."""
    canonical = await canonical_user_key(warehouse, account_id=account_id, user_key=user_key)
    return (await profile_records(warehouse, account_id=account_id, canonical=[canonical])).get(canonical)
