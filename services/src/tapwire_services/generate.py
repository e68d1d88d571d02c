"""Deterministic CleverTap-shaped test data: the same arguments always yield the same records.

Records are what a client would send to ``/1/upload``: one profile per user, then events with a realistic
mix (frequent app opens and views, rarer carts and purchases), typed properties (strings, integers,
decimals, booleans, the odd missing one), ``Charged`` line items, activity skewed towards heavy users and
spread over ``days`` days from 2026-01-01 UTC. ``load`` writes records straight into a warehouse through
the same validation and row building the gateway and loader use.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Iterator
from typing import Any

EVENT_NAMES = ("App Opened", "Product Viewed", "Added To Cart", "Charged", "Searched", "Shared")
_EVENT_WEIGHTS = (30, 30, 12, 6, 15, 7)
CATEGORIES = ("books", "music", "garden", "toys", "kitchen", "sports")
CITIES = (
    ("India", "Maharashtra", "Mumbai"),
    ("India", "Karnataka", "Bengaluru"),
    ("Germany", "Berlin", "Berlin"),
    ("Portugal", "Lisboa", "Lisbon"),
    ("United States", "Texas", "Austin"),
    ("Japan", "Osaka", "Osaka"),
    ("Nigeria", "Lagos", "Lagos"),
)
PLANS = ("free", "plus", "pro")
PLATFORMS = ("Android", "iOS", "Web")
SEARCH_TERMS = ("red shoes", "garden hose", "Lego set", "jazz vinyl", "chef knife", "yoga mat", "Pizza stone")
CURRENCIES = ("EUR", "USD", "INR")
BASE_TS = 1_767_225_600  # 2026-01-01T00:00:00Z; fixed so generated data is reproducible
DAY_S = 86_400


def identity_of(user: int) -> str:
    return f"user-{user:07d}"


def profiles(users: int, seed: int) -> Iterator[dict[str, Any]]:
    """One profile record per user within the first ten days (a few fields left out at random); a quarter of
    the users get a later update using ``$incr`` / ``$decr`` and sometimes a new plan."""
    rng = random.Random(f"profiles:{seed}")
    for user in range(users):
        country, region, city = rng.choice(CITIES)
        data: dict[str, Any] = {
            "Name": f"User {user}",
            "Email": f"{identity_of(user)}@example.com",
            "Country": country,
            "Region": region,
            "City": city,
            "Age": rng.randrange(18, 80),
            "Plan": rng.choice(PLANS),
            "Premium": rng.random() < 0.3,
            "Score": round(rng.uniform(0, 100), 1),
        }
        for optional in ("Age", "Plan", "Score"):
            if rng.random() < 0.1:
                del data[optional]
        ts = BASE_TS + rng.randrange(10 * DAY_S)
        yield {"type": "profile", "identity": identity_of(user), "ts": ts, "profileData": data}
        if rng.random() < 0.25:
            # A later update: counters through CleverTap's value operators, sometimes a plan change.
            update: dict[str, Any] = {"Visits": {"$incr": rng.randrange(1, 10)}}
            if rng.random() < 0.5:
                update["Score"] = {"$decr": round(rng.uniform(0, 20), 1)}
            if rng.random() < 0.3:
                update["Plan"] = rng.choice(PLANS)
            yield {
                "type": "profile",
                "identity": identity_of(user),
                "ts": ts + rng.randrange(1, 5 * DAY_S),
                "profileData": update,
            }


def _event_data(rng: random.Random, name: str) -> dict[str, Any]:
    data: dict[str, Any] = {"Platform": rng.choice(PLATFORMS)}
    if name in ("Product Viewed", "Added To Cart", "Shared"):
        data["category"] = rng.choice(CATEGORIES)
        data["price"] = round(rng.uniform(1, 200), 2)
        if rng.random() < 0.5:
            data["Quantity"] = rng.randrange(1, 6)
    elif name == "Searched":
        data["query"] = rng.choice(SEARCH_TERMS)
        results = rng.randrange(0, 50)
        # Some clients send numbers as strings; queries must tell the two apart.
        data["results"] = str(results) if rng.random() < 0.1 else results
    elif name == "Charged":
        items = [
            {"Category": rng.choice(CATEGORIES), "Quantity": rng.randrange(1, 4)}
            for _ in range(rng.randrange(1, 4))
        ]
        data["Amount"] = round(rng.uniform(5, 500), 2)
        data["Currency"] = rng.choice(CURRENCIES)
        data["Items"] = items
    elif name == "App Opened":
        data["first"] = rng.random() < 0.2
    if rng.random() < 0.05:
        data.pop("Platform")
    return data


def events(users: int, count: int, seed: int, *, days: int = 30) -> Iterator[dict[str, Any]]:
    """``count`` events over ``users`` users and ``days`` days from 2026-01-01, heavier users more often."""
    rng = random.Random(f"events:{seed}")
    for _ in range(count):
        name = rng.choices(EVENT_NAMES, _EVENT_WEIGHTS)[0]
        # Squaring a uniform draw skews activity towards low user numbers: a few heavy users, a long tail.
        user = int(users * rng.random() ** 2)
        yield {
            "type": "event",
            "identity": identity_of(min(user, users - 1)),
            "ts": BASE_TS + rng.randrange(days * DAY_S),
            "evtName": name,
            "evtData": _event_data(rng, name),
        }


def batches(records: Iterable[dict[str, Any]], size: int) -> Iterator[list[dict[str, Any]]]:
    batch: list[dict[str, Any]] = []
    for record in records:
        batch.append(record)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


async def load(
    warehouse: Any,
    records: Iterable[dict[str, Any]],
    *,
    account_id: str,
    received_ms: int,
    batch_rows: int = 50_000,
) -> int:
    """Validate ``records`` as the gateway does and insert their rows as the loader does; returns how many
    were accepted. ``received_ms`` stamps every row's receive time. Raises ``WarehouseError`` on failure."""
    from tapwire_core.envelope import decode_stored, encode
    from tapwire_ingest.clevertap.record_errors import RecordRejected
    from tapwire_ingest.clevertap.upload_records import parse_record
    from tapwire_ingest.loader.rows import TableRows
    from tapwire_ingest.loader.writer import write_rows

    accepted = 0
    rows = TableRows()
    digest = b"generated"
    for position, record in enumerate(records):
        try:
            envelope = parse_record(
                record,
                account_id=account_id,
                received_ms=received_ms,
                request_digest=digest,
                position=position,
            )
        except RecordRejected:
            continue
        rows.add(decode_stored(encode(envelope)))
        accepted += 1
        if len(rows) >= batch_rows:
            await write_rows(warehouse, rows, token=f"generated:{position}")
            rows = TableRows()
    if len(rows):
        await write_rows(warehouse, rows, token="generated:last")
    return accepted
