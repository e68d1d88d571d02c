"""The control-plane store: one async SQLAlchemy engine on PostgreSQL (distributed) or SQLite (embedded)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from types import TracebackType
from typing import Any, Self

from sqlalchemy import text
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from tapwire_core.control import migrate
from tapwire_core.control.accounts import operations
from tapwire_core.control.accounts.hashing import generate_secret
from tapwire_core.control.accounts.lookup import SETTING as CREDENTIAL_SECRET_SETTING
from tapwire_core.control.accounts.lookup import CredentialSecretError, LookupDigests
from tapwire_core.control.accounts.types import (
    Account,
    CredentialInfo,
    CredentialKind,
    CredentialMatch,
    IssuedCredential,
)
from tapwire_core.control.engine import create_engine, normalise_url, use_write_ahead_log

log = logging.getLogger(__name__)

# Serialises credential writes across processes sharing one PostgreSQL database.
_WRITE_LOCK_KEY = 0x7A9_C0_18


class ControlStore:
    """Accounts and credentials behind ``postgresql+asyncpg://`` or ``sqlite+aiosqlite:///path`` URLs.

    ``start()`` connects and migrates to head; every other coroutine requires a started store and raises
    RuntimeError otherwise. Reads and writes may raise SQLAlchemyError when the database is unreachable.
    Values returned are frozen dataclasses, never ORM objects. Listeners registered with
    ``add_credentials_listener`` hear the account id after every committed change to its credentials or settings.

    ``lookup_digests`` (from ``TAPWIRE_CREDENTIAL_SECRET``) is required for anything that writes or finds a
    credential; a process that does neither (the loader, migrations) opens the store without it.
    """

    def __init__(self, url: str, *, lookup_digests: LookupDigests | None = None) -> None:
        self._url = normalise_url(url)
        self._lookup_digests = lookup_digests
        self._engine: AsyncEngine | None = None
        self._sessions: async_sessionmaker[AsyncSession] | None = None
        self._write_lock = asyncio.Lock()
        self._listeners: list[Callable[[str], None]] = []

    @property
    def dialect(self) -> str:
        return self._url.get_backend_name()

    @property
    def has_lookup_digests(self) -> bool:
        return self._lookup_digests is not None

    @property
    def lookup_digests(self) -> LookupDigests:
        """How credentials are found. Raises CredentialSecretError when this store was opened without them."""
        if self._lookup_digests is None:
            raise CredentialSecretError(f"{CREDENTIAL_SECRET_SETTING} is not configured for this process")
        return self._lookup_digests

    @property
    def engine(self) -> AsyncEngine:
        if self._engine is None:
            raise RuntimeError("the control store is not started")
        return self._engine

    async def start(self) -> None:
        """Create the engine and apply pending migrations. Idempotent."""
        if self._engine is not None:
            return
        engine = create_engine(self._url)
        try:
            await use_write_ahead_log(engine)
            await migrate.upgrade_engine_to_head(engine)
        except BaseException:
            await engine.dispose()
            raise
        self._engine = engine
        self._sessions = async_sessionmaker(engine, expire_on_commit=False)
        log.info("control store ready", extra={"dialect": self.dialect, "revision": migrate.head_revision()})

    async def close(self) -> None:
        engine, self._engine, self._sessions = self._engine, None, None
        if engine is not None:
            await engine.dispose()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    # Health and schema.

    async def ping(self) -> bool:
        """True when the database answers a trivial query; False (never an exception) otherwise."""
        if self._engine is None:
            return False
        try:
            async with self._engine.connect() as connection:
                await connection.execute(text("SELECT 1"))
        except (SQLAlchemyError, OSError):
            return False
        return True

    @staticmethod
    def migration_head() -> str:
        """The newest schema revision this build ships."""
        return migrate.head_revision()

    async def current_revision(self) -> str | None:
        async with self.engine.connect() as connection:
            return await connection.run_sync(migrate.current_revision)

    async def is_current(self) -> bool:
        """True when the database is at :meth:`migration_head` (for ``/readyz``); False when unreachable."""
        try:
            return await self.current_revision() == self.migration_head()
        except (SQLAlchemyError, OSError):
            return False

    # Accounts.

    async def get_account(self, account_id: str) -> Account | None:
        async with self._read() as session:
            return await operations.get_account(session, account_id)

    async def list_accounts(self) -> list[Account]:
        async with self._read() as session:
            return await operations.list_accounts(session)

    async def upsert_account(
        self,
        account_id: str,
        *,
        passcode: str,
        write_key: str,
        region: str,
        name: str | None = None,
        settings: Mapping[str, Any] | None = None,
    ) -> Account:
        """Create or update the account; afterwards ``passcode`` and ``write_key`` are its only live credentials.

        ``name`` and ``settings`` left as None keep their stored values (a new account is named after its id).
        Raises CredentialConflictError when the write key belongs to another account, WeakSecretError for a
        secret under 16 characters.
        """
        digests = self.lookup_digests

        async def once() -> Account:
            async with self._write(account_id) as session:
                return await operations.upsert_account(
                    session,
                    digests=digests,
                    account_id=account_id,
                    passcode=passcode,
                    write_key=write_key,
                    region=region,
                    name=name,
                    settings=settings,
                )

        try:
            return await once()
        except IntegrityError:
            # Another process inserted the same account or credential between this transaction's read and its
            # insert: replicas applying TAPWIRE_ACCOUNTS at once on one SQLite file (PostgreSQL writers queue
            # on an advisory lock). Its rows are committed now, so the second attempt updates them.
            return await once()

    async def delete_account(self, account_id: str) -> bool:
        """Remove the account and every control-plane row that references it. False when it did not exist."""
        async with self._write(account_id) as session:
            return await operations.delete_account(session, account_id)

    async def update_settings(self, account_id: str, changes: Mapping[str, Any]) -> Account:
        """Merge ``changes`` into the account's settings (None removes a key). Raises AccountNotFoundError."""
        async with self._write(account_id) as session:
            return await operations.update_settings(session, account_id=account_id, changes=changes)

    async def add_passcode(self, account_id: str, passcode: str | None = None) -> IssuedCredential:
        """One more live passcode (generated when None). Raises AccountNotFoundError, CredentialConflictError,
        WeakSecretError."""
        return await self.add_credential(account_id, "passcode", passcode)

    async def add_credential(
        self, account_id: str, kind: CredentialKind, secret: str | None = None
    ) -> IssuedCredential:
        """One more live credential of ``kind``, generated (32 characters) when ``secret`` is None; a given one
        must have 16 characters or more. Raises AccountNotFoundError, CredentialConflictError, WeakSecretError."""
        digests = self.lookup_digests
        async with self._write(account_id) as session:
            return await operations.add_credential(
                session,
                digests=digests,
                account_id=account_id,
                kind=kind,
                secret=generate_secret() if secret is None else secret,
            )

    async def revoke_credential(self, credential_id: int) -> bool:
        """Revoke a credential by id; False when it is unknown or already revoked."""
        async with self._write(None) as session:
            account_id = await operations.revoke_credential(session, credential_id)
        if account_id is not None:
            self._notify(account_id)
        return account_id is not None

    async def list_credentials(self, account_id: str) -> list[CredentialInfo]:
        async with self._read() as session:
            return await operations.list_credentials(session, account_id)

    async def match_credential(
        self, *, kind: CredentialKind, digests: Sequence[str]
    ) -> CredentialMatch | None:
        """The live credential stored under one of ``digests`` (earliest listed first), in one indexed query;
        verification is the caller's (``AccountDirectory``)."""
        async with self._read() as session:
            return await operations.match_credential(session, kind=kind, digests=digests)

    async def rekey_credential(self, credential_id: int, *, stored_digest: str, digest: str) -> bool:
        """Store a verified credential under ``digest``, its current lookup digest, instead of ``stored_digest``.
        False when another process did it first (or the credential changed meanwhile)."""
        secret_id = self.lookup_digests.current_secret_id
        async with self._write(None) as session:
            return await operations.rekey_credential(
                session,
                credential_id=credential_id,
                stored_digest=stored_digest,
                digest=digest,
                secret_id=secret_id,
            )

    async def live_credentials_by_digest_secret(self) -> dict[str | None, int]:
        """Live credentials per credential-secret id; None counts those still under the unkeyed digest."""
        async with self._read() as session:
            return await operations.live_credentials_by_digest_secret(session)

    def add_credentials_listener(self, listener: Callable[[str], None]) -> None:
        self._listeners.append(listener)

    def credentials_changed(self, account_id: str) -> None:
        """Tell this process's listeners that the account's credentials or settings changed by a write made
        outside this store's methods (the privacy worker revoking a deleted account's access)."""
        self._notify(account_id)

    # Sessions.

    @asynccontextmanager
    async def _read(self) -> AsyncIterator[AsyncSession]:
        if self._sessions is None:
            raise RuntimeError("the control store is not started")
        async with self._sessions() as session:
            yield session

    @asynccontextmanager
    async def _write(self, account_id: str | None) -> AsyncIterator[AsyncSession]:
        """A transaction that commits on success, serialised with every other credential write.

        In-process writers queue on a lock (SQLite would otherwise fail a read-then-write upgrade); processes
        sharing PostgreSQL queue on an advisory lock. Listeners hear ``account_id`` once the commit succeeded.
        """
        if self._sessions is None:
            raise RuntimeError("the control store is not started")
        async with self._write_lock, self._sessions() as session, session.begin():
            if self.dialect == "postgresql":
                await session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _WRITE_LOCK_KEY})
            yield session
        if account_id is not None:
            self._notify(account_id)

    def _notify(self, account_id: str) -> None:
        for listener in self._listeners:
            listener(account_id)
