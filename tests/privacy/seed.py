"""Writing test subjects into the warehouse through the loader's own row builder and writer."""

from __future__ import annotations

import itertools
from typing import Any

from tapwire_core.envelope import Envelope, Identities, decode_stored, encode
from tapwire_core.warehouse import Warehouse, schema
from tapwire_ingest.loader.rows import TableRows
from tapwire_ingest.loader.writer import write_rows

JAN_5_MS = 1_767_571_200_000
_ids = itertools.count()


def event(
    account: str,
    name: str = "Viewed",
    *,
    ts_ms: int = JAN_5_MS,
    props: dict[str, Any] | None = None,
    **ids: str,
) -> Envelope:
    return Envelope(
        account_id=account,
        event_id=f"ev-{next(_ids)}",
        kind="event",
        ids=Identities(**ids),
        client_ts=ts_ms,
        received_ts=ts_ms,
        source="clevertap",
        name=name,
        properties=props or {"page": "home"},
    )


def profile(account: str, data: dict[str, Any], *, ts_ms: int = JAN_5_MS, **ids: str) -> Envelope:
    return Envelope(
        account_id=account,
        event_id=f"pr-{next(_ids)}",
        kind="profile",
        ids=Identities(**ids),
        client_ts=ts_ms,
        received_ts=ts_ms,
        source="clevertap",
        properties=data,
    )


async def write(warehouse: Warehouse, envelopes: list[Envelope]) -> None:
    rows = TableRows()
    for envelope in envelopes:
        rows.add(decode_stored(encode(envelope)))
    await write_rows(warehouse, rows, token=f"seed-{next(_ids)}")


async def alias(
    warehouse: Warehouse,
    account: str,
    alias_key: str,
    canonical_key: str,
    *,
    active: int = 1,
    version: int = 1,
) -> None:
    await warehouse.insert(
        schema.USER_ALIASES,
        [name for name, _ in schema.USER_ALIAS_COLUMNS],
        [(account, alias_key, canonical_key, JAN_5_MS, version, active)],
    )


async def rows_naming(warehouse: Warehouse, account: str, needles: list[str]) -> dict[str, int]:
    """Per table, rows (without FINAL) of ``account`` whose any String column contains any of ``needles``."""
    found: dict[str, int] = {}
    for table, columns in (
        (schema.EVENTS, schema.EVENT_COLUMNS),
        (schema.PROFILES, schema.PROFILE_COLUMNS),
        (schema.PROFILE_PROPS, schema.PROFILE_PROP_COLUMNS),
        (schema.PROFILE_OPS, schema.PROFILE_OP_COLUMNS),
        (schema.USER_ALIASES, schema.USER_ALIAS_COLUMNS),
    ):
        text_columns = [name for name, kind in columns if "String" in kind]
        condition = " OR ".join(
            f"multiSearchAny(ifNull(toString({c}), ''), {{needles:Array(String)}})" for c in text_columns
        )
        rows = await warehouse.query(
            f"SELECT count() AS n FROM {table} WHERE account_id = {{account:String}} AND ({condition})",
            {"account": account, "needles": needles},
        )
        found[table] = int(rows[0]["n"])
    return found
