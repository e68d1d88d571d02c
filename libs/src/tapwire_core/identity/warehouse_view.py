"""Reading the graph's projection (``user_aliases``) back from the warehouse, for read paths that start from
one user key. The latest version of each alias decides, as the table's ReplacingMergeTree keeps on merge;
``argMax`` gets the same answer before parts are merged."""

from __future__ import annotations

from tapwire_core.warehouse import Warehouse


async def canonical_user_key(warehouse: Warehouse, *, account_id: str, user_key: str) -> str:
    """The key ``user_key``'s events count under: its canonical key while it is an active alias, else itself."""
    rows = await warehouse.query(
        "SELECT argMax(canonical_key, version) AS canonical, argMax(active, version) AS live "
        "FROM user_aliases WHERE account_id = {account:String} AND alias_key = {key:String}",
        {"account": account_id, "key": user_key},
    )
    if rows and rows[0]["live"] == 1 and rows[0]["canonical"]:
        return str(rows[0]["canonical"])
    return user_key


async def merged_user_keys(warehouse: Warehouse, *, account_id: str, canonical_key: str) -> list[str]:
    """``canonical_key`` and every key currently merged into it, canonical first."""
    rows = await warehouse.query(
        "SELECT alias_key FROM ("
        "SELECT alias_key, argMax(canonical_key, version) AS canonical, argMax(active, version) AS live "
        "FROM user_aliases WHERE account_id = {account:String} AND alias_key IN ("
        "SELECT alias_key FROM user_aliases WHERE account_id = {account:String} AND canonical_key = {key:String}"
        ") GROUP BY alias_key) WHERE live = 1 AND canonical = {key:String} ORDER BY alias_key",
        {"account": account_id, "key": canonical_key},
    )
    return [canonical_key, *(str(r["alias_key"]) for r in rows if r["alias_key"] != canonical_key)]
