"""The one interface every store's privacy handler implements.

A handler covers one table (or file store). The worker calls it with *scopes*: one per request, naming the
account and the subject's closed set of keys, or the whole account for a tenant-level request. ``erase`` takes
many scopes of one account at once so a store can serve them with one operation (one ClickHouse mutation);
``verify`` and ``count`` answer per request. Every method is idempotent: a worker that crashed and resumes
calls it again with the same scopes and the outcome is the same.
"""

from __future__ import annotations

import abc
from collections.abc import AsyncGenerator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal

from tapwire_core.privacy.scope import Scope

Erasure = Literal["erase", "retain"]

EXPORT_BATCH_ROWS: Final = 5_000
"""Rows per batch an export yields: a tenant-wide export of millions of rows holds one batch at a time. Measured on
a 10M-event account (20M rows in all): the worker's own peak (``VmHWM``) stayed at 234-238 MiB, about 20 MiB above
its start-up, for the whole export; a batch of events is a few kilobytes a row as dicts, so twice the batch costs
about twice that."""


def subjects_union(scopes: Sequence[Scope]) -> Scope | None:
    """One scope naming every key of ``scopes``, when there are several and all are subject scopes of one
    account; else None. Every handler matches a row when it names *any* of a scope's keys, so a store that holds
    nothing for this scope holds nothing for any of ``scopes``: one question instead of one per request."""
    if len(scopes) < 2 or any(s.keys is None for s in scopes) or len({s.account_id for s in scopes}) > 1:
        return None
    keys = frozenset().union(*(s.keys or frozenset() for s in scopes))
    return Scope("", scopes[0].account_id, keys)


@dataclass(frozen=True)
class Verification:
    """What a store's check found for one request, and what exactly was checked."""

    residue: int
    pending: bool
    checked: str

    def to_json(self) -> dict[str, Any]:
        return {"residue": self.residue, "pending": self.pending, "checked": self.checked}

    @property
    def clean(self) -> bool:
        return self.residue == 0 and not self.pending


class StoreHandler(abc.ABC):
    """Export, erase, rectify and verify for one store. Raise the store's own errors; the worker retries."""

    name: str
    """Stable name used in progress records and archives, e.g. ``warehouse.events``."""

    erasure: Erasure = "erase"
    """``retain`` for stores whose rows must outlive an erasure (an objection list); ``verify`` then reports
    what is held and why in ``checked`` instead of demanding zero."""

    @abc.abstractmethod
    def export(self, scope: Scope) -> AsyncGenerator[list[dict[str, Any]], None]:
        """Every row held about the scope, as JSON-ready dicts, in batches of at most ``EXPORT_BATCH_ROWS`` (or
        the handler's own bound), read from the store as they are yielded: memory holds one batch, however
        large the account. An async generator; the caller may stop early and close it."""

    @abc.abstractmethod
    async def count(self, scopes: Sequence[Scope]) -> dict[str, int]:
        """Rows held per request id."""

    @abc.abstractmethod
    async def erase(self, scopes: Sequence[Scope]) -> None:
        """Start (or finish) removing every row of ``scopes`` (all of one account). May return before the rows
        are physically gone; ``verify`` says when they are."""

    @abc.abstractmethod
    async def verify(self, scopes: Sequence[Scope]) -> dict[str, Verification]:
        """Per request id: rows still held, and whether removal is still in progress."""

    async def settle(self) -> None:
        """Wait (bounded) for removals this store runs in the background to finish; ``verify`` reports what is
        still running afterwards. Default: the store removes synchronously."""
        return None

    async def rectify(self, scope: Scope, fields: Mapping[str, Any]) -> int:
        """Apply corrected profile ``fields``; returns rows written or changed. Default: the store holds no
        profile fields."""
        return 0
