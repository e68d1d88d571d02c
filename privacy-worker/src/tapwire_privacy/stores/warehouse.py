"""Privacy handlers for warehouse tables: batched mutations, exports and a physical-removal check.

Which columns name a subject is declared per table in ``WAREHOUSE_SPECS``; the SQL is built from that spec with
every value bound as a server-side parameter. Erasure is one ``ALTER TABLE ... DELETE`` per table and account
for any number of subjects. Its ``WHERE`` compares ``cityHash64(column)`` against a bound ``Array(UInt64)`` of
the identifiers' hashes rather than the identifiers themselves, because ClickHouse keeps a mutation's command
text (parameters inlined) in ``system.mutations`` and on disk; the log then holds hashes, not email addresses.

Verification proves physical removal, not hiding: it waits until ``system.mutations`` shows every mutation of
the table done (a finished mutation has rewritten every part that held a matching row), then counts matching
rows *without* ``FINAL`` across all active parts (so rows a ReplacingMergeTree merge has not yet collapsed are
counted too) and without the lightweight-delete mask (``apply_deleted_mask = 0``: a row a ``DELETE FROM`` hides
is still on disk, and an ``ALTER TABLE … DELETE`` does not see it, so the erasure then applies the mask), and
requires zero. A detached part cannot be read, so while one exists the check does not finish. The parts a
mutation replaced are deleted by the server after ``old_parts_lifetime`` (8 minutes by default); the proof
names how many there are and that time.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections import defaultdict
from collections.abc import AsyncGenerator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

import orjson

from tapwire_core.privacy.scope import Scope
from tapwire_core.warehouse import Warehouse, schema
from tapwire_core.warehouse.connect import checked_identifier
from tapwire_privacy.stores.base import EXPORT_BATCH_ROWS, StoreHandler, Verification

# Counted rows include those a lightweight delete (``DELETE FROM``) only hides: they are still on disk.
_ALL_ROWS: Final = " SETTINGS apply_deleted_mask = 0"
# Many subjects per statement, but bounded: clickhouse-connect sends parameters in the URL.
MAX_VALUES_PER_STATEMENT: Final = 20_000
PROFILE_IDENTIFIER_FIELDS: Final = {"Email": "email", "Phone": "phone", "Identity": "identity"}


@dataclass(frozen=True)
class KeyColumn:
    """A column that names a subject: ``prefix`` is the subject-key kind of its values (``e`` for email), or
    None when the column holds whole subject keys (``user_key``)."""

    column: str
    prefix: str | None = None

    def values(self, keys: frozenset[str]) -> list[str]:
        if self.prefix is None:
            return sorted(keys)
        head = self.prefix + ":"
        return sorted(k[len(head) :] for k in keys if k.startswith(head))

    def key_of(self, value: object) -> str | None:
        if not isinstance(value, str) or not value:
            return None
        return value if self.prefix is None else f"{self.prefix}:{value}"


_IDENTIFIER_COLUMNS: Final = (
    KeyColumn("user_key"),
    KeyColumn("identity", "i"),
    KeyColumn("object_id", "o"),
    KeyColumn("email", "e"),
    KeyColumn("phone", "p"),
    KeyColumn("anonymous_id", "a"),
)


@dataclass(frozen=True)
class SortingKeyPart:
    """One expression of a table's sorting key after ``account_id``, and the type its values are bound as."""

    expression: str
    type: str


@dataclass(frozen=True)
class WarehouseTableSpec:
    """``narrow_by``: a column of the table's sorting key holding the user key, used to narrow an export's
    ``FINAL`` read to the subject's rows (see ``WarehouseTableHandler.export``). ``sorting_key``: the table's
    sorting key after ``account_id`` (as the migrations create it), the order a tenant-wide export pages in.
    ``projections``: the table's projections, second copies of its rows inside every part; each holds every
    key column, so the proof counts them with the same condition."""

    table: str
    key_columns: tuple[KeyColumn, ...]
    export_order: str
    sorting_key: tuple[SortingKeyPart, ...]
    narrow_by: str | None = None
    projections: tuple[str, ...] = ()

    def after(self, cursor: Sequence[str], params: dict[str, Any]) -> str:
        """The condition ``(k0, k1, …) > cursor`` on the sorting key, spelled out as ``k0 > c0 OR (k0 = c0 AND
        (…))`` so ClickHouse's primary-key analysis skips every granule before the cursor (it does not do so
        for a tuple comparison). ``params`` receives the cursor's values."""
        condition = ""
        for index in reversed(range(len(self.sorting_key))):
            part = self.sorting_key[index]
            params[f"c{index}"] = cursor[index]
            value = f"{{c{index}:{part.type}}}"
            condition = (
                f"{part.expression} > {value}"
                if not condition
                else f"{part.expression} > {value} OR ({part.expression} = {value} AND ({condition}))"
            )
        return f"({condition})"


