"""Accounts at start-up: those named in ``TAPWIRE_ACCOUNTS``, or one demo account in embedded mode.

``TAPWIRE_ACCOUNTS`` is comma-separated ``ACCOUNT_ID:PASSCODE:WRITE_KEY[:REGION]``, secrets of 16 characters or
more; each entry is created or updated (its credentials replaced) on every start. Without it, embedded mode creates the demo account once and
hands back its plaintext credentials that one time only: the store keeps nothing it could show again.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from tapwire_core.control.accounts.hashing import MIN_SECRET_LENGTH, generate_secret
from tapwire_core.control.accounts.types import Account
from tapwire_core.control.regions import REGIONS, is_region
from tapwire_core.control.store import ControlStore

DEMO_ACCOUNT_ID = "TAP-DEMO-0001"
DEMO_ACCOUNT_NAME = "Demo account"
RESET_DEMO_COMMAND = "tapwire accounts reset-demo"
ENTRY_FORMAT = "ACCOUNT_ID:PASSCODE:WRITE_KEY[:REGION]"

_ACCOUNT_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
# Printable ASCII without space; ":" and "," are the format's own separators. Length is checked on its own.
_SECRET = re.compile(r"[!-+\--9;-~]{1,256}")


class AccountsConfigError(ValueError):
    """``TAPWIRE_ACCOUNTS`` (or the deployment region) is malformed. The message names the entry, never a secret."""


@dataclass(frozen=True)
class AccountSpec:
    """One parsed ``TAPWIRE_ACCOUNTS`` entry."""

    account_id: str
    passcode: str = field(repr=False)
    write_key: str = field(repr=False)
    region: str


@dataclass(frozen=True)
class DemoCredentials:
    """The demo account's plaintext credentials, known only at creation or reset."""

    account_id: str
    passcode: str = field(repr=False)
    write_key: str = field(repr=False)
    region: str


@dataclass(frozen=True)
class BootstrapResult:
    """What start-up did. ``demo_credentials`` is set only when the demo account was created just now."""

    applied: tuple[str, ...] = ()
    demo_account: Account | None = None
    demo_credentials: DemoCredentials | None = None

    def announcement(self) -> list[str]:
        """Lines for the operator. They contain the demo secrets only on the start that created them."""
        if self.applied:
            return [f"Accounts from TAPWIRE_ACCOUNTS: {', '.join(self.applied)}"]
        if self.demo_credentials is not None:
            creds = self.demo_credentials
            return [
                "Created the demo account. Its credentials are shown this once; keep them:",
                f"  account id: {creds.account_id}",
                f"  passcode:   {creds.passcode}",
                f"  write key:  {creds.write_key}",
                f"  region:     {creds.region}",
                f"New credentials can be issued with `{RESET_DEMO_COMMAND}`.",
            ]
        if self.demo_account is not None:
            return [
                f"Demo account {self.demo_account.id} exists; its credentials were printed when it was created. "
                f"Issue new ones with `{RESET_DEMO_COMMAND}`."
            ]
        return []


def parse_accounts(value: str, *, default_region: str) -> list[AccountSpec]:
    """Parse ``TAPWIRE_ACCOUNTS``. Blank entries (e.g. a trailing comma) are ignored.

    Raises AccountsConfigError for a malformed entry, an unknown region, a repeated account id or a write key
    shared by two entries.
    """
    if not is_region(default_region):
        raise AccountsConfigError(f"deployment region {default_region!r} is not one of {', '.join(REGIONS)}")
    specs: list[AccountSpec] = []
    first_entry_of_key: dict[str, int] = {}
    entries_by_id: dict[str, int] = {}
    for number, raw in enumerate(value.split(","), start=1):
        entry = raw.strip()
        if not entry:
            continue
        spec = _parse_entry(entry, number=number, default_region=default_region)
        if spec.account_id in entries_by_id:
            raise AccountsConfigError(
                f"TAPWIRE_ACCOUNTS entry {number} ({_masked(entry)}): account id repeats "
                f"entry {entries_by_id[spec.account_id]}"
            )
        if spec.write_key in first_entry_of_key:
            raise AccountsConfigError(
                f"TAPWIRE_ACCOUNTS entry {number} ({_masked(entry)}): write key repeats the one of "
                f"entry {first_entry_of_key[spec.write_key]}; write keys identify one account each"
            )
        entries_by_id[spec.account_id] = number
        first_entry_of_key[spec.write_key] = number
        specs.append(spec)
    return specs


