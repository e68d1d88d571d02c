"""Secrets at rest: a fast lookup digest to find a credential, a slow salted scrypt hash to verify it.

Neither reveals the secret. The digest is an unsalted SHA-256 so a credential can be found by its secret alone
(Segment-style auth sends only the write key); generated secrets carry ~190 bits, which makes that digest as
strong as the secret itself. The scrypt hash is the verifier proper.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets

from tapwire_core.control.accounts.types import CredentialKind

SCRYPT_LOG2_N = 14
SCRYPT_R = 8
SCRYPT_P = 1
_SALT_BYTES = 16
_KEY_BYTES = 32
_MAXMEM = 64 * 1024 * 1024
_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
_SCHEME = "scrypt"


def lookup_digest(kind: CredentialKind, secret: str, *, account_id: str | None = None) -> str:
    """Hex SHA-256 identifying a credential. Passcodes are scoped to their account, write keys are global.

    Length prefixes keep the encoding unambiguous, so no (account, secret) pair collides with another.
    """
    scope = "" if kind == "write_key" else (account_id or "")
    message = f"tapwire-credential:{kind}:{len(scope)}:{scope}:{secret}"
    return hashlib.sha256(message.encode("utf-8")).hexdigest()


def passcode_digest(account_id: str, passcode: str) -> str:
    return lookup_digest("passcode", passcode, account_id=account_id)


def write_key_digest(write_key: str) -> str:
    return lookup_digest("write_key", write_key)


def hash_secret(secret: str) -> str:
    """A self-describing salted scrypt hash, ``scrypt$<log2 n>$<r>$<p>$<salt>$<key>``. CPU-bound (~50 ms)."""
    salt = os.urandom(_SALT_BYTES)
    key = _scrypt(secret, salt, log2_n=SCRYPT_LOG2_N, r=SCRYPT_R, p=SCRYPT_P)
    return "$".join((_SCHEME, str(SCRYPT_LOG2_N), str(SCRYPT_R), str(SCRYPT_P), _b64(salt), _b64(key)))


def verify_secret(secret: str, encoded: str) -> bool:
    """True when ``secret`` produced ``encoded``. Constant-time comparison; a malformed hash verifies nothing."""
    parts = encoded.split("$")
    if len(parts) != 6 or parts[0] != _SCHEME:
        return False
    try:
        log2_n, r, p = int(parts[1]), int(parts[2]), int(parts[3])
        salt, expected = _unb64(parts[4]), _unb64(parts[5])
    except ValueError:
        return False
    if not (1 <= log2_n <= 20 and 1 <= r <= 32 and 1 <= p <= 16):
        return False
    return hmac.compare_digest(_scrypt(secret, salt, log2_n=log2_n, r=r, p=p, dklen=len(expected)), expected)


def generate_secret(length: int = 32) -> str:
    """A random alphanumeric secret: safe in headers, HTTP Basic, shells and ``TAPWIRE_ACCOUNTS``."""
    return "".join(secrets.choice(_ALPHABET) for _ in range(length))


def _scrypt(secret: str, salt: bytes, *, log2_n: int, r: int, p: int, dklen: int = _KEY_BYTES) -> bytes:
    return hashlib.scrypt(
        secret.encode("utf-8"), salt=salt, n=1 << log2_n, r=r, p=p, maxmem=_MAXMEM, dklen=dklen
    )


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode("ascii").rstrip("=")


def _unb64(text: str) -> bytes:
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (ValueError, TypeError) as exc:
        raise ValueError("malformed base64") from exc
