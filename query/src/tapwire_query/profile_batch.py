"""Profile records for a page of canonical users, in a fixed number of queries whatever the page size.

A canonical user's record merges every user key that counts as it (identity merges): identifiers from the
canonical key first, properties latest-set-wins across keys with operators folded on, event summaries
summed.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import orjson

from tapwire_core.profile_values import ProfileOp, fold
from tapwire_core.warehouse import Warehouse
from tapwire_query.cql.identity import active_aliases
from tapwire_query.cql.sql import Compiled

_ID_FIELDS = (("identity", "identity"), ("object_id", "objectId"), ("email", "email"), ("phone", "phone"))


async def member_keys(warehouse: Warehouse, *, account_id: str, canonical: Sequence[str]) -> dict[str, str]:
    """Every user key (canonical ones and their active aliases) -> the canonical key it counts as."""
    if not canonical:
        return {}
    rows = await warehouse.query(
        f"SELECT alias_key, canonical_key FROM ({active_aliases('{account:String}')}) "
        "WHERE canonical_key IN {keys:Array(String)}",
        {"account": account_id, "keys": list(canonical)},
    )
    members = {key: key for key in canonical}
    members.update({str(row["alias_key"]): str(row["canonical_key"]) for row in rows})
    return members


async def profile_records(
    warehouse: Warehouse,
    *,
    account_id: str,
    canonical: Sequence[str],
    profile: bool = True,
    events: bool = True,
) -> dict[str, dict[str, Any]]:
    """Canonical key -> CleverTap profile record (``identity``, ``objectId``, ``email``, ``phone``,
    ``first_seen``, ``last_seen``, and ``profileData`` / ``events`` when asked). Unknown keys are left out."""
    members = await member_keys(warehouse, account_id=account_id, canonical=canonical)
    if not members:
        return {}
    params = {"account": account_id, "keys": list(members)}
    # Independent reads, asked at once: a ClickHouse server answers them side by side.
    heads, data, summary = await asyncio.gather(
        warehouse.query(
            "SELECT user_key, anyLast(identity) AS identity, anyLast(object_id) AS object_id, "
            "anyLast(email) AS email, anyLast(phone) AS phone, toUnixTimestamp(min(first_seen)) AS first_seen, "
            "toUnixTimestamp(max(last_seen)) AS last_seen FROM profiles FINAL "
            "WHERE account_id = {account:String} AND user_key IN {keys:Array(String)} GROUP BY user_key",
            params,
        ),
        _profile_data(warehouse, params, members) if profile else _nothing(),
        _event_summary(warehouse, params, members) if events else _nothing(),
    )
    records: dict[str, dict[str, Any]] = {}
    # The canonical key's own identifiers win; aliases fill what it lacks.
    for row in sorted(heads, key=lambda r: members[r["user_key"]] != r["user_key"]):
        key = members[str(row["user_key"])]
        record = records.setdefault(key, {})
        for column, name in _ID_FIELDS:
            if row[column] is not None and name not in record:
                record[name] = row[column]
        record["first_seen"] = min(record.get("first_seen", row["first_seen"]), int(row["first_seen"]))
        record["last_seen"] = max(record.get("last_seen", row["last_seen"]), int(row["last_seen"]))
    if profile:
        for key, record in records.items():
            record["profileData"] = data.get(key, {})
    if events:
        for key, record in records.items():
            record["events"] = summary.get(key, {})
    return records


async def _nothing() -> dict[str, Any]:
    return {}


async def _profile_data(
    warehouse: Warehouse, params: dict[str, Any], members: dict[str, str]
) -> dict[str, dict[str, Any]]:
    sets, ops = await asyncio.gather(
        warehouse.query(
            "SELECT user_key, key, argMax(value, ts) AS value, max(toUnixTimestamp64Milli(ts)) AS ts_ms, "
            "argMax(deleted, ts) AS deleted FROM profile_props "
            "WHERE account_id = {account:String} AND user_key IN {keys:Array(String)} GROUP BY user_key, key",
            params,
        ),
        warehouse.query(
            "SELECT user_key, key, op, operand, toUnixTimestamp64Milli(ts) AS ts_ms, event_id FROM profile_ops FINAL "
            "WHERE account_id = {account:String} AND user_key IN {keys:Array(String)} ORDER BY ts, event_id",
            params,
        ),
    )
    base: dict[tuple[str, str], tuple[Any, int]] = {}
    for row in sets:
        slot = (members[str(row["user_key"])], str(row["key"]))
        set_ms = int(row["ts_ms"])
        if slot not in base or base[slot][1] < set_ms:
            base[slot] = (None if row["deleted"] else orjson.loads(row["value"]), set_ms)
    pending: dict[tuple[str, str], list[ProfileOp]] = defaultdict(list)
    for row in ops:
        slot = (members[str(row["user_key"])], str(row["key"]))
        pending[slot].append(
            ProfileOp(row["op"], orjson.loads(row["operand"]), int(row["ts_ms"]), str(row["event_id"]))
        )
    data: dict[str, dict[str, Any]] = defaultdict(dict)
    for slot in sorted(base.keys() | pending.keys()):
        value, base_ms = base.get(slot, (None, None))
        folded = fold(value, base_ms, pending.get(slot, ()))
        if folded is not None:
            data[slot[0]][slot[1]] = folded
    return data


def event_summary_statement(*, account_id: str, user_keys: Sequence[str]) -> Compiled:
    """Per user key and event name: how many events, the first and the last. A filter on the user key alone,
    so the server reads the person-ordered projection of ``events`` (migration 7): a few granules per person."""
    return Compiled(
        "SELECT user_key, name, uniqExact(toDate(ts), event_id) AS count, toUnixTimestamp(min(ts)) AS first_seen, "
        "toUnixTimestamp(max(ts)) AS last_seen FROM events "
        "WHERE account_id = {account:String} AND user_key IN {keys:Array(String)} GROUP BY user_key, name",
        {"account": account_id, "keys": list(user_keys)},
    )


async def _event_summary(
    warehouse: Warehouse, params: dict[str, Any], members: dict[str, str]
) -> dict[str, dict[str, dict[str, int]]]:
    # A redelivered event is a second row with the same sorting key until a merge removes it. Within one
    # (user_key, name) group the rest of that key is (day, event_id), so counting those distinct pairs counts
    # what FINAL would keep, without FINAL's merge of every part over the ranges read (ten times the time on
    # a 1M-event account, where the user-key bloom filter does the finding).
    statement = event_summary_statement(account_id=params["account"], user_keys=params["keys"])
    rows = await warehouse.query(statement.sql, statement.params)
    summary: dict[str, dict[str, dict[str, int]]] = defaultdict(dict)
    for row in rows:
        per_name = summary[members[str(row["user_key"])]]
        name = str(row["name"])
        entry = per_name.get(name)
        if entry is None:
            per_name[name] = {
                "count": int(row["count"]),
                "first_seen": int(row["first_seen"]),
                "last_seen": int(row["last_seen"]),
            }
        else:
            entry["count"] += int(row["count"])
            entry["first_seen"] = min(entry["first_seen"], int(row["first_seen"]))
            entry["last_seen"] = max(entry["last_seen"], int(row["last_seen"]))
    return summary
