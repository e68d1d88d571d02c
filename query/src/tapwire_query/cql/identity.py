"""Identity merges, in one place: every row's ``user_key`` is counted as its canonical key.

``user_aliases`` holds one row per (alias, version); the latest version of each alias says whether the link
is active. The statement computes the active alias -> canonical map once (a scalar subquery in its ``WITH``
clause) and every scan maps its ``user_key`` through it; a key without an active alias row stays itself.
"""

from __future__ import annotations

from typing import Final

from tapwire_core.warehouse import schema

ALIASES: Final = "_aliases"


def active_aliases(account: str) -> str:
    """``SELECT alias_key, canonical_key``: ``account``'s active links, one row per alias (``account`` is SQL
    for the account id, a bound parameter)."""
    return (
        "SELECT alias_key, canonical_key FROM ("
        "SELECT alias_key, argMax(canonical_key, version) AS canonical_key, argMax(active, version) AS active "
        f"FROM {schema.USER_ALIASES} WHERE account_id = {account} GROUP BY alias_key"
        ") WHERE active = 1"
    )


def aliases_clause(account: str) -> str:
    """The ``WITH`` entry defining ``_aliases`` = (alias keys, canonical keys) of ``account``'s active links."""
    return f"(SELECT (groupArray(alias_key), groupArray(canonical_key)) FROM ({active_aliases(account)})) AS {ALIASES}"


def canonical(column: str = "user_key") -> str:
    """SQL for the canonical key of ``column`` (requires ``aliases_clause`` in the statement's WITH)."""
    return f"transform({column}, {ALIASES}.1, {ALIASES}.2, {column})"
