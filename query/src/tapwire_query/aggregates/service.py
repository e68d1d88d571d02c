"""Releasing one anonymised aggregate: evaluate, suppress small cells, compare with earlier releases, record.

``release`` is the whole flow the routes call: (1) the candidate groups and the users per smallest rank
(``statements``), (2) the suppression rule (``suppression.decide``), (3) when something is released, the
window's budget, (4) the release recorded, (5) compared with every earlier release of the same scope in the
window (``differencing``) and deleted again if too close. Raises ``CqlError`` (invalid query), ``ApiError``
(refused: 422 too close to an earlier release, 429 past the window's budget), the warehouse's and the control
store's errors.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

import orjson

from tapwire_core.http.errors import ApiError
from tapwire_core.settings import Settings
from tapwire_core.warehouse import Warehouse
from tapwire_query.aggregates import statements
from tapwire_query.aggregates.differencing import Clash, first_clash
from tapwire_query.aggregates.releases import ReleaseLedger, StoredRelease
from tapwire_query.aggregates.request import AggregateRequest, parse_request
from tapwire_query.aggregates.statements import Cells, Definition
from tapwire_query.aggregates.suppression import Candidate, Decision, Threshold, ascending, decide
from tapwire_query.cql import CompileOptions, CqlError
from tapwire_query.cql.compile import MAX_SQL_BYTES, NOT_SET
from tapwire_query.cql.off_loop import off_loop
from tapwire_query.cql.sql import Binder
from tapwire_query.execution import run

DIFFERENCING_CODE: Final = 4221
"""The error ``code`` of a refusal for being too close to an earlier release (status 422)."""
_OVERHEAD: Final = 4096
"""SQL around the populations of one comparison statement, with margin."""
BATCH: Final = 10
"""Earlier releases compared in one statement at most. Measured (tests/bench/aggregates.py): 50 in one statement
took 5.6 s where 10 took 0.6 s; a statement's cost grows faster than the populations it holds."""
MAX_PER_DEFINITION: Final = (MAX_SQL_BYTES - 2 * _OVERHEAD) // 2
"""The most SQL one aggregate's population may compile to: any two released ones fit one statement."""


@dataclass(frozen=True)
class AggregateScope:
    """Whose users an aggregate covers: ``ledger`` is the account id (or None industry-wide), ``accounts`` the
    accounts whose users count, ``threshold`` the rule every released figure meets."""

    ledger: str | None
    accounts: tuple[str, ...]
    threshold: Threshold


async def release(
    *,
    warehouse: Warehouse,
    ledger: ReleaseLedger,
    settings: Settings,
    scope: AggregateScope,
    body: Any,
    now: dt.datetime,
) -> dict[str, Any]:
    """The answer's fields (without ``status``) for ``body``, recorded as released when anything is."""
    request = await off_loop(parse_request, body)
    since = now - dt.timedelta(days=settings.aggregate_window_days)
    await ledger.purge(before=since)
    definition = Definition(request, scope.accounts, _options(settings, now.date()))
    await off_loop(_comparable, definition)
    decision = await _decide(warehouse, definition, scope.threshold)
    answer = _answer(request, decision, scope)
    if not decision.released:
        return {**answer, "release_id": None}
    await _within_budget(ledger, scope.ledger, since=since, now=now, limit=settings.aggregate_max_releases)
    cells = Cells(tuple(g.label for g in decision.groups), decision.other is not None)
    release_id = await ledger.record(
        scope.ledger,
        definition=body,
        anchor=now.strftime("%Y%m%d"),
        released={"groups": list(cells.labels), "other": cells.other},
        at=now,
    )
    try:
        earlier = await ledger.earlier(scope.ledger, since=since, other_than=release_id)
        clash = await _first_clash(warehouse, settings, (definition, cells), earlier, scope)
    except BaseException:
        await ledger.forget(release_id)
        raise
    if clash is not None:
        await ledger.forget(release_id)
        raise ApiError(
            422,
            f"This aggregate is too close to one released on {clash.released_at:%Y-%m-%d}: "
            f"{_cell_name(clash.clash.new_cell)} would differ from its {_cell_name(clash.clash.earlier_cell)} "
            f"by fewer than {scope.threshold.k} users, which would reveal them. Change the population or grouping "
            "so they differ by more, or ask for the earlier aggregate again",
            code=DIFFERENCING_CODE,
        )
    return {**answer, "release_id": release_id}


def _options(settings: Settings, today: dt.date) -> CompileOptions:
    return CompileOptions(today=today, cluster=settings.clickhouse_cluster is not None)


async def _decide(warehouse: Warehouse, definition: Definition, threshold: Threshold) -> Decision:
    groups, kept = 0, list[Candidate]()
    if definition.request.grouping() is not None:
        compiled = await off_loop(statements.candidates, definition, threshold)
        groups, kept = statements.read_candidates(await run(warehouse, compiled))
    ranked = ascending(kept)
    compiled = await off_loop(statements.rank_histogram, definition, ranked)
    histogram = statements.read_histogram(await run(warehouse, compiled))
    return decide(ranked, histogram, groups=groups, threshold=threshold)


