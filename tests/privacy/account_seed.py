"""One row in every control table that holds an account's rows, for each account, made from the schema itself.

A table added later is seeded (and so scanned by the offboarding tests) without anyone touching this file: values
come from each column's type, a column under an ``IN (...)`` check takes the first value allowed, a foreign key
takes the parent row seeded for the same account. Every string names its account (``ACC-1:...``), so the archive
and the stores can be searched for it.
"""

from __future__ import annotations

import datetime as dt
import itertools
import re
from typing import Any

from sqlalchemy import JSON, BigInteger, Boolean, CheckConstraint, Column, DateTime, Integer, Table, insert
from sqlalchemy.ext.asyncio import AsyncEngine

from tapwire_privacy.offboarding.account_rows import account_tables

_ids = itertools.count(900_000)
_IN = re.compile(r"^\s*(\w+)\s+IN\s*\(\s*'([^']*)'")
AT = dt.datetime(2030, 1, 5, 12, 0, tzinfo=dt.UTC)
"""Every seeded time: after the tests' clock, so no retention purge or expiry takes a seeded row away."""


def _allowed(table: Table) -> dict[str, str]:
    first: dict[str, str] = {}
    for constraint in table.constraints:
        if isinstance(constraint, CheckConstraint):
            found = _IN.match(str(constraint.sqltext))
            if found:
                first[found.group(1)] = found.group(2)
    return first


def _value(column: Column[Any], account_id: str, table: str, allowed: dict[str, str]) -> Any:
    kind = column.type
    if column.name in allowed:
        return allowed[column.name]
    if isinstance(kind, Boolean):
        return False
    if isinstance(kind, Integer | BigInteger):
        return next(_ids)
    if isinstance(kind, DateTime):
        return AT
    if isinstance(kind, JSON):
        return {"seeded": f"{account_id}:{table}:{column.name}"}
    text = f"{account_id}:{table}:{column.name}:{next(_ids)}"
    length = getattr(kind, "length", None)
    return text[:length] if length else text


async def seed_every_table(engine: AsyncEngine, account_id: str) -> dict[str, list[dict[str, Any]]]:
    """Insert one row per account table for ``account_id`` (the ``accounts`` row must exist); returns them."""
    seeded: dict[str, list[dict[str, Any]]] = {}
    async with engine.begin() as connection:
        for entry in account_tables():
            table = entry.table
            if table.name == "accounts":
                continue
            allowed = _allowed(table)
            row: dict[str, Any] = {}
            for column in table.columns:
                if column.name == "account_id":
                    row[column.name] = account_id
                    continue
                fk = next(iter(column.foreign_keys), None)
                if fk is not None:
                    parent = fk.column.table.name
                    row[column.name] = (
                        account_id if parent == "accounts" else seeded[parent][0][fk.column.name]
                    )
                    continue
                row[column.name] = _value(column, account_id, table.name, allowed)
            await connection.execute(insert(table).values(**row))
            seeded[table.name] = [row]
    return seeded
