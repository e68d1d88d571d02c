"""Writing a batch to the warehouse: all tables, retried on outages, poison isolated on errors."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import Callable

from tapwire_core import metrics
from tapwire_core.warehouse import Warehouse, WarehouseUnavailable
from tapwire_ingest.loader.event_json import EVENT_ROWS, json_rows
from tapwire_ingest.loader.rows import TableRows

log = logging.getLogger(__name__)


async def write_rows(warehouse: Warehouse, rows: TableRows, *, token: str) -> None:
    """Insert every table's rows. Raises WarehouseUnavailable (retry) or WarehouseError (bad data).

    Events go first and profiles last: a crash in between replays the batch, and every table deduplicates.
    """
    started = time.perf_counter()
    if rows.event_packs:
        await warehouse.insert_json(EVENT_ROWS, json_rows(rows.event_packs), dedup_token=f"{token}:j")
        metrics.LOADER_ROWS.labels("events").inc(rows.packed_events)
    tables = (
        ("events", rows.events, "e"),
        ("profile_props", rows.profile_props, "p"),
        ("profile_ops", rows.profile_ops, "o"),
        ("profiles", rows.profiles(), "u"),
        ("user_aliases", rows.user_aliases, "a"),
    )
    for table, columns, suffix in tables:
        if len(columns):
            await warehouse.insert_columns(
                table, columns.names, columns.data, dedup_token=f"{token}:{suffix}"
            )
            metrics.LOADER_ROWS.labels(table).inc(len(columns))
    metrics.LOADER_INSERT.observe(time.perf_counter() - started)


def batch_token(offsets: dict[tuple[str, int], tuple[int, int]]) -> str:
    """A deterministic token for the exact offset ranges a batch covers (same replay → same token)."""
    text = ";".join(f"{t}:{p}:{lo}-{hi}" for (t, p), (lo, hi) in sorted(offsets.items()))
    return hashlib.blake2b(text.encode(), digest_size=16).hexdigest()


async def write_with_retry(
    warehouse: Warehouse,
    rows: TableRows,
    *,
    token: str,
    stopping: Callable[[], bool],
    max_backoff_s: float = 10.0,
) -> None:
    """Retry outages with capped exponential backoff until written or the loader is stopping.

    ``WarehouseError`` (the data or SQL is wrong) is not retried here: the caller isolates the culprit.
    """
    delay = 0.1
    while True:
        try:
            await write_rows(warehouse, rows, token=token)
            return
        except WarehouseUnavailable as exc:
            if stopping():
                raise
            log.warning("warehouse unavailable, retrying", extra={"error": str(exc), "retry_in_s": delay})
            await asyncio.sleep(delay)
            delay = min(delay * 2, max_backoff_s)
