"""Erasing again, after a restore, every subject the erasure ledger says was erased (``tapwire privacy reapply``).

The ledger holds only salted hashes, so the identifiers to erase come from the restored data itself: every
subject key the stores hold for an account of the ledger is hashed under the deployment's identifier salt and
matched against the account's entries. Each match is erased again by an ordinary erasure request (one per
original request, named by the matched keys; the worker closes them over the identity links as usual), so the
restored copies go the way the first ones went, with the same proof. A whole erased account is erased again
whole. Reapplying is idempotent: once those erasures are done, the stores hold no key of the ledger and a second
run queues nothing.

Keys are read a page at a time (``PAGE`` values per query), so the memory used grows with the number of ledger
entries (a hash each), not with the size of the stores.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Final

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from tapwire_core.control.messaging.models import ConsentRow, OutboxRow
from tapwire_core.control.privacy.subject_keys import TENANT_WIDE, key_hash
from tapwire_core.identity.models import IdentityNodeRow
from tapwire_core.warehouse import Warehouse
from tapwire_privacy.deadlines import Jurisdiction
from tapwire_privacy.ledger import ErasureLedger, LedgerEntry
from tapwire_privacy.offboarding import ACCOUNT_DELETED, reapplied_offboarding
from tapwire_privacy.offboarding.handler import account_exists
from tapwire_privacy.repository import PrivacyRepository

PAGE: Final = 50_000

# Warehouse columns holding subject keys, as (table, column, prefix turning a value into a key).
_WAREHOUSE_KEYS: Final = (
    ("profiles", "user_key", ""),
    ("profile_props", "user_key", ""),
    ("user_aliases", "alias_key", ""),
    ("events", "user_key", ""),
    ("events", "identity", "i:"),
    ("events", "email", "e:"),
    ("events", "phone", "p:"),
    ("events", "object_id", "o:"),
    ("events", "anonymous_id", "a:"),
)
_CONSENT_PREFIXES: Final = {"user": "", "email": "e:", "phone": "p:"}


@dataclass
class Reapplied:
    """What one run found and queued (counts and request ids only: no identifier)."""

    accounts: int = 0
    subjects_found: int = 0
    requests: list[str] = field(default_factory=list)


async def reapply(
    *,
    ledger: ErasureLedger,
    repository: PrivacyRepository,
    warehouse: Warehouse,
    engine: AsyncEngine,
    jurisdiction: Jurisdiction = "gdpr",
) -> Reapplied:
    """Queue an erasure for every subject of the ledger found in the stores again. May take a while on a large
    account (one scan of its keys); raises what the stores raise, having queued the accounts done so far."""
    by_account: dict[str, list[LedgerEntry]] = defaultdict(list)
    for entry in await ledger.entries():
        by_account[entry.account_id].append(entry)
    salt = await repository.secrets.identifier_salt()
    result = Reapplied(accounts=len(by_account))
    for account_id, entries in sorted(by_account.items()):
        if any(entry.key_hash == TENANT_WIDE for entry in entries):
            offboarded = await _offboarded(engine, entries)
            if offboarded or await _holds_anything(warehouse, engine, account_id):
                view = await repository.requests.create(
                    account_id=account_id,
                    type="erasure",
                    scope="tenant",
                    channel="api",
                    jurisdiction=jurisdiction,
                    keys=[],
                    progress=None if offboarded is None else reapplied_offboarding(offboarded),
                )
                result.requests.append(view.id)
            continue
        wanted = {entry.key_hash: entry.request_id for entry in entries}
        found: dict[str, set[str]] = defaultdict(set)
        async for keys in _subject_keys(warehouse, engine, account_id):
            for key in keys:
                request_id = wanted.get(key_hash(salt, account_id, key))
                if request_id is not None:
                    found[request_id].add(key)
        for matched in found.values():
            result.subjects_found += 1
            view = await repository.requests.create(
                account_id=account_id,
                type="erasure",
                scope="subject",
                channel="api",
                jurisdiction=jurisdiction,
                keys=sorted(matched),
            )
            result.requests.append(view.id)
    return result


async def _offboarded(engine: AsyncEngine, entries: list[LedgerEntry]) -> str | None:
    """The offboarding that deleted the account, when the restore brought the account back: it is deleted whole
    again (credentials, settings, every control row), not only erased. None otherwise (a tenant erasure suffices)."""
    for entry in entries:
        if entry.key_hash == ACCOUNT_DELETED and await account_exists(engine, entry.account_id):
            return entry.request_id
    return None


async def _subject_keys(
    warehouse: Warehouse, engine: AsyncEngine, account_id: str
) -> AsyncIterator[list[str]]:
    """Every subject key the stores hold for the account, in pages (a key may come more than once)."""
    for table, column, prefix in _WAREHOUSE_KEYS:
        after = ""
        while True:
            # Identifiers come from the constant list above, never from input.
            rows = await warehouse.query(
                f"SELECT DISTINCT {column} AS v FROM {table} WHERE account_id = {{a:String}} "
                f"AND {column} > {{after:String}} ORDER BY v LIMIT {PAGE}",
                {"a": account_id, "after": after},
            )
            if not rows:
                break
            yield [prefix + str(row["v"]) for row in rows]
            after = str(rows[-1]["v"])
    control = [
        (
            select(IdentityNodeRow.key, IdentityNodeRow.key).where(IdentityNodeRow.account_id == account_id),
            {},
        ),
        (select(OutboxRow.user_key, OutboxRow.user_key).where(OutboxRow.account_id == account_id), {}),
        (
            select(ConsentRow.subject_kind, ConsentRow.subject).where(
                ConsentRow.account_id == account_id, ConsentRow.subject_kind.in_(list(_CONSENT_PREFIXES))
            ),
            _CONSENT_PREFIXES,
        ),
    ]
    async with engine.connect() as connection:
        for query, prefixes in control:
            result = await connection.stream(query.execution_options(yield_per=PAGE))
            async for page in result.partitions(PAGE):
                yield [prefixes.get(kind, "") + value if prefixes else value for kind, value in page]


async def _holds_anything(warehouse: Warehouse, engine: AsyncEngine, account_id: str) -> bool:
    rows = await warehouse.query(
        "SELECT count() AS n FROM (SELECT 1 FROM events WHERE account_id = {a:String} LIMIT 1 "
        "UNION ALL SELECT 1 FROM profiles WHERE account_id = {a:String} LIMIT 1)",
        {"a": account_id},
    )
    if int(rows[0]["n"]):
        return True
    async with engine.connect() as connection:
        for query in (
            select(IdentityNodeRow.key).where(IdentityNodeRow.account_id == account_id).limit(1),
            select(OutboxRow.id).where(OutboxRow.account_id == account_id).limit(1),
            select(ConsentRow.subject).where(ConsentRow.account_id == account_id).limit(1),
        ):
            if (await connection.execute(query)).first() is not None:
                return True
    return False
