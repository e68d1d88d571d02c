"""Closure sources over the warehouse: which identifiers its rows tie together.

- identifier columns of ``events`` and ``profiles``: a row carrying one of the keys contributes every identifier
  it carries (its user key, identity, objectId, email, phone, anonymous id), across every version of the row
  (no ``FINAL``: an email a profile used to have still links);
- ``profile_props`` values of the ``Email``, ``Phone`` and ``Identity`` properties, both ways (the property
  names the user key; the user key's property names the identifier);
- ``user_aliases`` rows that are active in their latest version: the alias and the key that absorbed it.
"""

from __future__ import annotations

from typing import Any, Final

import orjson

from tapwire_core.warehouse import Warehouse, schema
from tapwire_privacy.stores.warehouse import WAREHOUSE_SPECS

_PROPERTY_PREFIXES: Final = {"Email": "e", "Phone": "p", "Identity": "i"}


class IdentifierColumnLinks:
    """Links through the identifier columns of one table (``events`` or ``profiles``)."""

    def __init__(self, warehouse: Warehouse, table: str) -> None:
        self.name = f"warehouse.{table}"
        self._warehouse = warehouse
        self._spec = WAREHOUSE_SPECS[table]

    async def groups(self, account_id: str, keys: frozenset[str]) -> list[frozenset[str]]:
        parts = []
        params: dict[str, Any] = {"account": account_id}
        for index, column in enumerate(self._spec.key_columns):
            values = column.values(keys)
            if values:
                params[f"k{index}"] = values
                parts.append(f"{column.column} IN {{k{index}:Array(String)}}")
        if not parts:
            return []
        columns = ", ".join(c.column for c in self._spec.key_columns)
        rows = await self._warehouse.query(
            f"SELECT DISTINCT {columns} FROM {self._spec.table} "
            f"WHERE account_id = {{account:String}} AND ({' OR '.join(parts)})",
            params,
        )
        return [
            frozenset(k for c in self._spec.key_columns if (k := c.key_of(row[c.column])) is not None)
            for row in rows
        ]


class ProfilePropertyLinks:
    """Links through identifier-valued profile properties (``Email``, ``Phone``, ``Identity``)."""

    name = "warehouse.profile_props"

    def __init__(self, warehouse: Warehouse) -> None:
        self._warehouse = warehouse

    async def groups(self, account_id: str, keys: frozenset[str]) -> list[frozenset[str]]:
        encoded = [
            orjson.dumps(key[2:]).decode()
            for key in keys
            if any(key.startswith(prefix + ":") for prefix in _PROPERTY_PREFIXES.values())
        ]
        rows = await self._warehouse.query(
            f"SELECT user_key, key, value FROM {schema.PROFILE_PROPS} "
            "WHERE account_id = {account:String} AND key IN {names:Array(String)} "
            "AND (value IN {values:Array(String)} OR user_key IN {keys:Array(String)})",
            {
                "account": account_id,
                "names": sorted(_PROPERTY_PREFIXES),
                "values": sorted(encoded),
                "keys": sorted(keys),
            },
        )
        found: list[frozenset[str]] = []
        for row in rows:
            try:
                value = orjson.loads(row["value"])
            except orjson.JSONDecodeError:
                continue
            if isinstance(value, str | int) and str(value):
                found.append(frozenset({row["user_key"], f"{_PROPERTY_PREFIXES[row['key']]}:{value}"}))
        return found


class AliasLinks:
    """Links through the identity graph's projection (active alias -> canonical key rows)."""

    name = "warehouse.user_aliases"

    def __init__(self, warehouse: Warehouse) -> None:
        self._warehouse = warehouse

    async def groups(self, account_id: str, keys: frozenset[str]) -> list[frozenset[str]]:
        rows = await self._warehouse.query(
            f"SELECT alias_key, canonical_key FROM {schema.USER_ALIASES} FINAL "
            "WHERE account_id = {account:String} AND active = 1 "
            "AND (alias_key IN {keys:Array(String)} OR canonical_key IN {keys:Array(String)})",
            {"account": account_id, "keys": sorted(keys)},
        )
        return [frozenset({row["alias_key"], row["canonical_key"]}) for row in rows]