_STRING = "String"


WAREHOUSE_SPECS: Final[dict[str, WarehouseTableSpec]] = {
    spec.table: spec
    for spec in (
        WarehouseTableSpec(
            schema.EVENTS,
            _IDENTIFIER_COLUMNS,
            "ts, event_id",
            (
                SortingKeyPart("name", _STRING),
                SortingKeyPart("toDate(ts)", "Date"),
                SortingKeyPart("user_key", _STRING),
                SortingKeyPart("event_id", _STRING),
            ),
            "user_key",
            (schema.EVENTS_BY_PERSON,),
        ),
        WarehouseTableSpec(
            schema.PROFILES,
            _IDENTIFIER_COLUMNS,
            "user_key",
            (SortingKeyPart("user_key", _STRING),),
            "user_key",
        ),
        WarehouseTableSpec(
            schema.PROFILE_PROPS,
            (KeyColumn("user_key"),),
            "user_key, key",
            (SortingKeyPart("user_key", _STRING), SortingKeyPart("key", _STRING)),
            "user_key",
        ),
        WarehouseTableSpec(
            schema.PROFILE_OPS,
            (KeyColumn("user_key"),),
            "user_key, key, ts, event_id",
            (
                SortingKeyPart("user_key", _STRING),
                SortingKeyPart("key", _STRING),
                SortingKeyPart("ts", "DateTime64(3, 'UTC')"),
                SortingKeyPart("event_id", _STRING),
            ),
            "user_key",
        ),
        WarehouseTableSpec(
            schema.USER_ALIASES,
            (KeyColumn("alias_key"), KeyColumn("canonical_key")),
            "alias_key, version",
            (SortingKeyPart("alias_key", _STRING),),
        ),
    )
}


def _make_jsonable(row: dict[str, Any]) -> None:
    """Turn the row's values JSON-ready in place (a page is not copied)."""
    for name, value in row.items():
        if isinstance(value, dt.datetime | bytes):
            row[name] = _jsonable(value)


