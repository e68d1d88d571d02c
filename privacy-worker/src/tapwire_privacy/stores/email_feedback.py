"""Privacy handlers for the email feedback tables (models in ``tapwire_core.control.email_feedback``).

Both name addresses only by keyed hash (of the subject key ``e:<address>``); a subject is matched by that hash
for each of its ``e:`` keys, and feedback rows by user key too.

- ``email_feedback`` (bounces and complaints as reported): deleted.
- ``email_suppressions``: retained through a subject's erasure on purpose, as opt-outs and objections are: an
  address that complained or no longer exists must stay suppressed, or a re-import would mail it again. It is
  exported so the subject sees it is listed, and ``verify`` reports it with that reason. A tenant-level scope
  deletes every row of the account.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Sequence
from typing import Any

from sqlalchemy import ColumnElement, delete, false, or_, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from tapwire_core.control.email_feedback import EmailFeedbackRow, EmailSuppressionRow, address_hash
from tapwire_core.control.privacy.subject_keys import IDENTIFIER_SALT, deployment_secret
from tapwire_core.privacy.scope import Scope
from tapwire_privacy.stores.base import StoreHandler, Verification, subjects_union

_IMMEDIATE = "deletes in the control database are immediate and physical"


def _address_hashes(salt: bytes, scope: Scope) -> list[str]:
    assert scope.keys is not None
    return sorted(
        {address_hash(salt, scope.account_id, key[2:]) for key in scope.keys if key.startswith("e:")}
    )


class _EmailTable(StoreHandler):
    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    def _match(self, salt: bytes, scope: Scope) -> ColumnElement[bool]:
        raise NotImplementedError

    async def _rows(self, scope: Scope) -> list[Any]:
        async with AsyncSession(self._engine, expire_on_commit=False) as session, session.begin():
            salt = await deployment_secret(session, IDENTIFIER_SALT)
            return list(await session.scalars(select(self.model).where(self._match(salt, scope))))

    model: type[Any]

    async def count(self, scopes: Sequence[Scope]) -> dict[str, int]:
        union = subjects_union(scopes)
        if union is not None and not await self._rows(union):
            return {scope.request_id: 0 for scope in scopes}
        return {scope.request_id: len(await self._rows(scope)) for scope in scopes}


class EmailFeedbackHandler(_EmailTable):
    name = "control.email_feedback"
    model = EmailFeedbackRow

    def _match(self, salt: bytes, scope: Scope) -> ColumnElement[bool]:
        condition = EmailFeedbackRow.account_id == scope.account_id
        if scope.keys is None:
            return condition
        hashes = _address_hashes(salt, scope)
        return condition & or_(
            EmailFeedbackRow.user_key.in_(sorted(scope.keys)),
            EmailFeedbackRow.address_hash.in_(hashes) if hashes else false(),
        )

    async def export(self, scope: Scope) -> AsyncGenerator[list[dict[str, Any]], None]:
        yield [
            {
                "kind": r.kind,
                "source": r.source,
                "category": r.category,
                "status": r.status,
                "detail": r.detail,
                "campaign_id": r.campaign_id,
                "ts_ms": r.ts_ms,
            }
            for r in await self._rows(scope)
        ]

    async def erase(self, scopes: Sequence[Scope]) -> None:
        async with AsyncSession(self._engine) as session, session.begin():
            salt = await deployment_secret(session, IDENTIFIER_SALT)
            for scope in scopes:
                await session.execute(delete(EmailFeedbackRow).where(self._match(salt, scope)))

    async def verify(self, scopes: Sequence[Scope]) -> dict[str, Verification]:
        counts = await self.count(scopes)
        return {
            rid: Verification(n, False, f"bounce and complaint records naming the subject; {_IMMEDIATE}")
            for rid, n in counts.items()
        }


class EmailSuppressionsHandler(_EmailTable):
    name = "control.email_suppressions"
    model = EmailSuppressionRow
    erasure = "retain"
    reason = (
        "an address that hard-bounced or complained must stay suppressed, or a re-import would mail it again"
    )

    def _match(self, salt: bytes, scope: Scope) -> ColumnElement[bool]:
        condition = EmailSuppressionRow.account_id == scope.account_id
        if scope.keys is None:
            return condition
        hashes = _address_hashes(salt, scope)
        return condition & (EmailSuppressionRow.address_hash.in_(hashes) if hashes else false())

    async def export(self, scope: Scope) -> AsyncGenerator[list[dict[str, Any]], None]:
        yield [
            {"reason": r.reason, "source": r.source, "since_ms": r.created_ms, "kept_because": self.reason}
            for r in await self._rows(scope)
        ]

    async def erase(self, scopes: Sequence[Scope]) -> None:
        tenants = [scope for scope in scopes if scope.tenant]
        if not tenants:
            return
        async with AsyncSession(self._engine) as session, session.begin():
            for scope in tenants:
                await session.execute(
                    delete(EmailSuppressionRow).where(EmailSuppressionRow.account_id == scope.account_id)
                )

    async def verify(self, scopes: Sequence[Scope]) -> dict[str, Verification]:
        counts = await self.count(scopes)
        verdicts = {}
        for scope in scopes:
            n = counts[scope.request_id]
            if scope.tenant:
                verdicts[scope.request_id] = Verification(n, False, f"suppression entries; {_IMMEDIATE}")
            else:
                verdicts[scope.request_id] = Verification(
                    0, False, f"retained by design ({n} keyed hashes): {self.reason}"
                )
        return verdicts
