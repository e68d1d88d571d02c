"""The identity graph of each account, kept in the control-plane database (PostgreSQL or SQLite).

Rules (docs/identity.md has the user-facing version):

- A *profile* is a set of identifier nodes. Linking identifiers that sit in different profiles merges them.
- The profile's canonical key is its strongest identifier (``identity`` > ``objectId`` > FBID > GPID >
  anonymous id > email > phone), the earliest created one among equals; every other member is an alias of it.
- An implicit link (a record carrying several identifiers) never merges two profiles that each hold an
  ``identity``: two customer ids sharing an email or a device stay two people. An explicit link (Segment
  ``alias``) may.
- A merge that would make a profile hold more than ``max_identifiers_per_profile`` identifiers is refused.

All writes of one account are serialised (an advisory lock on PostgreSQL, an in-process lock on SQLite, whose
writers are one process), so concurrent merges of overlapping profiles cannot interleave.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
import zlib
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TypeVar

from sqlalchemy import or_, select, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from tapwire_core.identity.keys import MAX_KEY_CHARS, canonical_rank, kind_of, parse_identifier
from tapwire_core.identity.models import IdentityEdgeRow, IdentityNodeRow
from tapwire_core.identity.projection import AliasRow

log = logging.getLogger(__name__)

DEFAULT_MAX_IDENTIFIERS_PER_PROFILE = 100
_LOCK_CLASS = 0x7A9D
_IN_CHUNK = 1000
T = TypeVar("T")


class MergeRefused(Exception):
    """A link that the merge rules do not allow; the identifiers stay in their own profiles."""


@dataclass(frozen=True)
class LinkRequest:
    """Identifiers to put into one profile; ``explicit`` for an alias call (see the module's rules)."""

    keys: tuple[str, ...]
    reason: str
    explicit: bool = False


@dataclass(frozen=True)
class LinkOutcome:
    """``rows``: the ``user_aliases`` state of the linked profile (every member that is an alias), to publish.
    ``refused``: why the link was not made, or None."""

    rows: tuple[AliasRow, ...] = ()
    refused: str | None = None
    merged: bool = False


class IdentityGraph:
    """Merges, demerges and look-ups over the control-plane engine. One instance per process.

    Every coroutine may raise SQLAlchemyError when the database is unreachable. ``remember_linked`` /
    ``recently_linked`` keep a bounded, time-limited memory of links already made and published, so the ingest
    path does not touch the database for the same (user id, anonymous id) pair on every event.
    """

    def __init__(
        self,
        engine: AsyncEngine,
        *,
        max_identifiers_per_profile: int = DEFAULT_MAX_IDENTIFIERS_PER_PROFILE,
        cache_ttl_s: float = 60.0,
        cache_entries: int = 100_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._engine = engine
        self._sessions = async_sessionmaker(engine, expire_on_commit=False)
        self._sqlite = engine.dialect.name == "sqlite"
        self._lock = asyncio.Lock()
        self.max_identifiers_per_profile = max_identifiers_per_profile
        self._cache_ttl_s = cache_ttl_s
        self._cache_entries = cache_entries
        self._clock = clock
        self._recent: OrderedDict[tuple[str, tuple[str, ...]], float] = OrderedDict()

    # The ingest path's memory of links already made.

    def recently_linked(self, account_id: str, keys: Sequence[str]) -> bool:
        entry = (account_id, tuple(sorted(set(keys))))
        expires = self._recent.get(entry)
        if expires is None:
            return False
        if expires <= self._clock():
            del self._recent[entry]
            return False
        return True

    def remember_linked(self, account_id: str, keys: Sequence[str]) -> None:
        """Call only once the link's alias rows are durable, so a refused publish is retried in full."""
        self._recent[(account_id, tuple(sorted(set(keys))))] = self._clock() + self._cache_ttl_s
        while len(self._recent) > self._cache_entries:
            self._recent.popitem(last=False)

    def forget_cached(self, account_id: str) -> None:
        for entry in [e for e in self._recent if e[0] == account_id]:
            del self._recent[entry]

    # Changes.

    async def link(
        self, account_id: str, keys: Sequence[str], *, reason: str, explicit: bool = False
    ) -> LinkOutcome:
        """Put ``keys`` (user keys such as ``i:42``, ``a:7f…``) into one profile, creating unknown ones.

        Returns the alias rows of the resulting profile even when nothing changed, so a caller whose earlier
        publish failed republishes the same state. A refused merge still records the identifiers it saw.
        """
        (outcome,) = await self.link_many(account_id, [LinkRequest(tuple(keys), reason, explicit)])
        return outcome

    async def link_many(self, account_id: str, requests: Sequence[LinkRequest]) -> list[LinkOutcome]:
        """:meth:`link` for each request, in order, in one transaction: one request's worth of records
        (say 1,000 profile uploads naming an identity and an email each) costs a handful of statements, not
        a transaction per record."""
        wanted = [[k for k in dict.fromkeys(r.keys) if k and len(k) <= MAX_KEY_CHARS] for r in requests]
        all_keys = sorted({k for keys in wanted if len(keys) > 1 for k in keys})
        if not all_keys:
            return [LinkOutcome() for _ in requests]
        async with self._transaction(account_id) as session:
            nodes = await self._nodes(session, account_id, all_keys)
            profiles: dict[int, list[IdentityNodeRow]] = {}
            for member in await self._members(session, account_id, {n.profile_id for n in nodes.values()}):
                profiles.setdefault(member.profile_id, []).append(member)
            created = [
                IdentityNodeRow(
                    account_id=account_id, key=key, profile_id=_new_profile_id(), canonical_key=key, version=0
                )
                for key in all_keys
                if key not in nodes
            ]
            session.add_all(created)
            await session.flush()
            for node in created:
                nodes[node.key] = node
                profiles[node.profile_id] = [node]
            outcomes = []
            for request, keys in zip(requests, wanted, strict=True):
                if len(keys) < 2:
                    outcomes.append(LinkOutcome())
                    continue
                outcomes.append(
                    self._merge(
                        session,
                        account_id=account_id,
                        keys=keys,
                        request=request,
                        nodes=nodes,
                        profiles=profiles,
                    )
                )
            await session.flush()
        return outcomes

    def _merge(
        self,
        session: AsyncSession,
        *,
        account_id: str,
        keys: list[str],
        request: LinkRequest,
        nodes: dict[str, IdentityNodeRow],
        profiles: dict[int, list[IdentityNodeRow]],
    ) -> LinkOutcome:
        """One link on the transaction's in-memory view of the nodes involved (``profiles`` holds every member
        of every profile those nodes are in)."""
        before = {key: nodes[key].profile_id for key in keys}
        involved = sorted(set(before.values()))
        members = [m for profile in involved for m in profiles[profile]]
        if len(involved) == 1:
            return LinkOutcome(rows=_alias_rows(members))
        try:
            self._check_merge(members, explicit=request.explicit)
        except MergeRefused as refused:
            log.info(
                "identity merge refused",
                extra={"account_id": account_id, "reason": str(refused), "link_reason": request.reason},
            )
            return LinkOutcome(refused=str(refused))
        canonical = _strongest(members)
        target = canonical.profile_id
        for profile in involved:
            if profile != target:
                for member in profiles.pop(profile):
                    member.profile_id = target
        profiles[target] = members
        anchor = keys[0]
        session.add_all(
            IdentityEdgeRow(account_id=account_id, a_key=anchor, b_key=key, reason=request.reason)
            for key in keys[1:]
            if before[key] != before[anchor]
        )
        _assign_canonical(members, canonical.key)
        return LinkOutcome(rows=_alias_rows(members), merged=True)

    async def demerge(self, account_id: str, keys: Iterable[str]) -> list[AliasRow]:
        """Split each named identifier off the profile it was merged into (CleverTap's demerge).

        Every link touching the identifier is undone, except links to parts that would otherwise be left without
        any ``identity`` (anonymous ids and contacts that came in through it stay with it). Unknown keys are
        ignored. Returns the alias rows that changed.
        """
        changed: list[AliasRow] = []
        async with self._transaction(account_id) as session:
            for key in dict.fromkeys(keys):
                changed.extend(await self._detach(session, account_id, key, keep_orphans=True))
        self.forget_cached(account_id)
        return changed

    async def disassociate(self, account_id: str, key: str) -> list[AliasRow]:
        """Detach one identifier (a phone or email used as an identity) from its profile entirely."""
        async with self._transaction(account_id) as session:
            changed = await self._detach(session, account_id, key, keep_orphans=False)
        self.forget_cached(account_id)
        return changed

    async def forget(self, account_id: str, keys: Iterable[str]) -> list[AliasRow]:
        """Erase identifiers from the graph (privacy erasure): nodes and every link touching them are deleted;
        what the rest of their profile was linked through only them falls apart. Returns the changed rows,
        including an inactive row for each erased identifier that was an alias."""
        changed: list[AliasRow] = []
        async with self._transaction(account_id) as session:
            for key in dict.fromkeys(keys):
                changed.extend(await self._detach(session, account_id, key, keep_orphans=False))
                node = (await self._nodes(session, account_id, [key])).get(key)
                if node is None:
                    continue
                edges = await session.scalars(
                    select(IdentityEdgeRow).where(
                        IdentityEdgeRow.account_id == account_id,
                        or_(IdentityEdgeRow.a_key == key, IdentityEdgeRow.b_key == key),
                    )
                )
                for edge in edges:
                    await session.delete(edge)
                await session.delete(node)
        self.forget_cached(account_id)
        return changed

    # Reads.

    async def linked_identifiers(self, account_id: str, identifier: str) -> list[str]:
        """Every user key in the profile(s) of ``identifier``, sorted; empty when the graph does not know it.

        ``identifier`` is a user key (``i:42``, ``e:ann@example.com``) or a bare value, which matches that value
        under every kind.
        """
        async with self._sessions() as session:
            nodes = await self._nodes(session, account_id, parse_identifier(identifier))
            if not nodes:
                return []
            members = await self._members(session, account_id, {n.profile_id for n in nodes.values()})
        return sorted(m.key for m in members)

    async def existing(self, account_id: str, keys: Sequence[str]) -> set[str]:
        """Which of ``keys`` the graph knows."""
        async with self._sessions() as session:
            return set(await self._nodes(session, account_id, keys))

    async def canonical_key(self, account_id: str, key: str) -> str:
        """The key ``key`` counts as (itself when unknown or canonical)."""
        async with self._sessions() as session:
            node = (await self._nodes(session, account_id, [key])).get(key)
        return key if node is None else node.canonical_key

    # Internals.

    @asynccontextmanager
    async def _transaction(self, account_id: str) -> AsyncIterator[AsyncSession]:
        if self._sqlite:
            async with self._lock, self._sessions() as session, session.begin():
                yield session
            return
        async with self._sessions() as session, session.begin():
            await session.execute(
                text("SELECT pg_advisory_xact_lock(:cls, :acct)"),
                {"cls": _LOCK_CLASS, "acct": _lock_key(account_id)},
            )
            yield session

    async def _nodes(
        self, session: AsyncSession, account_id: str, keys: Sequence[str]
    ) -> dict[str, IdentityNodeRow]:
        found: dict[str, IdentityNodeRow] = {}
        for chunk in _chunks(list(keys)):
            rows = await session.scalars(
                select(IdentityNodeRow).where(
                    IdentityNodeRow.account_id == account_id, IdentityNodeRow.key.in_(chunk)
                )
            )
            found.update((row.key, row) for row in rows)
        return found

    async def _members(
        self, session: AsyncSession, account_id: str, profiles: set[int]
    ) -> list[IdentityNodeRow]:
        members: list[IdentityNodeRow] = []
        for chunk in _chunks(sorted(profiles)):
            rows = await session.scalars(
                select(IdentityNodeRow).where(
                    IdentityNodeRow.account_id == account_id, IdentityNodeRow.profile_id.in_(chunk)
                )
            )
            members.extend(rows)
        return sorted(members, key=lambda m: m.id)

    def _check_merge(self, members: list[IdentityNodeRow], *, explicit: bool) -> None:
        if len(members) > self.max_identifiers_per_profile:
            raise MergeRefused(
                f"the merged profile would hold {len(members)} identifiers "
                f"(limit {self.max_identifiers_per_profile})"
            )
        if explicit:
            return
        identified = {m.profile_id for m in members if kind_of(m.key) == "identity"}
        if len(identified) > 1:
            raise MergeRefused("both profiles already have an identity; only an explicit alias merges them")

    async def _detach(
        self, session: AsyncSession, account_id: str, key: str, *, keep_orphans: bool
    ) -> list[AliasRow]:
        node = (await self._nodes(session, account_id, [key])).get(key)
        if node is None:
            return []
        members = await self._members(session, account_id, {node.profile_id})
        member_keys = {m.key for m in members}
        edges = list(
            await session.scalars(
                select(IdentityEdgeRow).where(
                    IdentityEdgeRow.account_id == account_id,
                    IdentityEdgeRow.removed_at.is_(None),
                    IdentityEdgeRow.a_key.in_(sorted(member_keys)),
                )
            )
        )
        incident = [e for e in edges if key in (e.a_key, e.b_key)]
        kept = [e for e in edges if key not in (e.a_key, e.b_key)]
        if keep_orphans:
            parts = _components(member_keys, kept)
            identified = {parts[m.key] for m in members if kind_of(m.key) == "identity" and m.key != key}
            for edge in incident:
                other = edge.b_key if edge.a_key == key else edge.a_key
                if parts[other] not in identified:
                    kept.append(edge)
        now = datetime.now(UTC)
        kept_ids = {id(e) for e in kept}
        for edge in incident:
            if id(edge) not in kept_ids:
                edge.removed_at = now
        changed = _reassign(members, _components(member_keys, kept), keep_profile=node.profile_id)
        await session.flush()
        return changed


def _strongest(members: Iterable[IdentityNodeRow]) -> IdentityNodeRow:
    return min(members, key=lambda m: (canonical_rank(m.key), m.id))


def _assign_canonical(members: Iterable[IdentityNodeRow], canonical: str) -> list[IdentityNodeRow]:
    changed = []
    for member in members:
        if member.canonical_key != canonical:
            member.canonical_key = canonical
            member.version = max(member.version + 1, time.time_ns() // 1000)
            changed.append(member)
    return changed


def _alias_rows(members: Iterable[IdentityNodeRow]) -> tuple[AliasRow, ...]:
    return tuple(
        AliasRow(m.key, m.canonical_key, m.version, active=True) for m in members if m.key != m.canonical_key
    )


def _components(keys: set[str], edges: Iterable[IdentityEdgeRow]) -> dict[str, str]:
    """Union-find over ``keys`` along ``edges``: each key → a representative key of its component."""
    parent = {k: k for k in keys}

    def find(k: str) -> str:
        while parent[k] != k:
            parent[k] = parent[parent[k]]
            k = parent[k]
        return k

    for edge in edges:
        if edge.a_key in parent and edge.b_key in parent:
            parent[find(edge.a_key)] = find(edge.b_key)
    return {k: find(k) for k in keys}


def _reassign(members: list[IdentityNodeRow], parts: dict[str, str], *, keep_profile: int) -> list[AliasRow]:
    """Give each component its own profile and canonical key; rows for every member whose canonical changed."""
    groups: dict[str, list[IdentityNodeRow]] = {}
    for member in members:
        groups.setdefault(parts[member.key], []).append(member)
    changed: list[AliasRow] = []
    ordered = sorted(groups.values(), key=lambda g: (canonical_rank(_strongest(g).key), _strongest(g).id))
    for index, group in enumerate(ordered):
        profile = keep_profile if index == 0 else _new_profile_id()
        canonical = _strongest(group).key
        for member in group:
            member.profile_id = profile
        for member in _assign_canonical(group, canonical):
            changed.append(AliasRow(member.key, canonical, member.version, active=member.key != canonical))
    return changed


def _chunks(values: list[T]) -> Iterator[list[T]]:
    # Bound the bind parameters per statement (SQLite allows at most 32,766).
    for start in range(0, len(values), _IN_CHUNK):
        yield values[start : start + _IN_CHUNK]


def _new_profile_id() -> int:
    return secrets.randbits(62)


def _lock_key(account_id: str) -> int:
    # pg_advisory_xact_lock(int, int) takes signed 32-bit keys.
    value = zlib.crc32(account_id.encode())
    return value - (1 << 32) if value >= 1 << 31 else value


async def linked_identifiers(graph: IdentityGraph, account_id: str, identifier: str) -> list[str]:
    """Everything linked to ``identifier`` in ``account_id`` (for the privacy worker); see
    :meth:`IdentityGraph.linked_identifiers`."""
    return await graph.linked_identifiers(account_id, identifier)