def _jsonable(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        return value.isoformat().replace("+00:00", "Z")
    if isinstance(value, bytes):
        return value.decode(errors="replace")
    return value


class WarehouseTableHandler(StoreHandler):
    """Privacy operations on one warehouse table (``cluster``: mutate ``<table>_local`` on every node)."""

    def __init__(
        self,
        spec: WarehouseTableSpec,
        warehouse: Warehouse,
        *,
        cluster: str | None = None,
        mutation_poll_s: float = 0.05,
        mutation_wait_s: float = 30.0,
        export_batch_rows: int = EXPORT_BATCH_ROWS,
    ) -> None:
        self.spec = spec
        self.name = f"warehouse.{spec.table}"
        self._warehouse = warehouse
        self._cluster = None if cluster is None else checked_identifier(cluster)
        self._poll_s = mutation_poll_s
        self._wait_s = mutation_wait_s
        self._batch_rows = export_batch_rows

    # Predicates.

    def _match(self, keys: frozenset[str] | None, params: dict[str, Any]) -> str:
        """``account_id = … AND (col IN … OR …)``; ``params`` receives the bound values."""
        if keys is None:
            return "account_id = {account:String}"
        parts = []
        for index, column in enumerate(self.spec.key_columns):
            values = column.values(keys)
            if values:
                params[f"k{index}"] = values
                parts.append(f"{column.column} IN {{k{index}:Array(String)}}")
        return "account_id = {account:String} AND (" + (" OR ".join(parts) or "0") + ")"

    async def _hashed_match(self, keys: frozenset[str], params: dict[str, Any]) -> str:
        """Like ``_match`` but on ``cityHash64`` of each column, for statements whose text ClickHouse keeps."""
        parts = []
        for index, column in enumerate(self.spec.key_columns):
            values = column.values(keys)
            if not values:
                continue
            rows = await self._warehouse.query(
                "SELECT arrayMap(x -> cityHash64(x), {v:Array(String)}) AS h", {"v": values}
            )
            params[f"h{index}"] = list(rows[0]["h"])
            parts.append(f"cityHash64({column.column}) IN {{h{index}:Array(UInt64)}}")
        return "account_id = {account:String} AND (" + (" OR ".join(parts) or "0") + ")"

    def _storage(self) -> str:
        table = self.spec.table
        return f"{table}_local ON CLUSTER {self._cluster}" if self._cluster else table

    # Operations.

    async def export(self, scope: Scope) -> AsyncGenerator[list[dict[str, Any]], None]:
        """The scope's rows as queries see them (``FINAL``).

        A whole account is read in pages of ``export_batch_rows`` in the order of the table's sorting key, each
        page starting after the last row of the one before (keyset paging): the key condition lets ClickHouse
        skip what was read, the order lets it read in order and stop at the limit, so every page costs about its
        own rows and the worker holds one page at a time, whatever the account's size. ``FINAL`` folds every
        version of a sorting key into one row, so no row is split across pages.

        A subject's rows are one read, narrowed first (``PREWHERE``) to the user keys of the rows that match in
        any version: ``FINAL`` alone would read every column of every row of the account before filtering. The
        user key is part of the sorting key, so every version ``FINAL`` folds together has the same one: the
        narrowing keeps or drops whole rows and the result is that of ``FINAL`` followed by the match."""
        if scope.keys is None:
            async for page in self._account_pages(scope.account_id):
                yield page
            return
        table = self.spec.table
        params: dict[str, Any] = {"account": scope.account_id}
        where = self._match(scope.keys, params)
        narrow = self.spec.narrow_by
        read = (
            f"SELECT * FROM {table} FINAL WHERE {where}"
            if narrow is None
            # On a cluster the table is Distributed: GLOBAL runs the inner read once and ships its keys.
            else f"SELECT * FROM {table} FINAL PREWHERE account_id = {{account:String}} AND {narrow} "
            f"{'GLOBAL IN' if self._cluster else 'IN'} (SELECT {narrow} FROM {table} WHERE {where}) WHERE {where}"
        )
        rows = await self._warehouse.query(f"{read} ORDER BY {self.spec.export_order}", params)
        for start in range(0, len(rows), self._batch_rows):
            yield [
                {name: _jsonable(value) for name, value in row.items()}
                for row in rows[start : start + self._batch_rows]
            ]

    async def _account_pages(self, account_id: str) -> AsyncGenerator[list[dict[str, Any]], None]:
        key = self.spec.sorting_key
        cursor_names = [f"_cursor{i}" for i in range(len(key))]
        # As text, so a value goes back bound exactly as it came (a DateTime64 keeps its milliseconds).
        cursor_columns = ", ".join(
            f"toString({part.expression}) AS {name}" for part, name in zip(key, cursor_names, strict=True)
        )
        order = ", ".join(part.expression for part in key)
        cursor: list[str] | None = None
        while True:
            params: dict[str, Any] = {"account": account_id}
            after = "" if cursor is None else " AND " + self.spec.after(cursor, params)
            rows = await self._warehouse.query(
                f"SELECT *, {cursor_columns} FROM {self.spec.table} FINAL "
                f"WHERE account_id = {{account:String}}{after} ORDER BY {order} LIMIT {int(self._batch_rows)}",
                params,
            )
            if not rows:
                return
            cursor = [str(rows[-1][name]) for name in cursor_names]
            for row in rows:
                for name in cursor_names:
                    del row[name]
                _make_jsonable(row)
            yield rows
            if len(rows) < self._batch_rows:
                return

    async def count(self, scopes: Sequence[Scope]) -> dict[str, int]:
        """Rows per request held in every active part, those a lightweight delete only hides included."""
        return await self._count_in(self.spec.table, scopes)

    async def count_in_projections(self, scopes: Sequence[Scope]) -> dict[str, int]:
        """Rows per request held in the table's projections (their own copies inside every active part)."""
        counts = {scope.request_id: 0 for scope in scopes}
        for projection in self.spec.projections:
            found = await self._count_in(self._projection_source(projection), scopes)
            for request_id, n in found.items():
                counts[request_id] += n
        return counts

    def _projection_source(self, projection: str) -> str:
        """The rows of ``projection`` as a table expression; on a cluster, every replica's copy (a projection is
        per replica, so each one must be clean)."""
        checked_identifier(projection)
        if self._cluster:
            database = checked_identifier(self._warehouse.database)
            return (
                f"clusterAllReplicas({self._cluster}, "
                f"mergeTreeProjection({database}, {self._local_table()}, {projection}))"
            )
        return f"mergeTreeProjection(currentDatabase(), {self.spec.table}, {projection})"

    async def _count_in(self, source: str, scopes: Sequence[Scope]) -> dict[str, int]:
        counts = {scope.request_id: 0 for scope in scopes}
        for account_id, group in _by_account(scopes).items():
            tenant = [s for s in group if s.tenant]
            for scope in tenant:
                rows = await self._warehouse.query(
                    f"SELECT count() AS n FROM {source} WHERE account_id = {{account:String}}{_ALL_ROWS}",
                    {"account": account_id},
                )
                counts[scope.request_id] = int(rows[0]["n"])
            subjects = [s for s in group if not s.tenant]
            if not subjects:
                continue
            union = frozenset().union(*(s.keys or frozenset() for s in subjects))
            params: dict[str, Any] = {"account": account_id}
            where = self._match(union, params)
            columns = ", ".join(c.column for c in self.spec.key_columns)
            rows = await self._warehouse.query(
                f"SELECT {columns}, count() AS n FROM {source} WHERE {where} GROUP BY {columns}{_ALL_ROWS}",
                params,
            )
            for row in rows:
                row_keys = {k for c in self.spec.key_columns if (k := c.key_of(row[c.column])) is not None}
                for scope in subjects:
                    if scope.keys is not None and scope.keys & row_keys:
                        counts[scope.request_id] += int(row["n"])
                        break
        return counts

    async def erase(self, scopes: Sequence[Scope]) -> None:
        for account_id, group in _by_account(scopes).items():
            if any(s.tenant for s in group):
                await self._warehouse.command(
                    f"ALTER TABLE {self._storage()} DELETE WHERE account_id = {{account:String}}",
                    {"account": account_id},
                )
                continue
            union = sorted(frozenset().union(*(s.keys or frozenset() for s in group)))
            for start in range(0, len(union), MAX_VALUES_PER_STATEMENT):
                params: dict[str, Any] = {"account": account_id}
                where = await self._hashed_match(
                    frozenset(union[start : start + MAX_VALUES_PER_STATEMENT]), params
                )
                await self._warehouse.command(f"ALTER TABLE {self._storage()} DELETE WHERE {where}", params)
        if await self._parts_with_hidden_rows():
            # Rows a lightweight delete (``DELETE FROM``, run by hand: tapwire issues none) hides stay on disk, and
            # an ``ALTER TABLE … DELETE`` does not see them: only applying the mask rewrites them away.
            await self._warehouse.command(f"ALTER TABLE {self._storage()} APPLY DELETED MASK")

    def _system(self, table: str) -> str:
        return f"clusterAllReplicas({self._cluster}, system.{table})" if self._cluster else f"system.{table}"

    def _local_table(self) -> str:
        return f"{self.spec.table}_local" if self._cluster else self.spec.table

    async def _parts_with_hidden_rows(self) -> int:
        """Active parts of the table holding rows a lightweight delete hides."""
        rows = await self._warehouse.query(
            f"SELECT count() AS n FROM {self._system('parts')} WHERE database = currentDatabase() "
            "AND table = {table:String} AND active AND has_lightweight_delete",
            {"table": self._local_table()},
        )
        return int(rows[0]["n"])

    async def parts_off_the_books(self) -> tuple[int, int, int]:
        """Parts holding data no query reads: (detached parts, outdated parts, their ``old_parts_lifetime`` in
        seconds). An outdated part was replaced (by a merge or a mutation) and is deleted by the server once
        it has been outdated for ``old_parts_lifetime``; a detached part stays until someone drops it."""
        params = {"table": self._local_table()}
        detached = await self._warehouse.query(
            f"SELECT count() AS n FROM {self._system('detached_parts')} "
            "WHERE database = currentDatabase() AND table = {table:String}",
            params,
        )
        outdated = await self._warehouse.query(
            f"SELECT count() AS n FROM {self._system('parts')} "
            "WHERE database = currentDatabase() AND table = {table:String} AND NOT active",
            params,
        )
        lifetime = await self._warehouse.query(
            "SELECT toUInt64OrZero(value) AS s FROM system.merge_tree_settings WHERE name = 'old_parts_lifetime'"
        )
        return int(detached[0]["n"]), int(outdated[0]["n"]), int(lifetime[0]["s"]) if lifetime else 0

    async def mutations_pending(self) -> tuple[int, str]:
        """Unfinished mutations on this table and the latest failure reason among them ("" when none)."""
        rows = await self._warehouse.query(
            f"SELECT count() AS n, max(latest_fail_reason) AS reason FROM {self._system('mutations')} "
            "WHERE database = currentDatabase() AND table = {table:String} AND is_done = 0",
            {"table": self._local_table()},
        )
        return int(rows[0]["n"]), str(rows[0]["reason"] or "")

    async def settle(self) -> None:
        await self.wait_for_mutations()

    async def wait_for_mutations(self) -> bool:
        """Poll until every mutation of the table is done or ``mutation_wait_s`` passed; True when done."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._wait_s
        while True:
            pending, _ = await self.mutations_pending()
            if not pending:
                return True
            if loop.time() >= deadline:
                return False
            await asyncio.sleep(self._poll_s)

    async def verify(self, scopes: Sequence[Scope]) -> dict[str, Verification]:
        """No unfinished mutation, no row of the scope in any active part nor in the copy a projection keeps
        inside it (counted without ``FINAL`` and without
        the lightweight-delete mask, so rows a merge has not collapsed and rows only hidden count), and no
        detached part (which no query can read, so nothing can be proven about it: the check waits until an
        operator drops it). Outdated parts are named with the time the server keeps them."""
        pending, reason = await self.mutations_pending()
        counts = await self.count(scopes)
        copies = await self.count_in_projections(scopes)
        detached, outdated, lifetime = await self.parts_off_the_books()
        checked = (
            f"system.mutations: no unfinished mutation on {self.spec.table}"
            + (f" (failing: {reason[:200]})" if reason else "")
            + f"; count() without FINAL and without the lightweight-delete mask over every active part of "
            f"{self.spec.table}"
            + "".join(f" and of its projection {name}" for name in self.spec.projections)
            + " for the subject's identifiers; system.detached_parts: "
            + (
                f"{detached} detached parts cannot be read: drop them (ALTER TABLE … DROP DETACHED PART) for the "
                "check to finish"
                if detached
                else "none"
            )
            + f"; system.parts: {outdated} outdated parts, deleted by the server within old_parts_lifetime "
            f"({lifetime} s) of being replaced"
        )
        return {
            scope.request_id: Verification(
                # A projection copies the table's rows: what is left is the larger count, not their sum.
                residue=max(counts[scope.request_id], copies[scope.request_id]),
                pending=pending > 0 or detached > 0,
                checked=checked,
            )
            for scope in scopes
        }

    async def rectify(self, scope: Scope, fields: Mapping[str, Any]) -> int:
        table = self.spec.table
        if scope.keys is None or table not in (schema.PROFILE_PROPS, schema.PROFILE_OPS, schema.PROFILES):
            return 0
        params: dict[str, Any] = {"account": scope.account_id}
        where = await self._hashed_match(scope.keys, params)
        if table == schema.PROFILES:
            changed = 0
            for field, column in PROFILE_IDENTIFIER_FIELDS.items():
                if field in fields and isinstance(fields[field], str):
                    await self._warehouse.command(
                        f"ALTER TABLE {self._storage()} UPDATE {column} = {{value:Nullable(String)}} WHERE {where}",
                        {**params, "value": fields[field]},
                    )
                    changed += 1
            await self.wait_for_mutations()
            return changed
        # Older values and operators on the corrected properties go first, so nothing folds onto the new value.
        params["fields"] = sorted(fields)
        await self._warehouse.command(
            f"ALTER TABLE {self._storage()} DELETE WHERE {where} AND key IN {{fields:Array(String)}}", params
        )
        await self.wait_for_mutations()
        if table == schema.PROFILE_OPS:
            return len(fields)
        user_keys = await self._warehouse.query(
            "SELECT DISTINCT user_key FROM profiles WHERE account_id = {account:String} "
            "AND user_key IN {keys:Array(String)}",
            {"account": scope.account_id, "keys": sorted(scope.keys)},
        )
        now_ms = int(dt.datetime.now(dt.UTC).timestamp() * 1000)
        rows = [
            (scope.account_id, row["user_key"], key, orjson.dumps(value).decode(), now_ms, 0)
            for row in user_keys
            for key, value in sorted(fields.items())
        ]
        await self._warehouse.insert(table, [c for c, _ in schema.PROFILE_PROP_COLUMNS], rows)
        return len(rows)


def _by_account(scopes: Sequence[Scope]) -> dict[str, list[Scope]]:
    grouped: dict[str, list[Scope]] = defaultdict(list)
    for scope in scopes:
        grouped[scope.account_id].append(scope)
    return grouped
