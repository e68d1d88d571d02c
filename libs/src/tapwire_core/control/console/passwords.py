"""Console passwords: the policy, and hashing with the same salted scrypt as the account credentials."""

from __future__ import annotations

import asyncio
import hashlib
import secrets

from tapwire_core.control.accounts.hashing import hash_secret, verify_secret
from tapwire_core.control.console.types import PasswordRejectedError

MIN_LENGTH = 12
MAX_LENGTH = 256

# Verified when the email is unknown, so a wrong email costs as much time as a wrong password.
_DECOY_HASH = hash_secret(secrets.token_urlsafe(16))


def check_policy(password: str, *, email: str) -> None:
    """Raises PasswordRejectedError naming what is wrong: 12 to 256 characters, not the email itself."""
    if len(password) < MIN_LENGTH:
        raise PasswordRejectedError(f"password: at least {MIN_LENGTH} characters")
    if len(password) > MAX_LENGTH:
        raise PasswordRejectedError(f"password: at most {MAX_LENGTH} characters")
    if password.strip().lower() == email.strip().lower():
        raise PasswordRejectedError("password: must not be the email address")


async def hash_password(password: str) -> str:
    """scrypt in a worker thread (~50 ms of CPU), so the event loop keeps serving."""
    return await asyncio.to_thread(hash_secret, password)


async def verify_password(password: str, encoded: str | None) -> bool:
    """True when ``password`` matches; a None hash (no such user, or not yet accepted) verifies a decoy."""
    if encoded is None:
        await asyncio.to_thread(verify_secret, password, _DECOY_HASH)
        return False
    return await asyncio.to_thread(verify_secret, password, encoded)


def token_digest(token: str) -> str:
    """The stored form of a session or invitation token: tokens carry 256 random bits, so SHA-256 suffices."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def new_token(prefix: str) -> str:
    return f"{prefix}_{secrets.token_urlsafe(32)}"
