"""Where a campaign's recipients come from: the :class:`AudienceSource` protocol and today's sources.

A source yields the user keys of one account's audience in chunks. Sources in this module: explicit
identities, and :class:`CqlAudience` for a CQL ``where`` or a saved segment, evaluated by the query service's
compiler (``tapwire_query.audience``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from tapwire_core.control.store import ControlStore
from tapwire_core.envelope import IDENTITY_KIND_PREFIXES
from tapwire_core.warehouse import Warehouse
from tapwire_query.audience import SegmentNotFound, audience_query, count_user_keys, resolve_user_keys
from tapwire_query.cql import CqlError, parse_query

CHUNK = 2000


class AudienceError(ValueError):
    """An audience the sources cannot evaluate (unsupported filter, bad dates); the message says which."""


class AudienceSource(Protocol):
    """Recipients of one account as chunks of user keys. A key appears at most once across chunks.

    Iterating may query the warehouse (and raise WarehouseUnavailable); it may be iterated again from the
    start after a crash (filling the outbox is idempotent).
    """

    def chunks(self, account_id: str) -> AsyncIterator[Sequence[str]]: ...

    async def estimate(self, account_id: str) -> int: ...

    async def check(self, account_id: str) -> None:
        """Raise AudienceError when the audience cannot be evaluated (an unknown saved segment)."""
        ...


@dataclass(frozen=True)
class ExplicitIdentities:
    """The users named in a send: ``{"Identity": [...], "Email": [...], "objectId": [...]}``."""

    identities: Mapping[str, Sequence[str]]

    def user_keys(self) -> list[str]:
        seen: dict[str, None] = {}
        for kind, values in self.identities.items():
            prefix = IDENTITY_KIND_PREFIXES.get(kind)
            if prefix is None:
                raise AudienceError(
                    f"unknown identity kind {kind!r}; use one of {sorted(set(IDENTITY_KIND_PREFIXES))}"
                )
            for value in values:
                if not isinstance(value, str) or not value.strip():
                    raise AudienceError(f"{kind} values must be non-empty strings")
                seen[prefix + value.strip()] = None
        return list(seen)

    async def chunks(self, account_id: str) -> AsyncIterator[Sequence[str]]:
        keys = self.user_keys()
        for start in range(0, len(keys), CHUNK):
            yield keys[start : start + CHUNK]

    async def estimate(self, account_id: str) -> int:
        return len(self.user_keys())

    async def check(self, account_id: str) -> None:
        self.user_keys()


@dataclass(frozen=True)
class CqlAudience:
    """Users matching a CQL ``where`` (``{}`` = every user) or a saved segment, through the query service's
    audience library (``tapwire_query.audience``): the full CQL compiler, identity merges applied (a merged
    person is one canonical key), chunks in ascending key order."""

    warehouse: Warehouse
    store: ControlStore | None
    where: Mapping[str, Any] | None = None
    segment_id: str | None = None
    cluster: bool = False

    def _selector(self) -> dict[str, Any]:
        return {"where": self.where, "segment_id": self.segment_id, "store": self.store}

    async def check(self, account_id: str) -> None:
        """Raise AudienceError when the saved segment is unknown or its definition no longer compiles."""
        try:
            await audience_query(account_id=account_id, **self._selector())
        except (CqlError, SegmentNotFound) as exc:
            raise _audience_error(self, exc) from exc

    async def chunks(self, account_id: str) -> AsyncIterator[Sequence[str]]:
        try:
            async for keys in resolve_user_keys(
                self.warehouse,
                account_id=account_id,
                page_size=CHUNK,
                cluster=self.cluster,
                **self._selector(),
            ):
                yield keys
        except (CqlError, SegmentNotFound) as exc:
            raise _audience_error(self, exc) from exc

    async def estimate(self, account_id: str) -> int:
        try:
            return await count_user_keys(
                self.warehouse, account_id=account_id, cluster=self.cluster, **self._selector()
            )
        except (CqlError, SegmentNotFound) as exc:
            raise _audience_error(self, exc) from exc


def _audience_error(audience: CqlAudience, exc: Exception) -> AudienceError:
    if isinstance(exc, SegmentNotFound):
        return AudienceError(f"segment_id: no saved segment {audience.segment_id!r} in this account")
    if audience.segment_id is not None:
        return AudienceError(f"segment_id: saved segment {audience.segment_id!r} is not valid CQL: {exc}")
    return AudienceError(f"where: {exc}")


class AudienceResolver(Protocol):
    """Turns a campaign's stored audience into a source (without I/O: a bad ``where`` raises AudienceError
    here, so campaign creation refuses it)."""

    def source(self, audience: Mapping[str, Any]) -> AudienceSource: ...


@dataclass(frozen=True)
class DefaultAudienceResolver:
    """Explicit identities, or a CQL ``where`` / saved ``segment_id`` through the CQL compiler."""

    warehouse: Warehouse | None
    store: ControlStore | None = None
    cluster: bool = False

    def source(self, audience: Mapping[str, Any]) -> AudienceSource:
        if "identities" in audience:
            return ExplicitIdentities(audience["identities"])
        if self.warehouse is None:
            raise AudienceError("this process has no warehouse to evaluate a where clause or a segment")
        if "segment_id" in audience:
            if self.store is None:
                raise AudienceError(
                    "segment_id: this process has no control store to read saved segments from"
                )
            return CqlAudience(
                self.warehouse, self.store, segment_id=str(audience["segment_id"]), cluster=self.cluster
            )
        where = audience.get("where") or {}
        try:
            parse_query(dict(where))
        except CqlError as exc:
            raise AudienceError(f"where: {exc}") from exc
        return CqlAudience(self.warehouse, self.store, where=where, cluster=self.cluster)
