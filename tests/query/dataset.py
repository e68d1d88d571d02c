"""The generated dataset the query tests share, and how it is put into a warehouse."""

from __future__ import annotations

import datetime as dt
from functools import cache
from typing import Any, Final

from tapwire_core.warehouse import Warehouse, schema
from tapwire_core.warehouse.migrations import migrate
from tapwire_services import generate
from tests.query.truth import Truth

ACCOUNT: Final = "ACC-QUERY"
OTHER_ACCOUNT: Final = "ACC-OTHER"
USERS: Final = 300
EVENTS: Final = 8000
SEED: Final = 7
TODAY: Final = dt.date(2026, 2, 1)
RECEIVED_MS: Final = 1_770_000_000_000  # 2026-02-02: every generated row was received before any test runs
MERGED_AT: Final = dt.datetime(2026, 1, 20, tzinfo=dt.UTC)

# alias -> canonical as the identity graph would project it; the last entry was merged and then demerged.
ACTIVE_ALIASES: Final = {
    "i:user-0000005": "i:user-0000003",
    "i:user-0000007": "i:user-0000003",
    "i:user-0000020": "i:user-0000021",
    "i:user-0000150": "i:user-0000002",
}
DEMERGED: Final = ("i:user-0000011", "i:user-0000013")


@cache
def records() -> tuple[dict[str, Any], ...]:
    return (*generate.profiles(USERS, SEED), *generate.events(USERS, EVENTS, SEED))


@cache
def truth() -> Truth:
    return Truth.from_records(records(), aliases=dict(ACTIVE_ALIASES), today=TODAY)


def other_account_records() -> list[dict[str, Any]]:
    """A second tenant with the same user names and event names but different values and volumes."""
    out = []
    for record in generate.events(USERS, 2000, SEED + 1):
        out.append(record)
    for record in generate.profiles(USERS, SEED + 1):
        record["profileData"]["City"] = "Elsewhere"
        out.append(record)
    return out


async def load_dataset(warehouse: Warehouse) -> None:
    await migrate(warehouse, cluster=None)
    await generate.load(warehouse, records(), account_id=ACCOUNT, received_ms=RECEIVED_MS)
    await generate.load(warehouse, other_account_records(), account_id=OTHER_ACCOUNT, received_ms=RECEIVED_MS)
    columns = [name for name, _ in schema.USER_ALIAS_COLUMNS]
    rows: list[tuple[Any, ...]] = [
        (ACCOUNT, alias, canonical, MERGED_AT, 1, 1) for alias, canonical in ACTIVE_ALIASES.items()
    ]
    alias, canonical = DEMERGED
    rows += [(ACCOUNT, alias, canonical, MERGED_AT, 1, 1), (ACCOUNT, alias, canonical, MERGED_AT, 2, 0)]
    # The other tenant merges everyone into one key: a leak would collapse this account's counts.
    rows += [
        (OTHER_ACCOUNT, f"i:{generate.identity_of(u)}", "i:user-0000000", MERGED_AT, 1, 1)
        for u in range(USERS)
    ]
    await warehouse.insert(schema.USER_ALIASES, columns, rows)
