"""The graph's projection into the warehouse: ``user_aliases`` rows, carried on the bus as ``alias`` envelopes."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass

from tapwire_core.envelope import Envelope, Identities


@dataclass(frozen=True, slots=True)
class AliasRow:
    """``alias_key`` counts as ``canonical_key`` while ``active``; the highest ``version`` per alias wins."""

    alias_key: str
    canonical_key: str
    version: int
    active: bool


def alias_envelopes(account_id: str, rows: Iterable[AliasRow], *, received_ms: int) -> list[Envelope]:
    """One ``alias`` envelope per row. Event ids are derived from (alias, version), so republishing the same
    state (a client retrying after a refused publish) is harmless."""
    envelopes = []
    for row in rows:
        digest = hashlib.blake2b(digest_size=16)
        digest.update(f"{account_id}\x00{row.alias_key}\x00{row.version}".encode())
        envelopes.append(
            Envelope(
                account_id=account_id,
                event_id=digest.hexdigest(),
                kind="alias",
                ids=Identities(),
                client_ts=received_ms,
                received_ts=received_ms,
                source="internal",
                properties={
                    "alias_key": row.alias_key,
                    "canonical_key": row.canonical_key,
                    "version": row.version,
                    "active": 1 if row.active else 0,
                },
            )
        )
    return envelopes
