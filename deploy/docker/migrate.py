"""Schema migrations for a distributed deployment, run as a Kubernetes Job and as the services' init containers.

    python /app/migrate.py apply [--allow-blocking] [--timeout-s N]
    python /app/migrate.py wait [--timeout-s N]

``apply`` brings the control plane (Alembic, PostgreSQL at ``TAPWIRE_DATABASE_URL``) and, when
``TAPWIRE_CLICKHOUSE_URL`` is set, the warehouse (``TAPWIRE_CLICKHOUSE_CLUSTER``-aware) to the versions this
image ships. Both are idempotent and safe next to services starting at the same time (an advisory lock on
PostgreSQL; re-runnable warehouse operations). A blocking warehouse migration is applied only with
``--allow-blocking``. ``wait`` changes nothing: it returns once both schemas are at this image's versions, so a
pod of a new release starts only after the migration Job of that release finished.

Unreachable dependencies are retried until ``--timeout-s`` (the operators' clusters may still be starting).
Exit status: 0 done, 1 timed out or failed, 2 misconfigured.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import time
from collections.abc import Awaitable, Callable, Sequence

from tapwire_core import log as logs
from tapwire_core.control import migrate as control_migrations
from tapwire_core.control.engine import create_engine
from tapwire_core.control.store import ControlStore
from tapwire_core.settings import Settings
from tapwire_core.warehouse.clickhouse import ClickHouseWarehouse
from tapwire_core.warehouse.migrations import BlockingMigrationPending, migrate, schema_is_current

log = logging.getLogger("tapwire.migrate")

RETRY_INTERVAL_S = 5.0


class Misconfigured(Exception):
    """The environment does not name the databases to migrate."""


async def apply(settings: Settings, *, allow_blocking: bool) -> list[str]:
    """Migrate the control plane, then the warehouse; returns the warehouse migrations applied now."""
    if not settings.database_url:
        raise Misconfigured("TAPWIRE_DATABASE_URL is required")
    store = ControlStore(settings.database_url)
    await store.start()  # upgrades to head under an advisory lock
    await store.close()
    if not settings.clickhouse_url:
        return []
    warehouse = ClickHouseWarehouse(settings.clickhouse_url)
    await warehouse.start()
    try:
        return await migrate(warehouse, cluster=settings.clickhouse_cluster, allow_blocking=allow_blocking)
    finally:
        await warehouse.close()


async def is_current(settings: Settings) -> bool:
    """True when both schemas are at this image's versions. Reads only."""
    if not settings.database_url:
        raise Misconfigured("TAPWIRE_DATABASE_URL is required")
    engine = create_engine(settings.database_url)
    try:
        async with engine.connect() as connection:
            revision = await connection.run_sync(control_migrations.current_revision)
    finally:
        await engine.dispose()
    if revision != control_migrations.head_revision():
        return False
    if not settings.clickhouse_url:
        return True
    warehouse = ClickHouseWarehouse(settings.clickhouse_url)
    await warehouse.start()
    try:
        return await schema_is_current(warehouse)
    finally:
        await warehouse.close()


async def until(attempt: Callable[[], Awaitable[bool]], *, timeout_s: float, what: str) -> bool:
    """Run ``attempt`` until it returns True or ``timeout_s`` passed; errors count as "not yet" and are logged."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            if await attempt():
                return True
        except (Misconfigured, BlockingMigrationPending):
            raise
        except Exception as exc:
            log.warning("%s: not yet (%s); retrying in %.0fs", what, exc, RETRY_INTERVAL_S)
        if time.monotonic() + RETRY_INTERVAL_S > deadline:
            return False
        await asyncio.sleep(RETRY_INTERVAL_S)


async def run(args: argparse.Namespace, settings: Settings) -> int:
    if args.command == "apply":

        async def attempt() -> bool:
            applied = await apply(settings, allow_blocking=args.allow_blocking)
            log.info("schemas current; warehouse migrations applied now: %s", ", ".join(applied) or "none")
            return True

        done = await until(attempt, timeout_s=args.timeout_s, what="migrating")
    else:

        async def check() -> bool:
            return await is_current(settings)

        done = await until(check, timeout_s=args.timeout_s, what="waiting for the migration job")
    if not done:
        log.error("gave up after %.0fs", args.timeout_s)
    return 0 if done else 1


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(prog="migrate", description="tapwire schema migrations")
    commands = root.add_subparsers(dest="command", required=True)
    apply_cmd = commands.add_parser("apply", help="apply pending control-plane and warehouse migrations")
    apply_cmd.add_argument("--allow-blocking", action="store_true", help="also apply blocking migrations")
    wait_cmd = commands.add_parser("wait", help="return once both schemas are at this image's versions")
    for command in (apply_cmd, wait_cmd):
        command.add_argument("--timeout-s", type=float, default=600.0)
    return root


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    settings = Settings()
    logs.configure(settings.log_level)
    try:
        return asyncio.run(run(args, settings))
    except Misconfigured as exc:
        print(f"migrate: {exc}", file=sys.stderr)
        return 2
    except BlockingMigrationPending as exc:
        print(f"migrate: {exc}; rerun with --allow-blocking after reading the release notes", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
