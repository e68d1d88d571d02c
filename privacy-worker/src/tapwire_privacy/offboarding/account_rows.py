"""Where an account's rows are in the control database, derived from the schema itself (never a hand-kept list).

A table holds an account's rows when it has an ``account_id`` column (``accounts`` itself by its ``id``), or when a
foreign key leads to a table that does (``journey_history`` through ``journey_positions``, ``message_interactions``
through ``campaigns``, ...). Every other table must be declared in ``NOT_PER_ACCOUNT`` with the reason it holds
nothing of one account; ``unplaced_tables`` lists the ones that are neither, and the offboarding test fails on
any, so a new table cannot ship without the account's offboarding reaching it.

What an offboarding keeps on purpose is ``KEPT``: its own request record, audit trail and working set (the
completion record, PII-free, kept 24 months), and the account-wide suppression and erasure-ledger entries (``*``,
no identifier): the first makes the loader drop the account's records still on the bus until the topic's
retention removes them, the second erases the account again after a backup is restored.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from typing import Any, Final

from sqlalchemy import Column, ColumnElement, Delete, Select, Table, delete, func, select, true

import tapwire_core.control.models  # noqa: F401  (registers every control-plane table on the metadata)
from tapwire_core.control.base import Base
from tapwire_core.control.privacy.subject_keys import TENANT_WIDE
from tapwire_privacy.offboarding import ACCOUNT_DELETED

NOT_PER_ACCOUNT: Final[dict[str, str]] = {
    "privacy_keys": "deployment secrets (identifier salt, link-signing key), shared by every account",
    "console_sign_in_throttle": "failed sign-in counts under hashed keys that name no account; gone 15 minutes "
    "after the last failure",
}

Keep = Callable[[Table, str], ColumnElement[bool]]
"""The condition (on the table, given the offboarding's request id) a row kept on purpose meets."""

KEPT: Final[dict[str, tuple[Keep, str]]] = {
    "privacy_requests": (
        lambda t, request_id: t.c.id == request_id,
        "the offboarding's completion record: counts, times, the archive's digest; no personal data; 24 months",
    ),
    "privacy_audit": (
        lambda t, request_id: t.c.request_id == request_id,
        "the offboarding's audit trail: actions, store names and counts; 24 months",
    ),
    "privacy_request_subjects": (
        lambda t, request_id: t.c.request_id == request_id,
        "the offboarding's working set (a tenant request names no one); dropped when it completes",
    ),
    "privacy_suppressions": (
        lambda t, _: t.c.key_hash == TENANT_WIDE,
        "the account-wide suppression (*): the account's records still on the bus are dropped until it expires",
    ),
    "privacy_erasure_ledger": (
        lambda t, _: t.c.key_hash.in_([TENANT_WIDE, ACCOUNT_DELETED]),
        "the account-wide ledger entries (*, *account): a restored backup's copy of the account is deleted again",
    ),
}

REDACTED: Final[dict[str, frozenset[str]]] = {
    "credentials": frozenset({"secret_hash", "lookup_digest"}),
    "console_users": frozenset({"password_hash", "invite_digest"}),
    "console_sessions": frozenset({"id"}),
}
"""Columns left out of the customer's archive: hashes of secrets, which verify a credential or a session and
are worth nothing to the customer but something to a thief."""


@dataclass(frozen=True)
class AccountTable:
    """A control table and how its rows of one account are found."""

    table: Table
    match: Callable[[str], ColumnElement[bool]]
    """The condition selecting the account's rows."""

    @property
    def name(self) -> str:
        return self.table.name

    def rows(self, account_id: str) -> Select[Any]:
        redacted = REDACTED.get(self.name, frozenset())
        columns = [column for column in self.table.c if column.name not in redacted]
        return select(*columns).where(self.match(account_id)).order_by(*self.table.primary_key.columns)

    def _not_kept(self, request_id: str) -> ColumnElement[bool]:
        kept = KEPT.get(self.name)
        return true() if kept is None else ~kept[0](self.table, request_id)

    def count(self, account_id: str, request_id: str) -> Select[Any]:
        """The account's rows an offboarding removes (the kept ones not counted)."""
        return (
            select(func.count())
            .select_from(self.table)
            .where(self.match(account_id), self._not_kept(request_id))
        )

    def delete(self, account_id: str, request_id: str) -> Delete:
        return delete(self.table).where(self.match(account_id), self._not_kept(request_id))


def _direct(table: Table) -> Callable[[str], ColumnElement[bool]] | None:
    column = "id" if table.name == "accounts" else "account_id"
    if column not in table.c:
        return None
    return lambda account_id: table.c[column] == account_id


def _through(table: Table, placed: dict[str, AccountTable]) -> Callable[[str], ColumnElement[bool]] | None:
    """Through the first foreign key leading to a table already placed."""
    for fk in sorted(table.foreign_keys, key=lambda fk: fk.parent.name):
        parent = placed.get(fk.column.table.name)
        if parent is None:
            continue
        child_column, parent_column = fk.parent, fk.column

        def match(
            account_id: str,
            parent: AccountTable = parent,
            child: Column[Any] = child_column,
            key: Column[Any] = parent_column,
        ) -> ColumnElement[bool]:
            return child.in_(select(key).where(parent.match(account_id)))

        return match
    return None


@cache
def account_tables() -> tuple[AccountTable, ...]:
    """Every control table holding rows of an account, parents before the tables that reference them."""
    placed: dict[str, AccountTable] = {}
    pending = [t for t in Base.metadata.sorted_tables if t.name not in NOT_PER_ACCOUNT]
    while pending:
        progressed = False
        for table in list(pending):
            match = _direct(table) or _through(table, placed)
            if match is not None:
                placed[table.name] = AccountTable(table, match)
                pending.remove(table)
                progressed = True
        if not progressed:
            break
    return tuple(placed[t.name] for t in Base.metadata.sorted_tables if t.name in placed)


def unplaced_tables() -> list[str]:
    """Control tables an offboarding would not reach: neither holding account rows nor declared exempt."""
    placed = {t.name for t in account_tables()}
    return sorted(set(Base.metadata.tables) - placed - set(NOT_PER_ACCOUNT))
