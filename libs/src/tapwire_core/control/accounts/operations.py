"""Account and credential operations on one open session. The caller owns the transaction and its locking.

Secrets arrive in plain text and leave only as a lookup digest (keyed, see ``lookup``) and a scrypt hash; hashing
runs in a worker thread so the event loop keeps serving while it burns ~50 ms of CPU. A credential is found under
any digest it may have (older ones included) and left under it: re-keying is the verifier's, which knows when the
processes that still look up older digests are gone.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any, cast

from sqlalchemy import String, func, literal, select, update
from sqlalchemy import cast as sql_cast
from sqlalchemy.ext.asyncio import AsyncSession

from tapwire_core.control.accounts.hashing import check_secret, hash_secret
from tapwire_core.control.accounts.lookup import LookupDigests
from tapwire_core.control.accounts.models import AccountRow, CredentialRow
from tapwire_core.control.accounts.types import (
    Account,
    AccountNotFoundError,
    CredentialConflictError,
    CredentialInfo,
    CredentialKind,
    CredentialMatch,
    IssuedCredential,
)
from tapwire_core.control.regions import REGIONS, is_region


def to_account(row: AccountRow) -> Account:
    return Account(id=row.id, name=row.name, region=row.region, settings=MappingProxyType(dict(row.settings)))


def to_credential_info(row: CredentialRow) -> CredentialInfo:
    return CredentialInfo(
        id=row.id,
        account_id=row.account_id,
        kind=cast(CredentialKind, row.kind),
        created_at=_aware(row.created_at),
        revoked_at=None if row.revoked_at is None else _aware(row.revoked_at),
    )


def _aware(moment: datetime) -> datetime:
    # SQLite keeps no zone; every timestamp the store writes is UTC.
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


async def get_account(session: AsyncSession, account_id: str) -> Account | None:
    row = await session.get(AccountRow, account_id)
    return None if row is None else to_account(row)


async def list_accounts(session: AsyncSession) -> list[Account]:
    rows = await session.scalars(select(AccountRow).order_by(AccountRow.id))
    return [to_account(row) for row in rows]


async def upsert_account(
    session: AsyncSession,
    *,
    digests: LookupDigests,
    account_id: str,
    passcode: str,
    write_key: str,
    region: str,
    name: str | None,
    settings: Mapping[str, Any] | None,
) -> Account:
    """Create the account or update it in place, leaving exactly ``passcode`` and ``write_key`` live.

    Re-applying the same secrets changes nothing (no rehash); other live credentials of the account are revoked.
    Raises CredentialConflictError when ``write_key`` belongs to another account, WeakSecretError for a secret
    under 16 characters, ValueError for an unknown region.
    """
    if not is_region(region):
        raise ValueError(f"region {region!r} is not one of {', '.join(REGIONS)}")
    check_secret(passcode, "passcode")
    check_secret(write_key, "write_key")
    row = await session.get(AccountRow, account_id)
    if row is None:
        row = AccountRow(id=account_id, name=name or account_id, region=region, settings=dict(settings or {}))
        session.add(row)
        await session.flush()
    else:
        row.region = region
        if name is not None:
            row.name = name
        if settings is not None:
            row.settings = dict(settings)
    await _make_sole_live(session, digests, account_id=account_id, kind="passcode", secret=passcode)
    await _make_sole_live(session, digests, account_id=account_id, kind="write_key", secret=write_key)
    await _retire_unkeyed_digests(session, account_id)
    await session.flush()
    return to_account(row)


async def delete_account(session: AsyncSession, account_id: str) -> bool:
    """Remove the account row; its credentials, settings and every row that references it (segments,
    campaigns, console users and sessions, identity graph) go with it through ON DELETE CASCADE. False when
    there was no such account."""
    row = await session.get(AccountRow, account_id)
    if row is None:
        return False
    await session.delete(row)
    await session.flush()
    return True


async def update_settings(session: AsyncSession, *, account_id: str, changes: Mapping[str, Any]) -> Account:
    """Merge ``changes`` into the account's settings; a None value removes that setting.

    Raises AccountNotFoundError.
    """
    row = await session.get(AccountRow, account_id)
    if row is None:
        raise AccountNotFoundError(account_id)
    merged = dict(row.settings)
    for key, value in changes.items():
        if value is None:
            merged.pop(key, None)
        else:
            merged[key] = value
    row.settings = merged
    await session.flush()
    return to_account(row)


async def add_credential(
    session: AsyncSession, *, digests: LookupDigests, account_id: str, kind: CredentialKind, secret: str
) -> IssuedCredential:
    """A further live credential for the account.

    Raises AccountNotFoundError, CredentialConflictError, WeakSecretError (a secret under 16 characters).
    """
    check_secret(secret, kind)
    if await session.get(AccountRow, account_id) is None:
        raise AccountNotFoundError(account_id)
    existing = await _find(session, digests, account_id=account_id, kind=kind, secret=secret)
    if existing is not None:
        if existing.account_id != account_id or existing.revoked_at is None:
            raise CredentialConflictError(f"this {_label(kind)} is already in use")
        existing.revoked_at = None
        await session.flush()
        return IssuedCredential(id=existing.id, account_id=account_id, kind=kind, secret=secret)
    row = await _insert(session, digests, account_id=account_id, kind=kind, secret=secret)
    return IssuedCredential(id=row.id, account_id=account_id, kind=kind, secret=secret)


async def revoke_credential(session: AsyncSession, credential_id: int) -> str | None:
    """Revoke one credential; the id of its account when it was live, None when unknown or already revoked."""
    row = await session.get(CredentialRow, credential_id)
    if row is None or row.revoked_at is not None:
        return None
    row.revoked_at = datetime.now(UTC)
    if row.digest_secret_id is None:
        row.lookup_digest = f"{_RETIRED}{row.id}"
    await session.flush()
    return row.account_id


async def list_credentials(session: AsyncSession, account_id: str) -> list[CredentialInfo]:
    rows = await session.scalars(
        select(CredentialRow).where(CredentialRow.account_id == account_id).order_by(CredentialRow.id)
    )
    return [to_credential_info(row) for row in rows]


async def match_credential(
    session: AsyncSession, *, kind: CredentialKind, digests: Sequence[str]
) -> CredentialMatch | None:
    """The live credential of ``kind`` stored under one of ``digests`` (the earliest listed wins), with its
    account; not yet verified."""
    found = (
        await session.execute(
            select(CredentialRow, AccountRow)
            .join(AccountRow, AccountRow.id == CredentialRow.account_id)
            .where(
                CredentialRow.lookup_digest.in_(digests),
                CredentialRow.kind == kind,
                CredentialRow.revoked_at.is_(None),
            )
        )
    ).all()
    if not found:
        return None
    credential, account = min(found, key=lambda pair: digests.index(pair[0].lookup_digest))
    return CredentialMatch(
        credential_id=credential.id,
        account=to_account(account),
        secret_hash=credential.secret_hash,
        lookup_digest=credential.lookup_digest,
    )


async def rekey_credential(
    session: AsyncSession, *, credential_id: int, stored_digest: str, digest: str, secret_id: str
) -> bool:
    """Move a credential from ``stored_digest`` to ``digest`` (keyed by ``secret_id``); the caller verified its
    secret. False when it no longer has ``stored_digest`` (another process re-keyed it first, or it changed)."""
    result = await session.execute(
        update(CredentialRow)
        .where(CredentialRow.id == credential_id, CredentialRow.lookup_digest == stored_digest)
        .values(lookup_digest=digest, digest_secret_id=secret_id)
        .execution_options(synchronize_session=False)
    )
    return bool(getattr(result, "rowcount", 0))


async def live_credentials_by_digest_secret(session: AsyncSession) -> dict[str | None, int]:
    """How many live credentials each credential secret keys (None: still under the unkeyed digest)."""
    rows = await session.execute(
        select(CredentialRow.digest_secret_id, func.count())
        .where(CredentialRow.revoked_at.is_(None))
        .group_by(CredentialRow.digest_secret_id)
    )
    return {secret_id: count for secret_id, count in rows}


async def _make_sole_live(
    session: AsyncSession, digests: LookupDigests, *, account_id: str, kind: CredentialKind, secret: str
) -> None:
    existing = await _find(session, digests, account_id=account_id, kind=kind, secret=secret)
    if existing is not None and existing.account_id != account_id:
        raise CredentialConflictError(f"this {_label(kind)} belongs to another account")
    others = [
        CredentialRow.account_id == account_id,
        CredentialRow.kind == kind,
        CredentialRow.revoked_at.is_(None),
    ]
    if existing is not None:
        others.append(CredentialRow.id != existing.id)
    await session.execute(
        update(CredentialRow)
        .where(*others)
        .values(revoked_at=datetime.now(UTC))
        .execution_options(synchronize_session="fetch")
    )
    if existing is None:
        await _insert(session, digests, account_id=account_id, kind=kind, secret=secret)
    elif existing.revoked_at is not None:
        existing.revoked_at = None


async def _find(
    session: AsyncSession, digests: LookupDigests, *, account_id: str, kind: CredentialKind, secret: str
) -> CredentialRow | None:
    """The credential (live or revoked) holding ``secret``, under whichever digest it is stored."""
    candidates = [c.value for c in digests.candidates(kind, secret, account_id=account_id)]
    rows = list(
        await session.scalars(select(CredentialRow).where(CredentialRow.lookup_digest.in_(candidates)))
    )
    return min(rows, key=lambda r: candidates.index(r.lookup_digest)) if rows else None


async def _insert(
    session: AsyncSession, digests: LookupDigests, *, account_id: str, kind: CredentialKind, secret: str
) -> CredentialRow:
    row = CredentialRow(
        account_id=account_id,
        kind=kind,
        lookup_digest=digests.current(kind, secret, account_id=account_id),
        digest_secret_id=digests.current_secret_id,
        secret_hash=await asyncio.to_thread(hash_secret, secret),
    )
    session.add(row)
    await session.flush()
    return row


# A revoked credential under an unkeyed digest keeps this prefix and its id instead: unique, not hex, so it can
# never match a lookup, and nothing is left in the table to guess its secret from.
_RETIRED = "retired-"


async def _retire_unkeyed_digests(session: AsyncSession, account_id: str) -> None:
    await session.execute(
        update(CredentialRow)
        .where(
            CredentialRow.account_id == account_id,
            CredentialRow.revoked_at.is_not(None),
            CredentialRow.digest_secret_id.is_(None),
        )
        .values(lookup_digest=literal(_RETIRED) + sql_cast(CredentialRow.id, String))
        .execution_options(synchronize_session="fetch")
    )


def _label(kind: CredentialKind) -> str:
    return "write key" if kind == "write_key" else "passcode"
