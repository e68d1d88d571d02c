"""AST -> ClickHouse SQL.

A query denotes a set of (canonical) users: the AND of its base event ("did it at least once in the
window, with these properties"), its profile filters, its advanced filters and its native conditions. Each
leaf becomes a *user set* — a ``SELECT uk ...`` over one table, grouped per canonical user key — and the
boolean structure becomes ``uk IN (...)`` predicates over a driving set (the first positive conjunct, or
every known user of the account when the query is only negative).

Tenant isolation is structural: ``_Statement`` is the only place a table name is written, and every table it
writes comes with ``account_id = <bound account>``; no AST node can produce SQL outside a statement.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Final, Literal

from tapwire_core.warehouse import schema
from tapwire_query.cql import ast
from tapwire_query.cql.errors import CqlError
from tapwire_query.cql.field_path import ROOT, FieldPath
from tapwire_query.cql.identity import aliases_clause, canonical
from tapwire_query.cql.predicates import JsonValue, event_property, session_property, value_predicate
from tapwire_query.cql.sql import Binder, Compiled

_COUNT_SQL: Final = {
    "equals": "=",
    "greater_than": ">",
    "greater_than_equals": ">=",
    "less_than": "<",
    "less_than_equals": "<=",
}
_GEO_KEYS: Final = ("Country", "Region", "City")
UK: Final = "uk"
# ClickHouse's default max_query_size, which chDB applies too (a per-statement setting cannot raise it: the
# statement is parsed before its settings apply). Profile filters are the largest part, about 1.2 KB each.
MAX_SQL_BYTES: Final = 262_144
_DAY_MS: Final = 86_400_000


@dataclass(frozen=True)
class CompileOptions:
    """``today`` anchors relative windows (UTC); ``snapshot_ms`` hides events received after it (stable
    cursors); ``cluster`` makes subquery sets ``GLOBAL`` so they are built once on the initiator."""

    today: dt.date
    snapshot_ms: int | None = None
    cluster: bool = False


# The user-set algebra the compiler builds before printing SQL.


@dataclass(frozen=True)
class _Events:
    """How an events-table set was built, so sets over the same table can share one scan: members are the
    users with at least one row meeting ``condition`` whose count ``k`` of such rows also passes ``test``
    (SQL with ``{k}`` where the count goes; ``None`` for plain existence). ``final``: counts need ``FINAL``."""

    condition: str
    final: bool
    test: str | None = None

    def member(self, k: str) -> str:
        return f"{k} > 0" if self.test is None else f"{k} > 0 AND {self.test.replace('{k}', k)}"


@dataclass(frozen=True)
class _Set:
    """``sql`` selects each member once; ``scan``, when set, selects members with repeats (cheaper to count);
    ``events``, when set, says how to recompute membership inside a shared events scan.

    Every node of the algebra carries ``events_leaves``: how many events-table sets it combines, or ``None``
    if it involves anything else. Computed once when the node is built (from its parts' counts), so deciding
    where scans can be shared reads each node once."""

    sql: str
    scan: str | None = None
    events: _Events | None = None

    @property
    def events_leaves(self) -> int | None:
        return 1 if self.events is not None else None


@dataclass(frozen=True)
class _Not:
    inner: _Users
    events_leaves: int | None = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "events_leaves", self.inner.events_leaves)


@dataclass(frozen=True)
class _And:
    parts: tuple[_Users, ...]
    events_leaves: int | None = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "events_leaves", _sum_leaves(self.parts))


@dataclass(frozen=True)
class _Or:
    parts: tuple[_Users, ...]
    events_leaves: int | None = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "events_leaves", _sum_leaves(self.parts))


@dataclass(frozen=True)
class _Everyone:
    @property
    def events_leaves(self) -> int | None:
        return None


def _sum_leaves(parts: tuple[_Users, ...]) -> int | None:
    total = 0
    for part in parts:
        leaves = part.events_leaves
        if leaves is None:
            return None
        total += leaves
    return total


_Users = _Set | _Not | _And | _Or | _Everyone


class _Statement:
    """One statement being compiled: its binder, the bound account and the options."""

    def __init__(self, account_id: str, options: CompileOptions) -> None:
        self.binder = Binder()
        self.options = options
        self.account = self.binder.string(account_id)
        self.in_ = "GLOBAL IN" if options.cluster else "IN"
        self._snapshot: str | None = None

    def finish(self, body: str, *, merges: bool = True) -> Compiled:
        """The statement around ``body``; ``merges`` defines the alias map ``canonical()`` reads (every
        statement that reads user keys needs it). Raises ``CqlError`` when the statement is longer than
        ClickHouse parses (``MAX_SQL_BYTES``): a client error to narrow, not a statement the warehouse refuses."""
        sql = f"WITH {aliases_clause(self.account)}\n{body}" if merges else body
        if len(sql) > MAX_SQL_BYTES:  # the SQL is ASCII: every value is a bound parameter
            raise CqlError(
                f"query: too large once compiled ({len(sql)} bytes of SQL, at most {MAX_SQL_BYTES}); "
                "use fewer conditions"
            )
        return self.binder.finish(sql)

    # Table scans: the only place tables are named, each with its tenant condition.

    def events(self, condition: str, columns: str = f"{canonical()} AS {UK}", *, final: bool = True) -> str:
        """Rows of the account's events meeting ``condition``. ``final`` collapses redelivered copies (needed
        wherever rows are counted or listed; existence checks skip it)."""
        snapshot = ""
        if self.options.snapshot_ms is not None:
            # Bound once per statement: a scan may be built and then replaced by a shared one (``fuse``), and
            # every bound value must appear in the final SQL.
            if self._snapshot is None:
                self._snapshot = self.binder.bind(self.options.snapshot_ms, "Int64")
            snapshot = f" AND received_at <= fromUnixTimestamp64Milli({self._snapshot}, 'UTC')"
        return (
            f"SELECT {columns} FROM {schema.EVENTS}{' FINAL' if final else ''} "
            f"WHERE account_id = {self.account}{snapshot} AND ({condition})"
        )

    def profile_values(self, key: str) -> str:
        """Per canonical user: the value of profile property ``key`` (``v``, JSON) and whether it is deleted
        (``d``): the latest set across the user's keys, with every ``$incr``/``$decr`` at or after it added
        on (on 0 when the set is missing, deleted or not a number), as profile reads fold them. List
        operators (``$add``/``$remove``) are not folded here."""
        bound = self.binder.string(key)
        sets = (
            f"SELECT {canonical()} AS {UK}, argMax(value, ts) AS v, argMax(deleted, ts) AS d, max(ts) AS base_ts "
            f"FROM {schema.PROFILE_PROPS} WHERE account_id = {self.account} AND key = {bound} GROUP BY {UK}"
        )
        ops = (
            f"SELECT {canonical()} AS {UK}, ts, if(op = '$incr', 1, -1) * JSONExtractFloat(operand) AS x "
            f"FROM {schema.PROFILE_OPS} FINAL WHERE account_id = {self.account} AND key = {bound} "
            "AND op IN ('$incr', '$decr')"
        )
        # A missing set joins as base_ts = 0 (join_use_nulls is off), so every operator counts.
        deltas = (
            f"SELECT o.{UK} AS {UK}, sum(o.x) AS delta, count() AS n FROM ({ops}) AS o "
            f"LEFT JOIN ({sets}) AS s ON s.{UK} = o.{UK} WHERE o.ts >= s.base_ts GROUP BY o.{UK}"
        )
        return (
            f"SELECT {UK}, multiIf(n = 0, v, d = 0 AND JSONType(v) IN ('Int64', 'UInt64', 'Double'), "
            "toString(JSONExtractFloat(v) + delta), toString(delta)) AS v, if(n = 0, d, 0) AS d "
            f"FROM ({sets}) AS s FULL OUTER JOIN ({deltas}) AS o USING ({UK})"
        )

    def profile_seen(self) -> str:
        return (
            f"SELECT {canonical()} AS {UK}, min(first_seen) AS f, max(last_seen) AS l "
            f"FROM {schema.PROFILES} WHERE account_id = {self.account} GROUP BY {UK}"
        )

    def everyone(self) -> str:
        return (
            f"SELECT DISTINCT {canonical()} AS {UK} FROM {schema.PROFILES} WHERE account_id = {self.account}"
        )

    # Event conditions.

    def event_condition(self, event: ast.EventFilter, where: FieldPath) -> str:
        first, last = event.window(self.options.today)
        parts = [
            f"name = {self.binder.string(event.event_name)}",
            f"toDate(ts) BETWEEN {self.binder.bind(first.isoformat(), 'Date')} "
            f"AND {self.binder.bind(last.isoformat(), 'Date')}",
        ]
        parts += [event_property(self.binder, flt) for flt in event.event_properties]
        parts += [
            session_property(self.binder, flt, where.child("session_properties", i))
            for i, flt in enumerate(event.session_properties)
        ]
        return " AND ".join(parts)

    def step_condition(self, step: ast.FunnelStep) -> str:
        parts = [f"name = {self.binder.string(step.event_name)}"]
        parts += [event_property(self.binder, flt) for flt in step.event_properties]
        return " AND ".join(parts)

    # Leaves.

    def did(
        self, events: Sequence[ast.EventFilter], threshold: ast.CountThreshold, where: FieldPath
    ) -> _Users:
        """Users whose number of events matching any of ``events`` satisfies ``threshold``.

        A threshold that zero satisfies (``less_than 3``) includes users who never did it: it is compiled
        as "not among the users whose positive count fails it".
        """
        condition = " OR ".join(
            f"({self.event_condition(event, where.child(i) if len(events) > 1 else where)})"
            for i, event in enumerate(events)
        )
        existence = threshold.operator == "greater_than_equals" and threshold.value <= 1
        scan = self.events(condition, final=not existence)
        if existence:
            return _Set(f"{scan} GROUP BY {UK}", scan=scan, events=_Events(condition, final=False))
        passes = f"{{k}} {_COUNT_SQL[threshold.operator]} {self._count(threshold.value)}"
        if threshold.holds(0):
            failing = _Events(condition, final=True, test=f"NOT ({passes})")
            return _Not(_Set(f"{scan} GROUP BY {UK} HAVING {failing.member('count()')}", events=failing))
        passing = _Events(condition, final=True, test=passes)
        return _Set(f"{scan} GROUP BY {UK} HAVING {passing.member('count()')}", events=passing)

    def _count(self, value: int) -> str:
        return self.binder.bind(value, "UInt64")

    def aggregate(self, spec: ast.AggregateSpec, where: FieldPath) -> _Users:
        value = JsonValue("properties", [self.binder.string(spec.property)])
        numeric = f"{value.json_type} IN ('Int64', 'UInt64', 'Double')"
        scan = self.events(
            f"{self.event_condition(spec, where)} AND {numeric}",
            f"{canonical()} AS {UK}, {value.float} AS x",
        )
        compared = f"{spec.function}(x) {_COUNT_SQL[spec.operator]} {self.binder.number(spec.value)}"
        return _Set(f"SELECT {UK} FROM ({scan}) GROUP BY {UK} HAVING {compared}")

    def profile(self, flt: ast.PropertyFilter) -> _Users:
        if flt.operator == "does_not_exist":
            exists = flt.model_copy(update={"operator": "exists"})
            return _Not(self.profile(exists))
        condition = value_predicate(self.binder, JsonValue("v", []), flt)
        return _Set(f"SELECT {UK} FROM ({self.profile_values(flt.name)}) WHERE d = 0 AND {condition}")

    def seen(self, column: Literal["f", "l"], window: ast.DateRange) -> _Users:
        first = self.binder.bind(window.from_.isoformat(), "Date")
        last = self.binder.bind(window.to.isoformat(), "Date")
        return _Set(
            f"SELECT {UK} FROM ({self.profile_seen()}) WHERE toDate({column}) BETWEEN {first} AND {last}"
        )

    def funnel(self, spec: ast.FunnelSpec) -> _Users:
        steps = [self.step_condition(step) for step in spec.steps]
        # Aggregate-function parameters must be literals; this one is an int range-checked by the AST.
        window_ms = int(spec.within_seconds) * 1000
        first = self.binder.bind(spec.from_.isoformat(), "Date")
        last = self.binder.bind(spec.to.isoformat(), "Date")
        scan = self.events(
            f"toDate(ts) BETWEEN {first} AND {last} AND ({' OR '.join(f'({s})' for s in steps)})",
            f"{canonical()} AS {UK}, {self._funnel_time(spec)} AS t, "
            + ", ".join(f"({s}) AS s{i}" for i, s in enumerate(steps)),
            # Redelivered copies share their original's time, so they can neither complete nor break a chain.
            final=False,
        )
        flags = ", ".join(f"s{i}" for i in range(len(steps)))
        level = f"windowFunnel({window_ms}, 'strict_increase')(t, {flags})"
        required = self.binder.bind(len(steps), "UInt64")
        return _Set(f"SELECT {UK} FROM ({scan}) GROUP BY {UK} HAVING {level} = {required}")

    def _funnel_time(self, spec: ast.FunnelSpec) -> str:
        """Each row's time in milliseconds for ``windowFunnel``: as UInt32 milliseconds since the window's first
        day when the window fits (under 49 days), which halves the per-user state and is measurably faster
        at millions of rows; as UInt64 milliseconds since the epoch otherwise. Both keep millisecond order."""
        days = (spec.to - spec.from_).days + 1
        if days * _DAY_MS < 2**32:
            start = dt.datetime.combine(spec.from_, dt.time(), tzinfo=dt.UTC)
            origin = self.binder.bind(int(start.timestamp()) * 1000, "Int64")
            return f"toUInt32(toUnixTimestamp64Milli(ts) - {origin})"
        return "toUInt64(toUnixTimestamp64Milli(ts))"

    def retention(self, spec: ast.RetentionSpec, where: FieldPath) -> _Users:
        events = [spec.first, *spec.returned]
        conditions = [
            self.event_condition(event, where.child("first") if i == 0 else where.child("returned", i - 1))
            for i, event in enumerate(events)
        ]
        scan = self.events(
            " OR ".join(f"({c})" for c in conditions),
            f"{canonical()} AS {UK}, " + ", ".join(f"({c}) AS r{i}" for i, c in enumerate(conditions)),
            final=False,
        )
        flags = ", ".join(f"r{i}" for i in range(len(conditions)))
        return _Set(
            f"SELECT {UK} FROM ({scan}) GROUP BY {UK} HAVING arrayAll(x -> x = 1, retention({flags}))"
        )

    # Structure.

    def condition(self, node: ast.Condition, where: FieldPath) -> _Users:
        if isinstance(node, ast.AllOf):
            return _And(tuple(self.condition(c, where.child("all", i)) for i, c in enumerate(node.all)))
        if isinstance(node, ast.AnyOf):
            return _Or(tuple(self.condition(c, where.child("any", i)) for i, c in enumerate(node.any)))
        if isinstance(node, ast.NotOf):
            return _Not(self.condition(node.not_, where.child("not")))
        if isinstance(node, ast.Did):
            return self.did([node.did], node.did.threshold, where.child("did"))
        if isinstance(node, ast.DidNot):
            return _Not(self.did([node.did_not], ast.CountThreshold(), where.child("did_not")))
        if isinstance(node, ast.Aggregate):
            return self.aggregate(node.aggregate, where.child("aggregate"))
        if isinstance(node, ast.Profile):
            return self.profile(node.profile)
        if isinstance(node, ast.FirstSeen):
            return self.seen("f", node.first_seen)
        if isinstance(node, ast.LastSeen):
            return self.seen("l", node.last_seen)
        if isinstance(node, ast.Funnel):
            return self.funnel(node.funnel)
        return self.retention(node.retention, where.child("retention"))

    def query(self, query: ast.CqlQuery, *, include_base: bool) -> _Users:
        parts: list[_Users] = []
        base = query.base_event()
        if include_base and base is not None:
            parts.append(self.did([base], ast.CountThreshold(), ROOT))
        common = query.common_profile_properties
        if common is not None:
            for flt in (*common.profile_fields, *common.demographics, *common.technographics):
                parts.append(self.profile(flt))
            if common.geo_fields:
                parts.append(_Or(tuple(self._geo(path) for path in common.geo_fields)))
        advanced = query.advanced_query
        if advanced is not None:
            for i, sub in enumerate(advanced.did_all):
                parts.append(self.did([sub], sub.threshold, ROOT.child("advanced_query", "did_all", i)))
            if advanced.did_any is not None:
                parts.append(self._did_any(advanced.did_any))
            for i, sub in enumerate(advanced.did_none):
                parts.append(
                    _Not(self.did([sub], sub.threshold, ROOT.child("advanced_query", "did_none", i)))
                )
        for i, condition in enumerate(query.conditions):
            parts.append(self.condition(condition, ROOT.child("conditions", i)))
        if not parts:
            return _Everyone()
        return self.fuse(parts[0] if len(parts) == 1 else _And(tuple(parts)))

    # Sharing scans: a boolean combination of events-table sets is one GROUP BY over the union of their rows.

    def fuse(self, node: _Users) -> _Users:
        """``node`` with every boolean combination of two or more events-table sets replaced by one set that
        scans their rows once and tests each member's per-set counts in ``HAVING`` (the same users, fewer
        passes: "opened but never bought" reads both events together instead of building a set to exclude).

        Visits each node once: a fused combination is not descended into, and every other part is fused
        exactly once (compile time stays linear in the query, however deeply it nests)."""
        if not isinstance(node, _And | _Or | _Not):
            return node
        leaves = node.events_leaves
        if leaves is not None and leaves >= 2:
            # The shared scan sees only users with some matching row, so it must be false for users with none.
            return _Not(self._fused(_Not(node))) if _holds_without_events(node) else self._fused(node)
        if isinstance(node, _Not):
            return _Not(self.fuse(node.inner))
        sharing = tuple(p for p in node.parts if p.events_leaves is not None)
        if len(sharing) < 2:
            return type(node)(tuple(self.fuse(p) for p in node.parts))
        rest = tuple(self.fuse(p) for p in node.parts if p.events_leaves is None)
        return type(node)((self.fuse(type(node)(sharing)), *rest))

    def _fused(self, node: _Users) -> _Set:
        leaves: list[_Events] = []
        formula: list[str] = []
        _formula(node, leaves, formula)
        having = "".join(formula)
        scan = self.events(
            " OR ".join(f"({condition})" for condition in dict.fromkeys(leaf.condition for leaf in leaves)),
            f"{canonical()} AS {UK}, "
            + ", ".join(f"({leaf.condition}) AS f{i}" for i, leaf in enumerate(leaves)),
            final=any(leaf.final for leaf in leaves),
        )
        return _Set(f"SELECT {UK} FROM ({scan}) GROUP BY {UK} HAVING {having}")

    def _did_any(self, did_any: ast.DidAny) -> _Users:
        where = ROOT.child("advanced_query", "did_any", "any_events")
        if did_any.operator is None or did_any.value is None:
            return _Or(
                tuple(
                    self.did([sub], sub.threshold, where.child(i)) for i, sub in enumerate(did_any.any_events)
                )
            )
        threshold = ast.CountThreshold(operator=did_any.operator, value=did_any.value)
        return self.did(did_any.any_events, threshold, where)

    def _geo(self, path: Sequence[str]) -> _Users:
        parts = tuple(
            self.profile(ast.PropertyFilter.model_validate({"name": key, "value": part}))
            for key, part in zip(_GEO_KEYS, path, strict=False)
        )
        return parts[0] if len(parts) == 1 else _And(parts)

    # Printing the algebra. Fragments go to one list joined once: nesting strings inside strings would copy
    # every deeper level again at each level above it.

    def users(self, node: _Users) -> str:
        """``SELECT uk`` of the distinct canonical users in ``node``."""
        if isinstance(node, _Set):
            return node.sql
        out: list[str] = []
        if isinstance(node, _And) and any(isinstance(p, _Set) for p in node.parts):
            driver = next(p for p in node.parts if isinstance(p, _Set))
            out += [f"SELECT {UK} FROM (", driver.sql, ") WHERE "]
            self.predicate(_And(tuple(p for p in node.parts if p is not driver)), out)
            return "".join(out)
        if isinstance(node, _Everyone):
            return self.everyone()
        out += [f"SELECT {UK} FROM (", self.everyone(), ") WHERE "]
        self.predicate(node, out)
        return "".join(out)

    def predicate(self, node: _Users, out: list[str]) -> None:
        """Append to ``out`` the condition on ``uk`` that holds for the users in ``node``."""
        if isinstance(node, _Set):
            out += [f"{UK} {self.in_} (", node.sql, ")"]
        elif isinstance(node, _Not):
            out.append("NOT (")
            self.predicate(node.inner, out)
            out.append(")")
        elif isinstance(node, _And | _Or) and node.parts:
            joiner = " AND " if isinstance(node, _And) else " OR "
            for i, part in enumerate(node.parts):
                out.append(f"{joiner}(" if i else "(")
                self.predicate(part, out)
                out.append(")")
        else:
            out.append("1")


def _holds_without_events(node: _Users) -> bool:
    """The value of an events-only combination for a user with no matching events."""
    if isinstance(node, _Not):
        return not _holds_without_events(node.inner)
    if isinstance(node, _And):
        return all(_holds_without_events(p) for p in node.parts)
    if isinstance(node, _Or):
        return any(_holds_without_events(p) for p in node.parts)
    return False


def _formula(node: _Users, leaves: list[_Events], out: list[str]) -> None:
    """Append to ``out`` the ``HAVING`` SQL for an events-only combination; leaf ``i`` is counted as
    ``countIf(f{i})`` and appended to ``leaves``."""
    if isinstance(node, _Set) and node.events is not None:
        leaves.append(node.events)
        out.append(f"({node.events.member(f'countIf(f{len(leaves) - 1})')})")
    elif isinstance(node, _Not):
        out.append("NOT ")
        _formula(node.inner, leaves, out)
    elif isinstance(node, _And | _Or):
        joiner = " AND " if isinstance(node, _And) else " OR "
        for i, part in enumerate(node.parts):
            out.append(joiner if i else "(")
            _formula(part, leaves, out)
        out.append(")")
    else:
        raise AssertionError(f"not an events-only combination: {node!r}")


def compile_user_set(query: ast.CqlQuery, *, account_id: str, options: CompileOptions) -> Compiled:
    """``SELECT uk``: the canonical user keys matching ``query`` (each once, in no particular order)."""
    statement = _Statement(account_id, options)
    return statement.finish(statement.users(statement.query(query, include_base=True)))


def compile_user_count(query: ast.CqlQuery, *, account_id: str, options: CompileOptions) -> Compiled:
    """``SELECT n``: how many users match ``query``."""
    statement = _Statement(account_id, options)
    node = statement.query(query, include_base=True)
    if isinstance(node, _Set) and node.scan is not None:
        return statement.finish(f"SELECT uniqExact({UK}) AS n FROM ({node.scan})")
    return statement.finish(f"SELECT count() AS n FROM ({statement.users(node)})")


def compile_user_members(
    query: ast.CqlQuery, *, account_id: str, options: CompileOptions, user_keys: Sequence[str]
) -> Compiled:
    """``SELECT uk``: those of ``user_keys`` that match ``query`` (a membership check for a few users)."""
    statement = _Statement(account_id, options)
    users = statement.users(statement.query(query, include_base=True))
    listed = ", ".join(statement.binder.string(key) for key in user_keys)
    return statement.finish(f"SELECT {UK} FROM ({users}) WHERE {UK} IN ({listed})")


def compile_user_page(
    query: ast.CqlQuery, *, account_id: str, options: CompileOptions, after: str | None, limit: int
) -> Compiled:
    """``SELECT uk`` ordered by key, keys greater than ``after`` only, at most ``limit`` (keyset paging)."""
    statement = _Statement(account_id, options)
    users = statement.users(statement.query(query, include_base=True))
    keyset = f" WHERE {UK} > {statement.binder.string(after)}" if after is not None else ""
    bound = statement.binder.bind(limit, "UInt64")
    return statement.finish(f"SELECT {UK} FROM ({users}){keyset} ORDER BY {UK} LIMIT {bound}")


def _base_rows(statement: _Statement, query: ast.CqlQuery, columns: str, *, extra: str | None = None) -> str:
    """Rows of the base event, restricted to users matching the rest of the query (and to ``extra``)."""
    base = query.base_event()
    if base is None:
        raise CqlError("event_name: this endpoint needs a base event (event_name, from, to)")
    condition = statement.event_condition(base, ROOT)
    if extra is not None:
        condition = f"{condition} AND {extra}"
    rest = statement.query(query, include_base=False)
    if not isinstance(rest, _Everyone):
        condition = f"({condition}) AND {canonical()} {statement.in_} ({statement.users(rest)})"
    return statement.events(condition, columns)


EVENT_ROW_COLUMNS: Final = (
    f"event_id, name, toUnixTimestamp64Milli(ts) AS ts_ms, {canonical()} AS {UK}, identity, object_id, "
    "email, phone, properties, context"
)


def compile_event_rows(
    query: ast.CqlQuery,
    *,
    account_id: str,
    options: CompileOptions,
    after: tuple[int, str] | None,
    limit: int,
) -> Compiled:
    """Base-event rows ordered by (ts, event_id), strictly after the ``after`` key, at most ``limit``."""
    statement = _Statement(account_id, options)
    keyset = None
    if after is not None:
        ts_ms, event_id = after
        bound_ts, bound_id = statement.binder.bind(ts_ms, "Int64"), statement.binder.string(event_id)
        # The plain range on ts lets the primary key (by day) skip everything before the last page.
        keyset = (
            f"ts >= fromUnixTimestamp64Milli({bound_ts}, 'UTC') "
            f"AND (toUnixTimestamp64Milli(ts), event_id) > ({bound_ts}, {bound_id})"
        )
    rows = _base_rows(statement, query, EVENT_ROW_COLUMNS, extra=keyset)
    bound = statement.binder.bind(limit, "UInt64")
    return statement.finish(f"SELECT * FROM ({rows}) ORDER BY ts_ms, event_id LIMIT {bound}")


def compile_event_count(query: ast.CqlQuery, *, account_id: str, options: CompileOptions) -> Compiled:
    """``SELECT n``: how many base events match ``query``."""
    statement = _Statement(account_id, options)
    return statement.finish(f"SELECT count() AS n FROM ({_base_rows(statement, query, '1 AS one')})")


TopSource = Literal["event_properties", "session_properties", "profile_fields"]


def compile_top(
    query: ast.CqlQuery,
    *,
    account_id: str,
    options: CompileOptions,
    source: TopSource,
    name: str,
    top_n: int,
    descending: bool,
) -> Compiled:
    """``SELECT value, n``: the ``top_n`` most (or least) frequent values among the base events of one event
    property, session property, or profile property of the user who did them (its current value)."""
    statement = _Statement(account_id, options)
    order = "DESC" if descending else "ASC"
    if source == "profile_fields":
        value = JsonValue("v", [])
        users = f"SELECT {UK}, {value.display} AS value FROM ({statement.profile_values(name)}) WHERE d = 0"
        rows = _base_rows(statement, query, f"{canonical()} AS {UK}")
        counted = f"SELECT value FROM ({rows}) AS r INNER JOIN ({users}) AS p USING ({UK})"
    else:
        doc = "properties" if source == "event_properties" else "context"
        value = JsonValue(doc, [statement.binder.string(name)])
        rows = _base_rows(statement, query, f"{value.display} AS value, {value.exists} AS present")
        counted = f"SELECT value FROM ({rows}) WHERE present"
    bound = statement.binder.bind(top_n, "UInt64")
    return statement.finish(
        f"SELECT value, count() AS n FROM ({counted}) GROUP BY value ORDER BY n {order}, value ASC LIMIT {bound}"
    )


TrendType = Literal["daily", "weekly", "monthly"]
_PERIOD: Final[dict[TrendType, str]] = {
    "daily": "toDate(ts)",
    "weekly": "toMonday(toDate(ts))",
    "monthly": "toStartOfMonth(toDate(ts))",
}


def compile_trends(
    query: ast.CqlQuery,
    *,
    account_id: str,
    options: CompileOptions,
    trend: TrendType,
    unique: bool,
    sum_property: str | None,
) -> Compiled:
    """``SELECT period, value`` per day/week/month: event count, unique users, or a property's sum."""
    statement = _Statement(account_id, options)
    columns = f"{_PERIOD[trend]} AS period, {canonical()} AS {UK}"
    if sum_property is not None:
        value = JsonValue("properties", [statement.binder.string(sum_property)])
        columns += f", ifNull({value.number}, 0) AS x"
        measure = "sum(x)"
    else:
        measure = f"uniqExact({UK})" if unique else "count()"
    rows = _base_rows(statement, query, columns)
    return statement.finish(
        f"SELECT period, {measure} AS value FROM ({rows}) GROUP BY period ORDER BY period"
    )


