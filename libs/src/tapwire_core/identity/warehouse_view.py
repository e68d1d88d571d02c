"""Reading the graph's projection (``user_aliases``) back from the warehouse, for read paths that start from
one user key (the query service resolves whole pages of keys itself). The latest version of each alias decides, as the table's ReplacingMergeTree keeps on merge;
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
