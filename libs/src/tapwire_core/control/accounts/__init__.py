"""Accounts and their credentials: tables, hashing, the store operations and the authenticating directory."""

from tapwire_core.control.accounts.directory import AccountDirectory
from tapwire_core.control.accounts.types import (
    Account,
    AccountNotFoundError,
    CredentialConflictError,
    CredentialInfo,
    CredentialKind,
    IssuedCredential,
)

__all__ = [
    "Account",
    "AccountDirectory",
    "AccountNotFoundError",
    "CredentialConflictError",
    "CredentialInfo",
    "CredentialKind",
    "IssuedCredential",
]