def format_accounts(specs: Sequence[AccountSpec]) -> str:
    """The ``TAPWIRE_ACCOUNTS`` value describing ``specs`` (the inverse of :func:`parse_accounts`)."""
    return ",".join(f"{s.account_id}:{s.passcode}:{s.write_key}:{s.region}" for s in specs)


def _parse_entry(entry: str, *, number: int, default_region: str) -> AccountSpec:
    where = f"TAPWIRE_ACCOUNTS entry {number} ({_masked(entry)})"
    fields = entry.split(":")
    if len(fields) not in (3, 4):
        raise AccountsConfigError(f"{where}: expected {ENTRY_FORMAT}, found {len(fields)} fields")
    account_id, passcode, write_key = (f.strip() for f in fields[:3])
    region = fields[3].strip() if len(fields) == 4 else default_region
    if not _ACCOUNT_ID.fullmatch(account_id):
        raise AccountsConfigError(
            f"{where}: account id must be 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit"
        )
    for label, secret in (("passcode", passcode), ("write key", write_key)):
        if not _SECRET.fullmatch(secret):
            raise AccountsConfigError(
                f"{where}: {label} must be {MIN_SECRET_LENGTH}-256 printable characters without spaces"
            )
        if len(secret) < MIN_SECRET_LENGTH:
            raise AccountsConfigError(
                f"{where}: the {label} of account {account_id} is shorter than {MIN_SECRET_LENGTH} characters; "
                "use a random one of 32 (e.g. `openssl rand -hex 16`)"
            )
    if not is_region(region):
        raise AccountsConfigError(f"{where}: region {region!r} is not one of {', '.join(REGIONS)}")
    return AccountSpec(account_id=account_id, passcode=passcode, write_key=write_key, region=region)


def _masked(entry: str) -> str:
    """The entry with its secrets hidden: only the account id and region are safe to print."""
    fields = entry.split(":")
    if len(fields) == 4:
        return f"{fields[0]}:***:***:{fields[3]}"
    if len(fields) == 3:
        return f"{fields[0]}:***:***"
    return f"{fields[0]}:…" if len(fields) > 1 else "…"


async def apply_accounts(store: ControlStore, specs: Sequence[AccountSpec]) -> list[Account]:
    """Create or update each account with exactly its listed passcode and write key live."""
    return [
        await store.upsert_account(
            spec.account_id, passcode=spec.passcode, write_key=spec.write_key, region=spec.region
        )
        for spec in specs
    ]


async def ensure_demo_account(store: ControlStore, *, region: str) -> tuple[Account, DemoCredentials | None]:
    """The demo account, created with fresh random credentials if missing; the credentials only when created."""
    existing = await store.get_account(DEMO_ACCOUNT_ID)
    if existing is not None:
        return existing, None
    credentials = await reset_demo_credentials(store, region=region)
    account = await store.get_account(DEMO_ACCOUNT_ID)
    assert account is not None
    return account, credentials


async def reset_demo_credentials(store: ControlStore, *, region: str | None = None) -> DemoCredentials:
    """Issue a new passcode and write key for the demo account (creating it if needed); old ones stop working.

    ``region`` applies when the account is created; an existing demo account keeps its region.
    """
    existing = await store.get_account(DEMO_ACCOUNT_ID)
    home = existing.region if existing is not None else region
    if home is None or not is_region(home):
        raise AccountsConfigError(f"demo account region {home!r} is not one of {', '.join(REGIONS)}")
    credentials = DemoCredentials(
        account_id=DEMO_ACCOUNT_ID, passcode=generate_secret(), write_key=generate_secret(), region=home
    )
    await store.upsert_account(
        DEMO_ACCOUNT_ID,
        passcode=credentials.passcode,
        write_key=credentials.write_key,
        region=home,
        name=None if existing is not None else DEMO_ACCOUNT_NAME,
    )
    return credentials


async def bootstrap_accounts(
    store: ControlStore, *, accounts: str | None, region: str, embedded: bool
) -> BootstrapResult:
    """Apply ``TAPWIRE_ACCOUNTS`` when set (non-blank); otherwise, in embedded mode, make sure the demo exists.

    Raises AccountsConfigError before touching the store when the value is malformed.
    """
    if accounts is not None and accounts.strip():
        specs = parse_accounts(accounts, default_region=region)
        if not specs:
            raise AccountsConfigError("TAPWIRE_ACCOUNTS is set but names no account")
        applied = await apply_accounts(store, specs)
        return BootstrapResult(applied=tuple(a.id for a in applied))
    if not embedded:
        return BootstrapResult()
    account, credentials = await ensure_demo_account(store, region=region)
    return BootstrapResult(demo_account=account, demo_credentials=credentials)
