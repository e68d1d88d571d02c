"""Entries of the suppression list (``privacy_suppressions``) and of the marketing objection list.

An erased subject's identifiers go on the suppression list as salted hashes (a whole erased account as ``*``)
before any store is erased, so records still on the bus or arriving later are dropped by the gateway and the
loader (``tapwire_core.control.privacy.suppression`` reads the list) instead of bringing the data back. An
objection to marketing goes on the objection list the messaging service checks before every marketing send.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence

from sqlalchemy import insert, select, update

from tapwire_core.control.marketing_objections import record_objection
from tapwire_core.control.privacy.models import SuppressionRow
from tapwire_core.control.privacy.subject_keys import (
    IDENTIFIER_SALT,
    TENANT_WIDE,
    deployment_secret,
    key_hash,
)
from tapwire_privacy.repository.transactions import Transactions


class SuppressionEntries:
    def __init__(self, transactions: Transactions) -> None:
        self._tx = transactions

    async def add(self, *, account_id: str, request_id: str, keys: Iterable[str] | None, days: int) -> int:
        """List ``keys`` (or, with None, the whole account) as suppressed; returns how many were new."""
        added = await self.add_many([(account_id, request_id, keys)], days=days)
        return added[request_id]

    async def add_many(
        self, entries: Sequence[tuple[str, str, Iterable[str] | None]], *, days: int
    ) -> dict[str, int]:
        """Suppress each (account, request id, keys-or-None-for-the-account) in one transaction; per request,
        how many list entries were new. Existing entries get the later expiry."""
        now = self._tx.clock()
        expires = now + dt.timedelta(days=days)
        added: dict[str, int] = {}
        async with self._tx.begin() as session:
            salt = await deployment_secret(session, IDENTIFIER_SALT)
            wanted: dict[str, dict[str, str]] = {}  # account -> hash -> first request naming it
            per_request: dict[str, tuple[str, set[str]]] = {}
            for account_id, request_id, keys in entries:
                own = {TENANT_WIDE} if keys is None else {key_hash(salt, account_id, key) for key in keys}
                per_request[request_id] = (account_id, own)
                for hashed in own:
                    wanted.setdefault(account_id, {}).setdefault(hashed, request_id)
            for account_id, owners in wanted.items():
                existing = set(
                    await session.scalars(
                        select(SuppressionRow.key_hash).where(
                            SuppressionRow.account_id == account_id, SuppressionRow.key_hash.in_(list(owners))
                        )
                    )
                )
                if existing:
                    await session.execute(
                        update(SuppressionRow)
                        .where(SuppressionRow.account_id == account_id, SuppressionRow.key_hash.in_(existing))
                        .values(expires_at=expires)
                    )
                fresh = [
                    {
                        "account_id": account_id,
                        "key_hash": hashed,
                        "request_id": request_id,
                        "created_at": now,
                        "expires_at": expires,
                    }
                    for hashed, request_id in owners.items()
                    if hashed not in existing
                ]
                if fresh:
                    await session.execute(insert(SuppressionRow), fresh)
                for request_id, (account, own) in per_request.items():
                    if account == account_id:
                        added[request_id] = sum(
                            1 for h in own if h not in existing and owners[h] == request_id
                        )
        return added


class ObjectionEntries:
    def __init__(self, transactions: Transactions) -> None:
        self._tx = transactions

    async def add(self, *, account_id: str, request_id: str, keys: Iterable[str]) -> int:
        """List ``keys`` as objecting to marketing; returns how many were new."""
        async with self._tx.begin() as session:
            return await record_objection(
                session, account_id=account_id, keys=keys, request_id=request_id, at=self._tx.clock()
            )