async def _within_budget(
    ledger: ReleaseLedger, scope: str | None, *, since: dt.datetime, now: dt.datetime, limit: int
) -> None:
    """429 with ``Retry-After`` (until the oldest release leaves the window) when the window is full: every
    release is compared with all of the window's, so their number is bounded rather than the oldest forgotten."""
    count, oldest = await ledger.in_window(scope, since=since)
    if count < limit:
        return
    free_at = (oldest or now) + (now - since)
    raise ApiError(
        429,
        f"{count} aggregates were released in the comparison window, the most it holds; the next can be "
        "released once the oldest leaves it",
        retry_after=max(1, int((free_at - now).total_seconds()) + 1),
    )


@dataclass(frozen=True)
class _Found:
    clash: Clash
    released_at: dt.datetime


async def _first_clash(
    warehouse: Warehouse,
    settings: Settings,
    new: tuple[Definition, Cells],
    earlier: Sequence[StoredRelease],
    scope: AggregateScope,
) -> _Found | None:
    """Compare ``new`` with ``earlier`` in as few statements as the SQL size allows; the first clash found."""
    if not earlier:
        return None
    distinct = _distinct(earlier)
    releases = await off_loop(_evaluated, distinct, scope.accounts, settings)
    for chunk in await off_loop(comparison_batches, new, releases):
        compiled = await off_loop(statements.overlaps, new, [releases[i] for i in chunk])
        clash = first_clash(await run(warehouse, compiled), k=scope.threshold.k)
        if clash is not None:
            return _Found(clash, distinct[chunk[clash.release - 1]].released_at)
    return None


def _distinct(earlier: Sequence[StoredRelease]) -> list[StoredRelease]:
    """``earlier`` without repeats of the same definition, anchor and cells (a report released every week with
    the same windows is one population to evaluate), the latest of each kept."""
    latest: dict[str, StoredRelease] = {}
    for stored in earlier:
        key = orjson.dumps([stored.definition, stored.anchor, stored.released], option=orjson.OPT_SORT_KEYS)
        latest[key.decode()] = stored
    return list(latest.values())


def _evaluated(
    earlier: Sequence[StoredRelease], accounts: tuple[str, ...], settings: Settings
) -> list[tuple[Definition, Cells]]:
    """Each earlier release as a definition to evaluate again on today's data (with its own anchor date)."""
    releases = []
    for stored in earlier:
        request = parse_request(stored.definition)
        anchor = dt.datetime.strptime(stored.anchor, "%Y%m%d").date()
        cells = Cells(tuple(stored.released["groups"]), bool(stored.released["other"]))
        releases.append((Definition(request, accounts, _options(settings, anchor)), cells))
    return releases


def _comparable(definition: Definition) -> None:
    """Raise ``CqlError`` unless ``definition`` fits one comparison statement beside any other that passed this
    check (half the statement each): a release that fit nowhere would make every later request fail."""
    size = _size(definition)
    if size > MAX_PER_DEFINITION:
        raise CqlError(
            f"query: too large for an aggregate once compiled ({size} bytes of SQL, at most {MAX_PER_DEFINITION}"
            "); use fewer conditions (or, industry-wide, fewer participating accounts)"
        )


def comparison_batches(
    new: tuple[Definition, Cells], releases: Sequence[tuple[Definition, Cells]]
) -> list[list[int]]:
    """Indexes of ``releases`` in groups of at most ``BATCH`` whose populations fit one statement beside
    ``new``'s."""
    budget = MAX_SQL_BYTES - _size(new[0]) - _OVERHEAD
    chunks: list[list[int]] = [[]]
    used = 0
    for index, (definition, _) in enumerate(releases):
        size = _size(definition) + _OVERHEAD // 8
        if chunks[-1] and (used + size > budget or len(chunks[-1]) == BATCH):
            chunks.append([])
            used = 0
        chunks[-1].append(index)
        used += size
    return chunks


def _size(definition: Definition) -> int:
    return len(statements.population(definition, Binder(), "s"))


def _answer(request: AggregateRequest, decision: Decision, scope: AggregateScope) -> dict[str, Any]:
    period = request.group_by is not None and request.group_by.period is not None
    groups = [{"value": _value(g.label, period=period), "users": g.users} for g in decision.groups]
    if period:
        groups.sort(key=lambda g: str(g["value"]))
    answer: dict[str, Any] = {
        "k": scope.threshold.k,
        "total": {"users": decision.total} if decision.total is not None else None,
        "groups": groups,
        "other": {"users": decision.other} if decision.other is not None else None,
        "suppressed_groups": decision.suppressed_groups,
    }
    if scope.ledger is None:
        answer["min_accounts"] = scope.threshold.min_accounts
    return answer


def _value(label: str, *, period: bool) -> str | None:
    if label == NOT_SET:
        return None
    value = label[1:]
    return value.replace("-", "") if period else value


def _cell_name(cell: str) -> str:
    if cell == statements.TOTAL:
        return "total"
    if cell == statements.OTHER:
        return '"other"'
    value = _value(cell[1:], period=False)
    return "the group of users without the property" if value is None else f"group {value!r}"
