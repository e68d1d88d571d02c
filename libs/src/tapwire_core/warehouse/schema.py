"""Warehouse table names and the initial column lists: a contract with the loader and the query service."""

from __future__ import annotations

from typing import Final

EVENTS: Final = "events"
PROFILE_PROPS: Final = "profile_props"
PROFILE_OPS: Final = "profile_ops"
PROFILES: Final = "profiles"
MIGRATIONS: Final = "tapwire_migrations"

UTC_MS: Final = "DateTime64(3, 'UTC')"
LATEST_STRING: Final = "SimpleAggregateFunction(anyLast, Nullable(String))"

EVENT_COLUMNS: Final = (
    ("account_id", "LowCardinality(String)"),
    ("event_id", "String"),
    ("user_key", "String"),
    ("identity", "String"),
    ("object_id", "String"),
    ("email", "String"),
    ("phone", "String"),
    ("anonymous_id", "String"),
    ("name", "LowCardinality(String)"),
    ("ts", UTC_MS),
    ("received_at", UTC_MS),
    ("source", "LowCardinality(String)"),
    ("properties", "String"),
    ("context", "String"),
)

PROFILE_PROP_COLUMNS: Final = (
    ("account_id", "LowCardinality(String)"),
    ("user_key", "String"),
    ("key", "String"),
    ("value", "String"),
    ("ts", UTC_MS),
    ("deleted", "UInt8"),
)

PROFILE_OP_COLUMNS: Final = (
    ("account_id", "LowCardinality(String)"),
    ("user_key", "String"),
    ("key", "String"),
    ("op", "LowCardinality(String)"),
    ("operand", "String"),
    ("ts", UTC_MS),
    ("event_id", "String"),
)

PROFILE_COLUMNS: Final = (
    ("account_id", "LowCardinality(String)"),
    ("user_key", "String"),
    ("identity", LATEST_STRING),
    ("object_id", LATEST_STRING),
    ("email", LATEST_STRING),
    ("phone", LATEST_STRING),
    ("anonymous_id", LATEST_STRING),
    ("first_seen", f"SimpleAggregateFunction(min, {UTC_MS})"),
    ("last_seen", f"SimpleAggregateFunction(max, {UTC_MS})"),
)

# Rows of one user land on one shard, so per-user reads and merges never cross shards.
SHARDING_KEY: Final = "cityHash64(account_id, user_key)"

USER_ALIASES: Final = "user_aliases"

ERASURE_LEDGER: Final = "privacy_erasure_ledger"

# The erasure ledger's warehouse copy (the control database keeps the other): salted hashes of erased subject
# keys, so a restore of either store can be erased again from the other's copy.
ERASURE_LEDGER_COLUMNS: Final = (
    ("account_id", "LowCardinality(String)"),
    ("key_hash", "String"),
    ("request_id", "String"),
    ("erased_at", UTC_MS),
)

# The identity graph's projection for queries: each merged-away user key points at the key that absorbed it.
# A row with active=0 (written on demerge) undoes the link; the highest version per alias wins. Keys that were
# never merged have no row, so a reader maps user_key -> canonical_key when an active row exists, else keeps it.
USER_ALIAS_COLUMNS: Final = (
    ("account_id", "LowCardinality(String)"),
    ("alias_key", "String"),
    ("canonical_key", "String"),
    ("merged_at", UTC_MS),
    ("version", "UInt64"),
    ("active", "UInt8"),
)

# Typed views of the events' JSON properties, computed on insert (migrations 3 and 4) so filters read a map instead of
# parsing JSON: string (and boolean, as "True"/"False") values, and numeric values.
EVENT_PROPERTY_STRINGS: Final = "prop_strings"
EVENT_PROPERTY_NUMBERS: Final = "prop_numbers"

# A second copy of these columns of ``events``, inside every part, ordered by person (migration 7): a person's
# events are a few adjacent granules there, where ``events`` (ordered for event and time scans) has them in most
# granules of the account. Every column that names a subject is in it, so the erasure's proof can count the copy
# with the same condition as the table.
EVENTS_BY_PERSON: Final = "events_by_person"
EVENTS_BY_PERSON_COLUMNS: Final = (
    "account_id",
    "user_key",
    "ts",
    "event_id",
    "name",
    "identity",
    "object_id",
    "email",
    "phone",
    "anonymous_id",
    "source",
    "properties",
)
EVENTS_BY_PERSON_ORDER: Final = "(account_id, user_key, ts)"
