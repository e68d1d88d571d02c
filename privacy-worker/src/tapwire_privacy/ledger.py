"""The erasure ledger: which subjects were erased, as salted hashes, kept where a restore cannot take it back.

Restoring a backup taken before an erasure brings the subject back. The ledger remembers every erased subject
key as the keyed hash the suppression list uses (``key_hash`` under the deployment's identifier salt, scoped to
the account; a whole erased account as ``*``), never the identifier, together with the request that erased it.
It is written twice, in the control database and in the warehouse, at the erasure's suppression step, so a
restore of either store leaves the other's copy: ``tapwire privacy reapply`` reads the union
(``tapwire_privacy.reapply``). Entries are kept for the deployment's lifetime: a restore may come from any
backup still kept, and an entry names no one.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncEngine

from tapwire_core.control.privacy.ledger_models import ErasureLedgerRow
from tapwire_core.warehouse import Warehouse, schema


@dataclass(frozen=True)
class LedgerEntry:
    """One erased subject key of an account, hashed (``*``: the whole account), and the request that erased it."""

    account_id: str
    key_hash: str
    request_id: str
    erased_at: dt.datetime


class ErasureLedger:
    """Both copies of the ledger: the control database's and the warehouse's."""

    def __init__(self, engine: AsyncEngine, warehouse: Warehouse) -> None:
        self._engine = engine
        self._warehouse = warehouse

    async def record(self, entries: Sequence[LedgerEntry]) -> None:
        """Add ``entries`` to both copies (an entry already there is kept as it is). Raises what either store
        raises; the erasure step then fails and is retried, so no erasure goes unrecorded."""
        if not entries:
            return
        rows = [
            {
                "account_id": e.account_id,
                "key_hash": e.key_hash,
                "request_id": e.request_id,
                "erased_at": e.erased_at,
            }
            for e in entries
        ]
        insert = pg_insert if self._engine.dialect.name == "postgresql" else sqlite_insert
        async with self._engine.begin() as connection:
            await connection.execute(insert(ErasureLedgerRow).values(rows).on_conflict_do_nothing())
        await self._warehouse.insert(
            schema.ERASURE_LEDGER,
            ["account_id", "key_hash", "request_id", "erased_at"],
            [(e.account_id, e.key_hash, e.request_id, e.erased_at) for e in entries],
        )

    async def entries(self) -> list[LedgerEntry]:
        """Every entry of either copy, once each (by account and key hash; the earliest erasure wins)."""
        found: dict[tuple[str, str], LedgerEntry] = {}
        columns = (
            ErasureLedgerRow.account_id,
            ErasureLedgerRow.key_hash,
            ErasureLedgerRow.request_id,
            ErasureLedgerRow.erased_at,
        )
        async with self._engine.connect() as connection:
            for account_id, hashed, request_id, erased_at in await connection.execute(select(*columns)):
                entry = LedgerEntry(account_id, hashed, request_id, _aware(erased_at))
                found[(entry.account_id, entry.key_hash)] = entry
        for row in await self._warehouse.query(
            f"SELECT account_id, key_hash, request_id, erased_at FROM {schema.ERASURE_LEDGER}"
        ):
            entry = LedgerEntry(
                row["account_id"], row["key_hash"], row["request_id"], _aware(row["erased_at"])
            )
            kept = found.get((entry.account_id, entry.key_hash))
            if kept is None or entry.erased_at < kept.erased_at:
                found[(entry.account_id, entry.key_hash)] = entry
        return sorted(found.values(), key=lambda e: (e.account_id, e.erased_at, e.key_hash))


def _aware(moment: dt.datetime) -> dt.datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=dt.UTC)
