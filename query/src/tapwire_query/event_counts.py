"""Event counts over a date range (the basic form of ``/1/counts/events.json``)."""

from __future__ import annotations

import datetime as dt

from tapwire_core.warehouse import Warehouse


async def count_events(
    warehouse: Warehouse, *, account_id: str, event_name: str, first_day: dt.date, last_day: dt.date
) -> int:
    rows = await warehouse.query(
        "SELECT count() AS n FROM events FINAL WHERE account_id = {account:String} "
        "AND name = {name:String} AND toDate(ts) BETWEEN {first:Date} AND {last:Date}",
        {
            "account": account_id,
            "name": event_name,
            "first": first_day.isoformat(),
            "last": last_day.isoformat(),
        },
    )
    return int(rows[0]["n"]) if rows else 0
