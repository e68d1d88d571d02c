"""Reading an embedded data directory's chDB files directly, in a separate process.

chDB allows one open session per process, so the inspection runs in its own interpreter, after the
tapwire process that owns the files has exited.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import orjson

_SCRIPT = """
import asyncio, sys, orjson
from tapwire_core.warehouse.chdb import ChdbWarehouse

async def main():
    wh = ChdbWarehouse(sys.argv[1])
    await wh.start()
    try:
        rows = await wh.query(
            "SELECT event_id, count() AS n FROM events FINAL "
            "WHERE account_id = {account:String} AND name = {name:String} GROUP BY event_id",
            {"account": sys.argv[2], "name": sys.argv[3]},
        )
    finally:
        await wh.close()
    sys.stdout.buffer.write(orjson.dumps({r["event_id"]: int(r["n"]) for r in rows}))

asyncio.run(main())
"""


def event_id_counts(chdb_path: Path, account_id: str, name: str) -> dict[str, int]:
    """Rows per event id (after deduplication) for one account's events named ``name``."""
    done = subprocess.run(
        [sys.executable, "-c", _SCRIPT, str(chdb_path), account_id, name],
        capture_output=True,
        check=False,
        timeout=120,
    )
    if done.returncode != 0:
        raise AssertionError(f"inspection failed: {done.stderr.decode(errors='replace')[-2000:]}")
    counts: dict[str, int] = orjson.loads(done.stdout)
    return counts
