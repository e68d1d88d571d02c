"""Privacy handler for the released anonymised aggregates (``aggregate_releases``, models in
``tapwire_core.control.aggregate_release_models``).

A release keeps the request that defined it, CQL the customer (or the operator, industry-wide) wrote; it holds no
user key and no figure. A definition can still name one person's value ("everyone but the user with email X",
precisely the request the differencing check exists for), so an erasure deletes every release of the account, and
every industry release, whose definition holds one of the subject's identifiers as a value (compared without
case and surrounding spaces). That only makes the comparison forget a population the subject has left anyway.
A tenant-level scope deletes every release of the account; industry releases are the operator's and stay.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Iterator, Sequence
from typing import Any

from sqlalchemy import ColumnElement, delete, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from tapwire_core.control.aggregate_release_models import AggregateReleaseRow
from tapwire_core.identity.keys import kind_of
from tapwire_core.privacy.scope import Scope
from tapwire_privacy.stores.messaging import _ControlHandler


def _values(keys: frozenset[str]) -> frozenset[str]:
    """What a definition would write for each key: the identifier without its kind prefix (and the key as is)."""
    values = {key.strip().casefold() for key in keys}
    values |= {key[2:].strip().casefold() for key in keys if kind_of(key) is not None}
    return frozenset(values)


def _leaves(document: Any) -> Iterator[str]:
    """Every string and number in a JSON document, as text (a loop: definitions nest)."""
    pending = [document]
    while pending:
        value = pending.pop()
        if isinstance(value, dict):
            pending.extend(value.values())
        elif isinstance(value, list):
            pending.extend(value)
        elif isinstance(value, str | int | float) and not isinstance(value, bool):
            yield str(value)


def names_subject(definition: Any, values: frozenset[str]) -> bool:
    return any(leaf.strip().casefold() in values for leaf in _leaves(definition))


class AggregateReleasesHandler(_ControlHandler):
    name = "control.aggregate_releases"
    table = AggregateReleaseRow.__tablename__

    @staticmethod
    def _candidates(scope: Scope) -> ColumnElement[bool]:
        own = AggregateReleaseRow.account_id == scope.account_id
        return own if scope.keys is None else or_(own, AggregateReleaseRow.account_id.is_(None))

    async def _matching(self, session: AsyncSession, scope: Scope) -> list[AggregateReleaseRow]:
        rows = list(
            await session.scalars(
                select(AggregateReleaseRow)
                .where(self._candidates(scope))
                .order_by(AggregateReleaseRow.released_at, AggregateReleaseRow.id)
            )
        )
        if scope.keys is None:
            return rows
        values = _values(scope.keys)
        return [row for row in rows if names_subject(row.definition, values)]

    async def export(self, scope: Scope) -> AsyncGenerator[list[dict[str, Any]], None]:
        # One batch: at most the comparison window's releases (TAPWIRE_AGGREGATE_MAX_RELEASES per account).
        async with AsyncSession(self._engine) as session:
            rows = await self._matching(session, scope)
        yield [
            {
                "release_id": r.id,
                "industry": r.account_id is None,
                "definition": r.definition,
                "released": r.released,
                "released_at": r.released_at.isoformat(),
            }
            for r in rows
        ]

    async def erase(self, scopes: Sequence[Scope]) -> None:
        async with AsyncSession(self._engine) as session, session.begin():
            for scope in scopes:
                ids = [row.id for row in await self._matching(session, scope)]
                if ids:
                    await session.execute(delete(AggregateReleaseRow).where(AggregateReleaseRow.id.in_(ids)))
