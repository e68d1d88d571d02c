"""Plain values the accounts domain hands to callers; never ORM objects."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from types import MappingProxyType
from typing import Any, Literal

CredentialKind = Literal["passcode", "write_key"]
CREDENTIAL_KINDS: tuple[CredentialKind, ...] = ("passcode", "write_key")


@dataclass(frozen=True)
class Account:
    """An account as the services see it. ``settings`` is a read-only view (e.g. ``upload_concurrency``)."""

    id: str
    name: str
    region: str
    settings: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))


@dataclass(frozen=True)
class CredentialInfo:
    """What may be shown about a credential: never its secret, which is not stored."""

    id: int
    account_id: str
    kind: CredentialKind
    created_at: datetime
    revoked_at: datetime | None

    @property
    def live(self) -> bool:
        return self.revoked_at is None


@dataclass(frozen=True)
class IssuedCredential:
    """A credential just created, with its plaintext secret: the only moment the secret is known to the store."""

    id: int
    account_id: str
    kind: CredentialKind
    secret: str = field(repr=False)


@dataclass(frozen=True)
class CredentialMatch:
    """A live credential found by its lookup digest, still to be verified against ``secret_hash``."""

    credential_id: int
    account: Account
    secret_hash: str = field(repr=False)
    lookup_digest: str
    """The digest it is stored under: when that is not the current one, the verifier re-keys it."""


class ControlError(Exception):
    """Base of the control store's own errors."""


class AccountNotFoundError(ControlError, LookupError):
    """The named account does not exist."""


class WeakSecretError(ControlError, ValueError):
    """A passcode or write key too short to be a credential. The message never contains the secret."""


class CredentialConflictError(ControlError, ValueError):
    """The secret is already in use (a write key held by another account, or a passcode already live)."""
