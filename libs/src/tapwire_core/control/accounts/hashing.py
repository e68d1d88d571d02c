"""Secrets at rest: a slow salted scrypt hash verifies a credential (``lookup`` finds it), and the rules a
passcode or write key must meet."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets

from tapwire_core.control.accounts.types import CredentialKind, WeakSecretError

SCRYPT_LOG2_N = 14
SCRYPT_R = 8
SCRYPT_P = 1
_SALT_BYTES = 16
_KEY_BYTES = 32
MIN_SECRET_LENGTH = 16
GENERATED_SECRET_LENGTH = 32
_MAXMEM = 64 * 1024 * 1024
_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
_SCHEME = "scrypt"


def check_secret(secret: str, kind: CredentialKind) -> None:
    """Raise WeakSecretError unless ``secret`` is long enough to be a passcode or write key.

    The scrypt hash slows a guess down, it cannot make a short secret long: 16 characters is the least that
    stays out of reach of offline guessing. Generated secrets have 32 (about 190 bits).
    """
    if len(secret) < MIN_SECRET_LENGTH:
        label = "write key" if kind == "write_key" else "passcode"
        raise WeakSecretError(f"a {label} must be at least {MIN_SECRET_LENGTH} characters")


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


def generate_secret(length: int = GENERATED_SECRET_LENGTH) -> str:
    """A random alphanumeric secret: safe in headers, HTTP Basic, shells and ``TAPWIRE_ACCOUNTS``."""
    if length < GENERATED_SECRET_LENGTH:
        raise ValueError(f"generated secrets have at least {GENERATED_SECRET_LENGTH} characters")
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
