"""Event packs the warehouse stores from their own JSON: which packs qualify, and the statement that does it.

Building each event's row in Python and serialising it to Native format was most of the loader's CPU time,
all of it under the GIL. A pack whose every envelope is a plain, storable event goes to the warehouse as the
JSON it travelled the bus in, and ClickHouse computes the ``events`` row with ``EVENT_ROWS``, which mirrors
``TableRows.add`` column for column. Every other pack (profiles, aliases, anything refused or suppressed) takes
the row-building path, which checks envelope by envelope and dead-letters what it cannot store.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

import msgspec

from tapwire_core.envelope import USER_KEY_ORDER, Identities, StoredEnvelope
from tapwire_core.warehouse import schema
from tapwire_core.warehouse.json_insert import JsonInsert
from tapwire_ingest.loader.rows import EVENT_COLUMNS, TOKEN_EVENT_NAME, is_utf8

_EVENT_KINDS: Final = frozenset({"event", "token"})
# ClickHouse reads an Int64 past its range in JSON by wrapping it around; the Native path refuses it instead.
# (The decoder takes integers up to 2**64 - 1 and none below the Int64 range.)
_INT64_MAX: Final = 2**63 - 1
_IDENTITY_FIELDS: Final = msgspec.structs.fields(Identities)


def _user_key_sql() -> str:
    """``Identities.user_key`` in SQL, from the same ordered list of (field, prefix)."""
    branches = ", ".join(
        f"ifNull(ids.{field}, '') != '', concat('{prefix}', ids.{field})" for field, prefix in USER_KEY_ORDER
    )
    return f"multiIf({branches}, '')"


# One JSON row is one envelope, as ``tapwire_core.envelope`` encodes it.
_STRUCTURE: Final = ", ".join(
    (
        "account_id String",
        "event_id String",
        "kind String",
        "ids Tuple(" + ", ".join(f"{f.name} Nullable(String)" for f in _IDENTITY_FIELDS) + ")",
        "client_ts Int64",
        "received_ts Int64",
        "source String",
        "name String",
        "properties String",
        "context String",
    )
)

_EXPRESSIONS: Final = {
    "account_id": "account_id",
    "event_id": "event_id",
    "user_key": _user_key_sql(),
    "identity": "ifNull(ids.identity, '')",
    "object_id": "ifNull(ids.object_id, '')",
    "email": "ifNull(ids.email, '')",
    "phone": "ifNull(ids.phone, '')",
    "anonymous_id": "ifNull(ids.anonymous_id, '')",
    "name": f"if(kind = 'token', '{TOKEN_EVENT_NAME}', name)",
    "ts": "fromUnixTimestamp64Milli(client_ts, 'UTC')",
    "received_at": "fromUnixTimestamp64Milli(received_ts, 'UTC')",
    "source": "source",
    # An object is read as its JSON text. Empty properties are left out of an envelope, and read as '', so
    # they are put back as the envelope's default; a null or missing context stays ''.
    "properties": "if(properties = '', '{}', properties)",
    "context": "context",
}

EVENT_ROWS: Final = JsonInsert(
    table=schema.EVENTS,
    columns=EVENT_COLUMNS,
    expressions=tuple(_EXPRESSIONS[column] for column in EVENT_COLUMNS),
    structure=_STRUCTURE,
)


def json_user_keys(value: bytes, envelopes: Sequence[StoredEnvelope]) -> list[str] | None:
    """Each envelope's user key if the warehouse can store the whole pack ``value`` from its JSON, else None.

    It can when every envelope is an event or token upload that ``TableRows.add`` would store as it is: an
    account and a user, properties that are a JSON object, a context that is an object or null, timestamps
    that fit their 64-bit columns, and valid UTF-8 throughout (ClickHouse would store invalid UTF-8 as given).
    """
    if value[-1:] != b"]":  # packs are written without whitespace around them; ``json_rows`` relies on it
        return None
    if not is_utf8(value):
        return None
    keys: list[str] = []
    for envelope in envelopes:
        key = envelope.ids.user_key()
        if envelope.kind not in _EVENT_KINDS or not key or not envelope.account_id:
            return None
        if envelope.client_ts > _INT64_MAX or envelope.received_ts > _INT64_MAX:
            return None
        if bytes(envelope.properties)[:1] != b"{":
            return None
        context = bytes(envelope.context)
        if context and context != b"null" and context[:1] != b"{":
            return None
        keys.append(key)
    return keys


def json_rows(packs: Sequence[bytes]) -> bytes:
    """The packs' envelopes as one JSON array (each pack is a non-empty array of them)."""
    return b"[" + b",".join(memoryview(pack)[1:-1] for pack in packs) + b"]"
