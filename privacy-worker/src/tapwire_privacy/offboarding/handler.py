"""Every control-database row of an account, as one store of an offboarding: read in batches, revoked, deleted.

The tables come from ``account_rows`` (derived from the schema); the store's handlers for end users' data
(outbox, consent, identity graph, ...) have already erased their tables by the time this one runs last, and this
one deletes what remains of the account in every table, children before parents, the ``accounts`` row last,
except what ``account_rows.KEPT`` keeps on purpose. One transaction per account.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncGenerator, Sequence
from typing import Any, Final

from sqlalchemy import String, cast, delete, literal, select, update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from tapwire_core.control.accounts.models import AccountRow, CredentialRow
from tapwire_core.control.console.models import ConsoleSessionRow
from tapwire_core.privacy.scope import Scope
from tapwire_privacy.offboarding.account_rows import KEPT, AccountTable, account_tables
from tapwire_privacy.stores.base import EXPORT_BATCH_ROWS, StoreHandler, Verification
from tapwire_privacy.stores.control_deletes import deletion_note, make_deletes_physical

CLIENT_INGESTION: Final = "client_ingestion"
_RETIRED: Final = "retired-"


def _json_ready(row: dict[str, Any]) -> dict[str, Any]:
    return {key: value.hex() if isinstance(value, bytes) else value for key, value in row.items()}


async def table_batches(
    engine: AsyncEngine, table: AccountTable, account_id: str, *, size: int = EXPORT_BATCH_ROWS
) -> AsyncGenerator[list[dict[str, Any]], None]:
    """The account's rows of ``table`` (secrets' hashes left out), ``size`` at a time, fetched as consumed."""
    async with engine.connect() as connection:
        result = await connection.stream(table.rows(account_id).execution_options(yield_per=size))
        async for batch in result.mappings().partitions(size):
            yield [_json_ready(dict(row)) for row in batch]


async def revoke_access(engine: AsyncEngine, account_id: str, now: dt.datetime) -> dict[str, Any]:
    """Stop everything that lets data in or out under the account: every credential revoked (its lookup digest
    retired, so it can never match again), every console session ended, client-SDK ingestion switched off.
    Idempotent; returns what changed and the setting's value before."""
    async with AsyncSession(engine) as session, session.begin():
        credentials = await session.execute(
            update(CredentialRow)
            .where(CredentialRow.account_id == account_id, CredentialRow.revoked_at.is_(None))
            .values(revoked_at=now, lookup_digest=literal(_RETIRED) + cast(CredentialRow.id, String))
            .execution_options(synchronize_session=False)
        )
        sessions = await session.execute(
            delete(ConsoleSessionRow).where(ConsoleSessionRow.account_id == account_id)
        )
        account = await session.get(AccountRow, account_id)
        before = None
        if account is not None:
            before = account.settings.get(CLIENT_INGESTION)
            account.settings = {**account.settings, CLIENT_INGESTION: False}
    return {
        "credentials": int(credentials.rowcount),  # type: ignore[attr-defined]
        "console_sessions": int(sessions.rowcount),  # type: ignore[attr-defined]
        "client_ingestion_before": before,
        "account_found": account is not None,
    }


class AccountRowsHandler(StoreHandler):
    """The offboarding's last store: what remains of the account in every control table."""

    name = "control.account"

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def export(self, scope: Scope) -> AsyncGenerator[list[dict[str, Any]], None]:
        for table in account_tables():
            async for batch in table_batches(self._engine, table, scope.account_id):
                yield [{"table": table.name, **row} for row in batch]

    async def _counts(self, scope: Scope) -> dict[str, int]:
        async with AsyncSession(self._engine) as session:
            return {
                table.name: int(await session.scalar(table.count(scope.account_id, scope.request_id)) or 0)
                for table in account_tables()
            }

    async def count(self, scopes: Sequence[Scope]) -> dict[str, int]:
        return {scope.request_id: sum((await self._counts(scope)).values()) for scope in scopes}

    async def erase(self, scopes: Sequence[Scope]) -> None:
        for scope in scopes:
            async with AsyncSession(self._engine) as session, session.begin():
                for table in reversed(account_tables()):
                    await session.execute(
                        table.delete(scope.account_id, scope.request_id).execution_options(
                            synchronize_session=False
                        )
                    )

    async def settle(self) -> None:
        await make_deletes_physical(self._engine, [table.name for table in account_tables()])

    async def verify(self, scopes: Sequence[Scope]) -> dict[str, Verification]:
        found = {}
        for scope in scopes:
            counts = await self._counts(scope)
            left = {name: n for name, n in counts.items() if n}
            found[scope.request_id] = Verification(
                residue=sum(left.values()),
                pending=False,
                checked=(
                    f"no row of the account in any of the {len(counts)} control tables holding account rows"
                    f"{'' if not left else f' (left: {left})'}, except what is kept on purpose: "
                    + "; ".join(f"{name}: {reason}" for name, (_, reason) in KEPT.items())
                    + f". {deletion_note(self._engine)}"
                ),
            )
        return found


async def account_exists(engine: AsyncEngine, account_id: str) -> bool:
    async with AsyncSession(engine) as session:
        return await session.scalar(select(AccountRow.id).where(AccountRow.id == account_id)) is not None
