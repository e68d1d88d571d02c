"""Where a campaign's recipients come from: the :class:`AudienceSource` protocol and today's sources.

A source yields the user keys of one account's audience in chunks. Sources in this module: explicit
identities, and a warehouse source for a CQL ``where`` holding only the base query (``event_name``, ``from``,
``to``): users who did that event in that date range, or every known profile for ``{}``. The full CQL compiler
and saved segments plug in later through the same protocol (see :class:`AudienceResolver`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Protocol

from tapwire_core.warehouse import Warehouse

CHUNK = 2000

# Identity kinds a send may name users by (CleverTap's ``to`` keys) → user key prefix.
IDENTITY_PREFIXES: Mapping[str, str] = {
    "Identity": "i:",
    "identity": "i:",
    "objectId": "o:",
    "FBID": "f:",
    "GPID": "g:",
    "Email": "e:",
    "email": "e:",
    "Phone": "p:",
}


class AudienceError(ValueError):
    """An audience the sources cannot evaluate (unsupported filter, bad dates); the message says which."""


class AudienceSource(Protocol):
    """Recipients of one account as chunks of user keys. A key appears at most once across chunks.

    Iterating may query the warehouse (and raise WarehouseUnavailable); it may be iterated again from the
    start after a crash (filling the outbox is idempotent).
    """

    def chunks(self, account_id: str) -> AsyncIterator[Sequence[str]]: ...

    async def estimate(self, account_id: str) -> int: ...


@dataclass(frozen=True)
class ExplicitIdentities:
    """The users named in a send: ``{"Identity": [...], "Email": [...], "objectId": [...]}``."""

    identities: Mapping[str, Sequence[str]]

    def user_keys(self) -> list[str]:
        seen: dict[str, None] = {}
        for kind, values in self.identities.items():
            prefix = IDENTITY_PREFIXES.get(kind)
            if prefix is None:
                raise AudienceError(
                    f"unknown identity kind {kind!r}; use one of {sorted(set(IDENTITY_PREFIXES))}"
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


_BASE_KEYS = {"event_name", "from", "to"}


@dataclass(frozen=True)
class WarehouseEventAudience:
    """Users who did ``event_name`` between ``from`` and ``to`` (``YYYYMMDD``, inclusive); with no event name,
    every profile of the account. Chunks come in user-key order (keyset pagination on ``user_key``)."""

    warehouse: Warehouse
    event_name: str | None
    start: date | None
    end: date | None

    @classmethod
    def from_where(cls, warehouse: Warehouse, where: Mapping[str, Any]) -> WarehouseEventAudience:
        unsupported = sorted(set(where) - _BASE_KEYS)
        if unsupported:
            raise AudienceError(f"where: filters {unsupported} are not supported yet; use event_name/from/to")
        name = where.get("event_name")
        if name is not None and (not isinstance(name, str) or not name):
            raise AudienceError("where.event_name must be a non-empty string")
        if name is None and ("from" in where or "to" in where):
            raise AudienceError("where.from/to need an event_name")
        start = _day(where, "from") if name else None
        end = _day(where, "to") if name else None
        if start is not None and end is not None and end < start:
            raise AudienceError("where.to is before where.from")
        return cls(warehouse, name, start, end)

    def _members(self) -> tuple[str, dict[str, Any]]:
        """SQL selecting the distinct member keys (``{account:String}`` still to bind) and its parameters."""
        if self.event_name is None:
            return "SELECT DISTINCT user_key FROM profiles WHERE account_id = {account:String}", {}
        return (
            "SELECT DISTINCT user_key FROM events WHERE account_id = {account:String} AND name = {name:String} "
            "AND toDate(ts) BETWEEN {first:Date} AND {last:Date}",
            {
                "name": self.event_name,
                "first": self.start.isoformat() if self.start else "1970-01-01",
                "last": self.end.isoformat() if self.end else "2299-12-31",
            },
        )

    async def chunks(self, account_id: str) -> AsyncIterator[Sequence[str]]:
        members, params = self._members()
        sql = f"{members} AND user_key > {{after:String}} ORDER BY user_key LIMIT {{limit:UInt32}}"
        after = ""
        while True:
            rows = await self.warehouse.query(
                sql, {**params, "account": account_id, "after": after, "limit": CHUNK}
            )
            keys = [str(row["user_key"]) for row in rows]
            if not keys:
                return
            yield keys
            after = keys[-1]
            if len(keys) < CHUNK:
                return

    async def estimate(self, account_id: str) -> int:
        """The audience size in one aggregate query (no paging)."""
        members, params = self._members()
        rows = await self.warehouse.query(
            f"SELECT count() AS n FROM ({members})", {**params, "account": account_id}
        )
        return int(rows[0]["n"]) if rows else 0


def _day(where: Mapping[str, Any], key: str) -> date:
    raw = where.get(key)
    try:
        return datetime.strptime(str(int(str(raw))), "%Y%m%d").date()
    except (TypeError, ValueError) as exc:
        raise AudienceError(f"where.{key} must be a date YYYYMMDD, got {raw!r}") from exc


class AudienceResolver(Protocol):
    """Turns a campaign's stored audience into a source. The default handles identities and base queries;
    the full CQL compiler and saved segments replace it without touching the sender."""

    def source(self, audience: Mapping[str, Any]) -> AudienceSource: ...


@dataclass(frozen=True)
class DefaultAudienceResolver:
    warehouse: Warehouse | None

    def source(self, audience: Mapping[str, Any]) -> AudienceSource:
        if "identities" in audience:
            return ExplicitIdentities(audience["identities"])
        if "segment_id" in audience:
            raise AudienceError("saved segments are not available in this build yet")
        if self.warehouse is None:
            raise AudienceError("this process has no warehouse to evaluate a where clause")
        return WarehouseEventAudience.from_where(self.warehouse, audience.get("where") or {})
