"""Privacy handlers for control-plane tables that hold (hashed) end-user identifiers.

Both tables here keep only salted hashes of subject keys and are *retained* through an erasure on purpose: an
objection to marketing and a suppression must keep working after the subject's data is gone, or the next
import would bring the person back into campaigns or the warehouse. They are exported (so the subject sees
they are listed) and reported by ``verify`` with the reason they stay.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from tapwire_core.control.marketing_objections.models import MarketingObjectionRow
from tapwire_core.control.privacy.models import SuppressionRow
from tapwire_core.control.privacy.subject_keys import IDENTIFIER_SALT, deployment_secret, key_hash
from tapwire_core.control.tracking_opt_outs.models import TrackingOptOutRow
from tapwire_core.privacy.scope import Scope
from tapwire_privacy.records import iso
from tapwire_privacy.stores.base import StoreHandler, Verification
from tapwire_privacy.stores.row_batches import row_batches


class _HashedKeyTable(StoreHandler):
    erasure = "retain"
    # Both models have account_id, key_hash and created_at; SQLAlchemy's typing cannot say "either".
    model: type[Any]
    reason: str

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def _rows(self, scopes: Sequence[Scope]) -> dict[str, list[Any]]:
        """The rows of each scope (by request id): one query per account, in one transaction."""
        found: dict[str, list[Any]] = {scope.request_id: [] for scope in scopes}
        async with AsyncSession(self._engine, expire_on_commit=False) as session, session.begin():
            salt = await deployment_secret(session, IDENTIFIER_SALT)
            for account_id in {scope.account_id for scope in scopes}:
                mine = [s for s in scopes if s.account_id == account_id]
                wanted = {
                    s.request_id: {key_hash(salt, account_id, key) for key in s.keys}
                    for s in mine
                    if s.keys is not None
                }
                query = select(self.model).where(self.model.account_id == account_id, *self._listed())
                if len(wanted) == len(mine):
                    query = query.where(self.model.key_hash.in_(set().union(*wanted.values())))
                owners: dict[str, list[str]] = {}
                for request_id, hashes in wanted.items():
                    for hashed in hashes:
                        owners.setdefault(hashed, []).append(request_id)
                tenant = [s.request_id for s in mine if s.keys is None]
                for row in await session.scalars(query):
                    for request_id in (*owners.get(row.key_hash, ()), *tenant):
                        found[request_id].append(row)
        return found

    def _listed(self) -> tuple[Any, ...]:
        """Conditions a row must meet to count as listed (every row, unless a subclass says otherwise)."""
        return ()

    async def export(self, scope: Scope) -> AsyncGenerator[list[dict[str, Any]], None]:
        if scope.keys is None:
            query = select(self.model).where(self.model.account_id == scope.account_id, *self._listed())
            async for rows in row_batches(self._engine, query):
                yield [self._exported(row) for row in rows]
            return
        # A subject's keys name a handful of rows.
        yield [self._exported(row) for row in (await self._rows([scope]))[scope.request_id]]

    def _exported(self, row: Any) -> dict[str, Any]:
        return {"listed_at": iso(row.created_at), "reason": self.reason}

    async def count(self, scopes: Sequence[Scope]) -> dict[str, int]:
        return {request_id: len(rows) for request_id, rows in (await self._rows(scopes)).items()}

    async def erase(self, scopes: Sequence[Scope]) -> None:
        return None

    async def verify(self, scopes: Sequence[Scope]) -> dict[str, Verification]:
        counts = await self.count(scopes)
        return {
            request_id: Verification(
                residue=0, pending=False, checked=f"retained by design ({n} salted hashes): {self.reason}"
            )
            for request_id, n in counts.items()
        }


class MarketingObjectionsHandler(_HashedKeyTable):
    name = "control.marketing_objections"
    model = MarketingObjectionRow
    reason = "an objection to marketing must outlive the data, or marketing could resume"


class TrackingOptOutsHandler(_HashedKeyTable):
    name = "control.tracking_opt_outs"
    model = TrackingOptOutRow
    reason = (
        "an opt-out of tracking made through a client SDK must outlive the data, or collection could resume"
    )

    def _listed(self) -> tuple[Any, ...]:
        # A lifted opt-out stays a day as a mark for the gateways; the person is no longer listed.
        return (TrackingOptOutRow.lifted_at.is_(None),)


class SuppressionsHandler(_HashedKeyTable):
    name = "control.privacy_suppressions"
    model = SuppressionRow
    reason = "records still on the bus for an erased subject are dropped until the list entry expires"