def compile_active_users(
    *, account_id: str, options: CompileOptions, since_ms: int, until_ms: int, new_since_ms: int
) -> Compiled:
    """``SELECT n, new``: how many users have an event with a time in [``since_ms``, ``until_ms``], and how many
    of them were first seen at or after ``new_since_ms`` (epoch milliseconds, UTC)."""
    statement = _Statement(account_id, options)
    since, until = statement.binder.bind(since_ms, "Int64"), statement.binder.bind(until_ms, "Int64")
    new_since = statement.binder.bind(new_since_ms, "Int64")
    active = statement.events(
        f"ts BETWEEN fromUnixTimestamp64Milli({since}, 'UTC') AND fromUnixTimestamp64Milli({until}, 'UTC')",
        final=False,
    )
    return statement.finish(
        f"SELECT count() AS n, countIf(first_ms >= {new_since}) AS new "
        f"FROM ({active} GROUP BY {UK}) AS active "
        f"LEFT JOIN (SELECT {UK}, toUnixTimestamp64Milli(f) AS first_ms FROM ({statement.profile_seen()})) AS seen "
        f"USING ({UK})"
    )


def compile_event_name_known(*, account_id: str, options: CompileOptions, name: str) -> Compiled:
    """``SELECT one``: one row when the account has recorded an event called ``name``, none otherwise."""
    statement = _Statement(account_id, options)
    condition = f"name = {statement.binder.string(name)}"
    return statement.finish(f"{statement.events(condition, '1 AS one', final=False)} LIMIT 1", merges=False)


