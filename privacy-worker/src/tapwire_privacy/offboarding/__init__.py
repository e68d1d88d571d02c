"""Account offboarding: the customer's own data (the privacy policy's section 10), exported and then deleted.

An offboarding is a tenant-level erasure request whose record carries ``progress.offboarding``. It runs
``revoke -> export`` here (``steps``), then the erasure's phases with one more store, every control table's rows
of the account (``handler``, the tables found by ``account_rows``), and completes when the last bus copy of the
account's records is past its retention, keeping a completion record without personal data for 24 months.

- ``revoke``: every credential revoked, console sessions ended, client-SDK ingestion switched off, before anything
  is read: nothing new arrives while the account is exported and deleted;
- ``export``: every store of the account streamed into one archive (bounded memory), its SHA-256 recorded; the
  archive is handed to the customer through a signed, expiring link and erased after the export retention.
"""

from __future__ import annotations

from typing import Any, Final

from tapwire_privacy.records import RequestView

OFFBOARDING: Final = "offboarding"
"""The progress key that makes a tenant erasure an offboarding."""
REVOKE: Final = "revoke"
EXPORT: Final = "export"
STEPS: Final = (REVOKE, EXPORT)
"""The phases an offboarding runs before the erasure's own."""
ACCOUNT_DELETED: Final = "*account"
"""The erasure-ledger entry an offboarding adds to the account-wide ``*``: after a restore, ``tapwire privacy
reapply`` deletes the account whole again (credentials and settings too), not only its end users' data."""


def is_offboarding(view: RequestView) -> bool:
    return view.type == "erasure" and view.scope == "tenant" and OFFBOARDING in view.progress


def offboarding_of(progress: dict[str, Any]) -> dict[str, Any]:
    """The offboarding's own part of a request's progress (changed in place)."""
    part: dict[str, Any] = progress.setdefault(OFFBOARDING, {})
    return part


def reapplied_offboarding(original_id: str) -> dict[str, Any]:
    """Where an offboarding repeated after a backup's restore starts: access revoked again, no new archive (the
    customer had theirs), then every store erased."""
    return {"phase": REVOKE, OFFBOARDING: {"reapplies": original_id, "export": "skipped"}}
