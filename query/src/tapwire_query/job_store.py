"""The ``query_jobs`` table: what every query replica knows about count jobs that outlived their request.

All times are the caller's wall clock (epoch seconds), bound as parameters, so PostgreSQL and SQLite agree and
tests can move time. Every call may raise ``SQLAlchemyError`` when the control store is unreachable.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy import Table, delete, insert, select, update

from tapwire_core.control.query_job_models import QueryJobRow
from tapwire_core.control.store import ControlStore

_TABLE: Table = QueryJobRow.__table__  # type: ignore[assignment]

JobStatus = Literal["running", "done", "failed"]


@dataclass(frozen=True)
class StoredError:
    """A failed job's answer: HTTP status, message, error code and ``Retry-After``."""

    status: int
    message: str
    code: int
    retry_after: int | None = None


@dataclass(frozen=True)
class StoredJob:
    """A job as pollers see it: ``value`` (any JSON) when done, ``error`` when failed."""

    status: JobStatus
    value: Any = None
    error: StoredError | None = None


def _at(epoch_s: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(epoch_s, dt.UTC)


class JobStore:
    """Rows of ``query_jobs`` on the control store."""

    def __init__(self, store: ControlStore) -> None:
        self._store = store

    async def start(self, req_id: int, *, account_id: str, expires_s: float) -> None:
        """Record a running job whose lease ends at ``expires_s``."""
        async with self._store.engine.begin() as connection:
            await connection.execute(
                insert(_TABLE).values(
                    req_id=req_id, account_id=account_id, status="running", expires_at=_at(expires_s)
                )
            )

    async def renew(self, req_id: int, *, expires_s: float) -> None:
        """Extend a running job's lease (its owner is alive)."""
        async with self._store.engine.begin() as connection:
            await connection.execute(
                update(_TABLE)
                .where(_TABLE.c.req_id == req_id, _TABLE.c.status == "running")
                .values(expires_at=_at(expires_s))
            )

    async def finish(self, req_id: int, outcome: StoredJob, *, expires_s: float) -> None:
        """Replace a running job by its outcome, kept until ``expires_s``."""
        error = outcome.error
        async with self._store.engine.begin() as connection:
            await connection.execute(
                update(_TABLE)
                .where(_TABLE.c.req_id == req_id)
                .values(
                    status=outcome.status,
                    value=outcome.value,
                    error_status=error.status if error else None,
                    error=error.message if error else None,
                    error_code=error.code if error else None,
                    retry_after=error.retry_after if error else None,
                    expires_at=_at(expires_s),
                )
            )

    async def get(self, req_id: int, *, account_id: str, now_s: float) -> StoredJob | None:
        """The account's job with that id, or None when unknown, another account's, or expired."""
        async with self._store.engine.connect() as connection:
            row = (
                await connection.execute(
                    select(_TABLE).where(
                        _TABLE.c.req_id == req_id,
                        _TABLE.c.account_id == account_id,
                        _TABLE.c.expires_at >= _at(now_s),
                    )
                )
            ).first()
        if row is None:
            return None
        error = None
        if row.error_status is not None:
            error = StoredError(
                row.error_status, row.error or "", row.error_code or row.error_status, row.retry_after
            )
        return StoredJob(row.status, value=row.value, error=error)

    async def forget(self, req_ids: list[int]) -> None:
        """Delete these jobs (their owner stops without finishing them)."""
        if not req_ids:
            return
        async with self._store.engine.begin() as connection:
            await connection.execute(delete(_TABLE).where(_TABLE.c.req_id.in_(req_ids)))

    async def trim(self, *, account_id: str, keep: int, now_s: float) -> None:
        """Delete every expired job, and the account's finished jobs beyond its ``keep`` most recent."""
        async with self._store.engine.begin() as connection:
            await connection.execute(delete(_TABLE).where(_TABLE.c.expires_at < _at(now_s)))
            newest = (
                select(_TABLE.c.req_id)
                .where(_TABLE.c.account_id == account_id, _TABLE.c.status != "running")
                .order_by(_TABLE.c.expires_at.desc())
                .limit(keep)
            )
            await connection.execute(
                delete(_TABLE).where(
                    _TABLE.c.account_id == account_id,
                    _TABLE.c.status != "running",
                    _TABLE.c.req_id.not_in(newest),
                )
            )
