"""The completion record of an offboarding: what was done and when, with no personal data.

Kept in the request's ``verification`` (``privacy_requests``, purged with the other request records after
``TAPWIRE_PRIVACY_RECORD_RETENTION_DAYS``, 24 months): the account id (the customer's, not a person's), the
times of each step, the rows exported and removed per store, the archive's SHA-256 and size, and until when a copy
of the account's records may have stayed on the bus. No identifier, address, name or secret.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from tapwire_privacy.records import RequestView, iso


def completion_record(
    offboarding: dict[str, Any], removed: dict[str, int], view: RequestView, now: dt.datetime
) -> dict[str, Any]:
    archive = offboarding.get("archive", {})
    revoked = offboarding.get("revoked", {})
    return {
        "account_id": view.account_id,
        "requested_at": iso(view.received_at),
        "access_revoked_at": revoked.get("at"),
        "credentials_revoked": revoked.get("credentials", 0),
        "archive": {
            "sha256": archive.get("sha256"),
            "bytes": archive.get("bytes"),
            "written_at": archive.get("written_at"),
            "expires_at": archive.get("expires_at"),
            "rows": archive.get("rows", {}),
        },
        "removed": removed,
        "completed_at": iso(now),
    }