GroupKind = Literal["profile_property", "event_property", "period"]
_PERIODS: Final[dict[str, TrendType]] = {"day": "daily", "week": "weekly", "month": "monthly"}
NOT_SET: Final = "n"
"""The group label of users without the grouping property; every other label is ``'v'`` + the value."""


@dataclass(frozen=True)
class Grouping:
    """How an aggregate splits its users: by a profile property's current value, by a property of the base
    event, or by the ``day`` / ``week`` / ``month`` of the base event (``name``)."""

    kind: GroupKind
    name: str


def compile_user_groups(
    query: ast.CqlQuery, *, account_id: str, options: CompileOptions, grouping: Grouping | None
) -> Compiled:
    """``SELECT uk, g``: each user matching ``query`` once per group it falls in (a user may fall in several
    groups of an event property or a period, in exactly one of a profile property). ``g`` is ``'v'`` followed
    by the value (strings as they are, booleans True/False, numbers as JSON text, a period's first day as
    YYYY-MM-DD) or ``NOT_SET``; without a grouping every user gets ``NOT_SET``. Raises ``CqlError`` when an
    event grouping has no base event."""
    statement = _Statement(account_id, options)
    if grouping is None or grouping.kind == "profile_property":
        users = statement.users(statement.query(query, include_base=True))
        if grouping is None:
            return statement.finish(f"SELECT DISTINCT {UK}, {_label('')} AS g FROM ({users})")
        display = JsonValue("v", []).display
        values = (
            f"SELECT {UK}, {_label(display)} AS g "
            f"FROM ({statement.profile_values(grouping.name)}) WHERE d = 0"
        )
        # A user without the property has no row on the right: the join gives '' (join_use_nulls is off).
        return statement.finish(
            f"SELECT DISTINCT u.{UK} AS {UK}, if(p.g = '', '{NOT_SET}', p.g) AS g "
            f"FROM ({users}) AS u LEFT JOIN ({values}) AS p ON p.{UK} = u.{UK}"
        )
    if grouping.kind == "event_property":
        value = JsonValue("properties", [statement.binder.string(grouping.name)])
        label = f"if({value.exists}, {_label(value.display)}, '{NOT_SET}')"
    else:
        label = _label(f"toString({_PERIOD[_PERIODS[grouping.name]]})")
    rows = _base_rows(statement, query, f"{canonical()} AS {UK}, {label} AS g")
    return statement.finish(f"SELECT DISTINCT {UK}, g FROM ({rows})")


def _label(value: str) -> str:
    """SQL for the group label of ``value`` (SQL of a String): ``NOT_SET`` when empty."""
    if not value:
        return f"'{NOT_SET}'"
    return f"if(({value}) = '', '{NOT_SET}', concat('v', {value}))"
