"""The statements an aggregate runs, built from the compiled CQL of each definition (``compile_user_groups``).

A *population* is ``SELECT account, uk, g``: every user of a definition, once per group, in each account the
aggregate covers (one account, or every participating account of an industry aggregate). Accounts are kept
apart: each is compiled on its own (its tenant condition, its identity merges) and the parts are joined with
``UNION ALL``, their bound parameters renamed apart, so users of two accounts are never the same user.

- ``candidates``: the groups that pass the rule on their own, and how many groups there are.
- ``rank_histogram``: users per account by their smallest candidate rank (``suppression.decide`` reads it).
- ``overlaps``: for a new aggregate and earlier released ones, the size of each released cell and of each
  intersection of a new cell with an earlier cell (``differencing`` reads it).

Every value is a bound parameter; the SQL text holds only placeholders and fixed words.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

from tapwire_query.aggregates.request import AggregateRequest
from tapwire_query.aggregates.suppression import Candidate, Threshold
from tapwire_query.cql import Compiled, CompileOptions, CqlError, compile_user_groups
from tapwire_query.cql.compile import MAX_SQL_BYTES
from tapwire_query.cql.sql import Binder

MAX_GROUPS: Final = 50
"""Groups released at most: the largest that pass; the others are suppressed (pooled into "other")."""
TOTAL: Final = "T"
OTHER: Final = "O"
_PLACEHOLDER: Final = re.compile(r"\{(p\d+):")


@dataclass(frozen=True)
class Definition:
    """One aggregate as it is evaluated: the request, its accounts, and the options its windows are read with."""

    request: AggregateRequest
    accounts: tuple[str, ...]
    options: CompileOptions


@dataclass(frozen=True)
class Cells:
    """The cells of an aggregate that were released: the group labels, and whether "other" was."""

    labels: tuple[str, ...]
    other: bool


def population(definition: Definition, binder: Binder, tag: str) -> str:
    """``SELECT account, uk, g`` of ``definition``, its parameters added to ``binder`` under names starting with
    ``tag`` (distinct per population of one statement). Raises ``CqlError`` for an invalid query."""
    parts = []
    for index, account in enumerate(definition.accounts):
        compiled = compile_user_groups(
            definition.request,
            account_id=account,
            options=definition.options,
            grouping=definition.request.grouping(),
        )
        prefix = f"{tag}a{index}_"
        sql = _renamed(compiled, prefix)
        for name, value in compiled.params.items():
            binder.params[prefix + name] = value
        parts.append(f"SELECT {binder.string(account)} AS account, uk, g FROM ({sql})")
    return " UNION ALL ".join(parts)


def _renamed(compiled: Compiled, prefix: str) -> str:
    """``compiled``'s SQL with every placeholder ``{pN:`` renamed ``{<prefix>pN:`` (the SQL holds no value, so
    nothing else can look like one)."""
    return _PLACEHOLDER.sub(lambda match: "{" + prefix + match.group(1) + ":", compiled.sql)


def _finish(binder: Binder, sql: str) -> Compiled:
    if len(sql) > MAX_SQL_BYTES:
        raise CqlError(
            f"query: too large once compiled for this aggregate ({len(sql)} bytes of SQL, at most "
            f"{MAX_SQL_BYTES}); use fewer conditions (or, industry-wide, fewer accounts)"
        )
    return binder.finish(sql)


def candidates(definition: Definition, threshold: Threshold) -> Compiled:
    """``SELECT groups, kept``: how many groups there are, and the (label, users, accounts) of the largest
    ``MAX_GROUPS`` that pass the rule on their own."""
    binder = Binder()
    users = population(definition, binder, "c")
    k = binder.bind(threshold.k, "UInt64")
    accounts = binder.bind(threshold.min_accounts, "UInt64")
    limit = binder.bind(MAX_GROUPS, "UInt64")
    return _finish(
        binder,
        "SELECT count() AS groups, arraySlice(arrayReverseSort(t -> (t.2, t.1), "
        f"groupArrayIf((g, users, accounts), users >= {k} AND accounts >= {accounts})), 1, {limit}) AS kept "
        f"FROM (SELECT g, count() AS users, uniqExact(account) AS accounts FROM ({users}) GROUP BY g)",
    )


def read_candidates(rows: Sequence[dict[str, Any]]) -> tuple[int, list[Candidate]]:
    if not rows:
        return 0, []
    kept = [Candidate(str(g), int(users), int(accounts)) for g, users, accounts in rows[0]["kept"]]
    return int(rows[0]["groups"]), kept


def rank_histogram(definition: Definition, ranked: Sequence[Candidate]) -> Compiled:
    """``SELECT account, rank, users``: distinct users per account by the smallest rank (1-based position in
    ``ranked``; 0 for a group not among them) of the groups they fall in."""
    binder = Binder()
    users = population(definition, binder, "h")
    labels = binder.bind([c.label for c in ranked], "Array(String)")
    return _finish(
        binder,
        f"SELECT account, rank, count() AS users FROM (SELECT account, uk, min(indexOf({labels}, g)) AS rank "
        f"FROM ({users}) GROUP BY account, uk) GROUP BY account, rank",
    )


def read_histogram(rows: Sequence[dict[str, Any]]) -> dict[tuple[str, int], int]:
    return {(str(r["account"]), int(r["rank"])): int(r["users"]) for r in rows}


def _cells(definition: Definition, cells: Cells, binder: Binder, tag: str, release: int) -> str:
    """``SELECT account, uk, rel, cell``: each user of a released aggregate once per released cell they are in
    (the total ``T``, a group ``g<label>``, "other" ``O``)."""
    users = population(definition, binder, tag)
    labels = binder.bind(list(cells.labels), "Array(String)")
    other = binder.bind(int(cells.other), "UInt64")
    rel = binder.bind(release, "UInt64")
    cell = f"multiIf(has({labels}, g), concat('g', g), {other} = 1, '{OTHER}', '')"
    return (
        f"SELECT account, uk, {rel} AS rel, arrayJoin(arrayFilter(c -> c != '', "
        f"arrayDistinct(arrayConcat(['{TOTAL}'], groupArray({cell}))))) AS cell "
        f"FROM ({users}) GROUP BY account, uk"
    )


def overlaps(new: tuple[Definition, Cells], earlier: Sequence[tuple[Definition, Cells]]) -> Compiled:
    """``SELECT rel, a, b, n`` with rel 0 for the new aggregate and 1… for ``earlier`` in order: ``(0, a, '')``
    the users of the new cell ``a``; ``(r, '', b)`` those of cell ``b`` of earlier aggregate ``r``; ``(r, a, b)``
    those in both (only pairs that share a user appear)."""
    binder = Binder()
    parts = [_cells(*new, binder, "n", 0)]
    parts += [_cells(*release, binder, f"e{i}", i + 1) for i, release in enumerate(earlier)]
    union = " UNION ALL ".join(parts)
    pairs = (
        "arrayConcat(arrayMap(c -> (toUInt64(0), c, ''), new_cells), arrayMap(x -> (x.1, '', x.2), old_cells), "
        "arrayFlatten(arrayMap(c -> arrayMap(x -> (x.1, c, x.2), old_cells), new_cells)))"
    )
    return _finish(
        binder,
        "SELECT pair.1 AS rel, pair.2 AS a, pair.3 AS b, count() AS n FROM ("
        f"SELECT {pairs} AS pairs FROM ("
        "SELECT groupArrayIf(cell, rel = 0) AS new_cells, groupArrayIf((rel, cell), rel > 0) AS old_cells "
        f"FROM ({union}) GROUP BY account, uk)) ARRAY JOIN pairs AS pair GROUP BY rel, a, b",
    )
