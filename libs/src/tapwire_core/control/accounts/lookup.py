"""Lookup digests: how a credential is found by its secret alone, keyed so a copy of the store is not enough.

A lookup digest is HMAC-SHA-256 of the credential under the deployment's credential secret
(``TAPWIRE_CREDENTIAL_SECRET``), which lives outside the database: whoever copies the ``credentials`` table still
faces scrypt, or the secret, before guessing anything. Earlier releases stored a plain SHA-256 that anyone could
compute; such a "legacy" digest is still found, and re-keyed the first time its credential is verified.

The setting holds one or more secrets, newest first: the newest keys every digest written, the older ones (and
the unkeyed form) are only looked up, so a secret can be rotated without reissuing credentials.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from tapwire_core.control.accounts.types import CredentialKind

MIN_CREDENTIAL_SECRET_LENGTH = 32
CREDENTIAL_SECRET_FILE = "credential-secret"
SETTING = "TAPWIRE_CREDENTIAL_SECRET"


class CredentialSecretError(ValueError):
    """``TAPWIRE_CREDENTIAL_SECRET`` is missing or unusable. The message never contains a secret."""


@dataclass(frozen=True)
class LookupDigest:
    """A candidate digest and the id of the credential secret that keyed it (None: the unkeyed legacy form)."""

    value: str
    secret_id: str | None


def credential_message(kind: CredentialKind, secret: str, *, account_id: str | None) -> bytes:
    """What a digest is computed over. Passcodes are scoped to their account, write keys are global; length
    prefixes keep the encoding unambiguous, so no (account, secret) pair collides with another."""
    scope = "" if kind == "write_key" else (account_id or "")
    return f"tapwire-credential:{kind}:{len(scope)}:{scope}:{secret}".encode()


def legacy_digest(kind: CredentialKind, secret: str, *, account_id: str | None = None) -> str:
    """The unkeyed SHA-256 earlier releases stored: looked up, never written."""
    return hashlib.sha256(credential_message(kind, secret, account_id=account_id)).hexdigest()


class LookupDigests:
    """Lookup digests under the credential secrets, newest first. Immutable; safe to share between tasks."""

    def __init__(self, credential_secrets: Sequence[str]) -> None:
        if not credential_secrets:
            raise CredentialSecretError(f"{SETTING} names no secret")
        for position, secret in enumerate(credential_secrets, start=1):
            if len(secret) < MIN_CREDENTIAL_SECRET_LENGTH or secret != secret.strip():
                raise CredentialSecretError(
                    f"{SETTING}: secret {position} must be at least {MIN_CREDENTIAL_SECRET_LENGTH} characters "
                    "without surrounding spaces"
                )
        # Keyed once; each digest starts from a copy (keying per call costs more than the digest itself).
        self._keyed = [hmac.new(s.encode(), digestmod=hashlib.sha256) for s in credential_secrets]
        self.secret_ids: tuple[str, ...] = tuple(_secret_id(s) for s in credential_secrets)
        if len(set(self.secret_ids)) != len(self.secret_ids):
            raise CredentialSecretError(f"{SETTING} lists the same secret twice")

    @classmethod
    def parse(cls, value: str) -> LookupDigests:
        """From the setting's form: comma-separated secrets, newest first."""
        return cls([part.strip() for part in value.split(",") if part.strip()])

    @property
    def current_secret_id(self) -> str:
        """The id of the secret every new digest is keyed with (the newest)."""
        return self.secret_ids[0]

    def current(self, kind: CredentialKind, secret: str, *, account_id: str | None = None) -> str:
        """The digest a credential is stored and cached under: keyed with the newest secret."""
        return self._keyed_digest(0, credential_message(kind, secret, account_id=account_id))

    def candidates(
        self, kind: CredentialKind, secret: str, *, account_id: str | None = None
    ) -> tuple[LookupDigest, ...]:
        """Every digest the credential may be stored under, the current one first, the legacy one last."""
        message = credential_message(kind, secret, account_id=account_id)
        keyed = (LookupDigest(self._keyed_digest(i, message), sid) for i, sid in enumerate(self.secret_ids))
        return (*keyed, LookupDigest(hashlib.sha256(message).hexdigest(), None))

    def _keyed_digest(self, index: int, message: bytes) -> str:
        mac = self._keyed[index].copy()
        mac.update(message)
        return mac.hexdigest()


def _secret_id(secret: str) -> str:
    """A short name for a credential secret, stored beside each digest; reveals nothing about the secret."""
    return hmac.new(secret.encode(), b"tapwire-credential-secret-id", hashlib.sha256).hexdigest()[:16]


def load_or_create_credential_secret(configured: str | None, data_dir: Path) -> str:
    """``TAPWIRE_CREDENTIAL_SECRET`` when set; else (embedded mode) a random secret kept with mode 0600 under the
    data directory, created on first start, so credentials stay findable across restarts."""
    if configured and configured.strip():
        return configured
    path = data_dir / CREDENTIAL_SECRET_FILE
    if path.exists():
        return path.read_text().strip()
    data_dir.mkdir(parents=True, exist_ok=True)
    secret = secrets.token_urlsafe(32)
    # Written in full under another name, then linked into place: a process starting at the same time sees
    # either no file or the whole secret, and the first link wins.
    staging = data_dir / f".{CREDENTIAL_SECRET_FILE}.{os.getpid()}.{secrets.token_hex(4)}"
    descriptor = os.open(staging, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            handle.write(secret)
            handle.flush()
            os.fsync(handle.fileno())
        os.link(staging, path)
    except FileExistsError:
        return path.read_text().strip()
    finally:
        staging.unlink(missing_ok=True)
    return secret
