"""Count jobs of the query service that outlived their request: any replica answers their ``req_id`` from here.

A row is ``running`` while its owner renews ``expires_at`` (a short lease), then holds the outcome — the answer's
fields, or the error's status and message — until ``expires_at`` (the keep time). Rows past ``expires_at`` are
unknown to readers and deleted by the query service. No foreign key to ``accounts``: rows live minutes.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, DateTime, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from tapwire_core.control.accounts.models import JSON_DOCUMENT
from tapwire_core.control.base import Base


class QueryJobRow(Base):
    __tablename__ = "query_jobs"

    req_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    account_id: Mapped[str] = mapped_column(String(64), index=True)
    status: Mapped[str] = mapped_column(String(8))
    value: Mapped[Any] = mapped_column(JSON_DOCUMENT, nullable=True)
    error_status: Mapped[int | None] = mapped_column(Integer, nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    error_code: Mapped[int | None] = mapped_column(Integer, nullable=True)
    retry_after: Mapped[int | None] = mapped_column(Integer, nullable=True)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
