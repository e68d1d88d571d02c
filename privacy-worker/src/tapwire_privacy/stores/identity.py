"""Privacy handler for the identity graph (``identity_nodes`` and ``identity_edges`` in the control database).

Erasure goes through :meth:`IdentityGraph.forget`, never around it: the graph deletes the subject's nodes and
every edge touching them and splits what the rest of the profile was linked through only them, so the remaining
members keep a consistent canonical key. The alias rows that change for those remaining members are written to
the warehouse's ``user_aliases`` projection at once (the subject's own alias rows are erased by the warehouse
handler), so counts do not keep folding other people into the erased subject.
"""

from __future__ import annotations

import time
from collections.abc import AsyncGenerator, Sequence
from typing import Any

from sqlalchemy import Select, delete, or_, select
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from tapwire_core.identity.graph import IdentityGraph
from tapwire_core.identity.models import IdentityEdgeRow, IdentityNodeRow
from tapwire_core.privacy.scope import Scope
from tapwire_core.warehouse import Warehouse, schema
from tapwire_privacy.records import iso
from tapwire_privacy.stores.base import StoreHandler, Verification, subjects_union
from tapwire_privacy.stores.control_deletes import deletion_note
from tapwire_privacy.stores.row_batches import row_batches

_ALIAS_COLUMNS = ("account_id", "alias_key", "canonical_key", "merged_at", "version", "active")


class IdentityGraphHandler(StoreHandler):
    """Both graph tables as one store: a node and its edges are only meaningful together."""

    name = "control.identity_graph"

    def __init__(self, engine: AsyncEngine, graph: IdentityGraph, warehouse: Warehouse) -> None:
        self._engine = engine
        self._graph = graph
        self._warehouse = warehouse

    def _queries(self, scope: Scope) -> tuple[Select[IdentityNodeRow], Select[IdentityEdgeRow]]:
        nodes = select(IdentityNodeRow).where(IdentityNodeRow.account_id == scope.account_id)
        edges = select(IdentityEdgeRow).where(IdentityEdgeRow.account_id == scope.account_id)
        if scope.keys is not None:
            keys = sorted(scope.keys)
            nodes = nodes.where(IdentityNodeRow.key.in_(keys))
            edges = edges.where(or_(IdentityEdgeRow.a_key.in_(keys), IdentityEdgeRow.b_key.in_(keys)))
        return nodes, edges

    async def _held(self, scope: Scope) -> tuple[list[IdentityNodeRow], list[IdentityEdgeRow]]:
        nodes, edges = self._queries(scope)
        async with AsyncSession(self._engine) as session:
            return list(await session.scalars(nodes)), list(await session.scalars(edges))

    async def export(self, scope: Scope) -> AsyncGenerator[list[dict[str, Any]], None]:
        nodes, edges = self._queries(scope)
        async for rows in row_batches(self._engine, nodes):
            yield [
                {"identifier": n.key, "counted_as": n.canonical_key, "linked_at": iso(n.created_at)}
                for n in rows
            ]
        async for rows in row_batches(self._engine, edges):
            yield [
                {
                    "link": [e.a_key, e.b_key],
                    "reason": e.reason,
                    "linked_at": iso(e.created_at),
                    "unlinked_at": iso(e.removed_at),
                }
                for e in rows
            ]

    async def count(self, scopes: Sequence[Scope]) -> dict[str, int]:
        union = subjects_union(scopes)
        if union is not None and not any(await self._held(union)):
            return {scope.request_id: 0 for scope in scopes}
        counts = {}
        for scope in scopes:
            nodes, edges = await self._held(scope)
            counts[scope.request_id] = len(nodes) + len(edges)
        return counts

    async def erase(self, scopes: Sequence[Scope]) -> None:
        for scope in scopes:
            if scope.keys is None:
                async with AsyncSession(self._engine) as session, session.begin():
                    await session.execute(
                        delete(IdentityEdgeRow).where(IdentityEdgeRow.account_id == scope.account_id)
                    )
                    await session.execute(
                        delete(IdentityNodeRow).where(IdentityNodeRow.account_id == scope.account_id)
                    )
                self._graph.forget_cached(scope.account_id)
                continue
            changed = await self._graph.forget(scope.account_id, sorted(scope.keys))
            survivors = [
                row
                for row in changed
                if row.alias_key not in scope.keys and row.canonical_key not in scope.keys
            ]
            if survivors:
                now_ms = int(time.time() * 1000)
                await self._warehouse.insert(
                    schema.USER_ALIASES,
                    _ALIAS_COLUMNS,
                    [
                        (scope.account_id, r.alias_key, r.canonical_key, now_ms, r.version, int(r.active))
                        for r in survivors
                    ],
                )

    async def verify(self, scopes: Sequence[Scope]) -> dict[str, Verification]:
        counts = await self.count(scopes)
        return {
            request_id: Verification(
                residue=n,
                pending=False,
                checked="identity_nodes and identity_edges rows naming the subject's keys (control database); "
                + deletion_note(self._engine),
            )
            for request_id, n in counts.items()
        }
