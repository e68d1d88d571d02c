"""Aggregates released beyond the customer: what each one was, so that a later one cannot be its difference.

A row is one released anonymised aggregate: the request that defined it (CQL and grouping, as sent), the UTC
date its relative windows were anchored on, and which of its cells were released (group labels, whether an
"other" row was). No user key and no figure is kept: the populations are evaluated again when a later request
is compared with it. ``account_id`` is None for an industry (cross-account) aggregate. Rows leave after the
comparison window (``TAPWIRE_AGGREGATE_WINDOW_DAYS``); an erasure deletes those whose definition names the
subject, an account's erasure every one of the account's.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import DateTime, String
from sqlalchemy.orm import Mapped, mapped_column

from tapwire_core.control.accounts.models import JSON_DOCUMENT
from tapwire_core.control.base import Base


class AggregateReleaseRow(Base):
    __tablename__ = "aggregate_releases"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    account_id: Mapped[str | None] = mapped_column(String(64), nullable=True, index=True)
    definition: Mapped[Any] = mapped_column(JSON_DOCUMENT)
    anchor: Mapped[str] = mapped_column(String(8))
    released: Mapped[Any] = mapped_column(JSON_DOCUMENT)
    released_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
