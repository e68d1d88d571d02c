"""Deterministic CleverTap-shaped test data: the same seed always yields the same records."""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import Any

EVENT_NAMES = ("App Opened", "Product Viewed", "Added To Cart", "Charged", "Searched", "Shared")
CATEGORIES = ("books", "music", "garden", "toys", "kitchen", "sports")
CITIES = ("Mumbai", "Berlin", "Lisbon", "Austin", "Osaka", "Lagos")
BASE_TS = 1_767_225_600  # 2026-01-01T00:00:00Z; fixed so generated data is reproducible


def identity_of(user: int) -> str:
    return f"user-{user:07d}"


def profiles(users: int, seed: int) -> Iterator[dict[str, Any]]:
    rng = random.Random(f"profiles:{seed}")
    for user in range(users):
        yield {
            "type": "profile",
            "identity": identity_of(user),
            "ts": BASE_TS + rng.randrange(86_400),
            "profileData": {
                "Name": f"User {user}",
                "Email": f"{identity_of(user)}@example.com",
                "City": rng.choice(CITIES),
                "Age": rng.randrange(18, 80),
                "Plan": rng.choice(("free", "plus", "pro")),
            },
        }


def events(users: int, count: int, seed: int, *, days: int = 30) -> Iterator[dict[str, Any]]:
    """``count`` events spread over ``users`` users and ``days`` days starting 2026-01-01."""
    rng = random.Random(f"events:{seed}")
    for _ in range(count):
        name = rng.choice(EVENT_NAMES)
        data: dict[str, Any] = {"category": rng.choice(CATEGORIES), "price": round(rng.uniform(1, 200), 2)}
        if name == "Charged":
            data["Amount"] = data.pop("price")
            data["Items"] = [{"Category": data["category"], "Quantity": rng.randrange(1, 4)}]
        yield {
            "type": "event",
            "identity": identity_of(rng.randrange(users)),
            "ts": BASE_TS + rng.randrange(days * 86_400),
            "evtName": name,
            "evtData": data,
        }


def batches(records: Iterator[dict[str, Any]], size: int) -> Iterator[list[dict[str, Any]]]:
    batch: list[dict[str, Any]] = []
    for record in records:
        batch.append(record)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch
