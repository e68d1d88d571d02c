"""Per-record rejection codes of the CleverTap Upload API."""

from __future__ import annotations

from typing import Final


class RecordRejected(Exception):
    """One upload record is invalid; it goes to ``unprocessed`` and its neighbours are still accepted."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


EVENT_NAME_MISSING: Final = 509
BAD_EVENT_STRUCTURE: Final = 512
RESTRICTED_EVENT: Final = 513
GENDER_INVALID: Final = 514
EMAIL_INVALID: Final = 515
PHONE_INVALID: Final = 516
EMPLOYED_INVALID: Final = 517
EDUCATION_INVALID: Final = 518
MARRIED_INVALID: Final = 519
AGE_INVALID: Final = 520
TOO_MANY_PROPERTIES: Final = 522
IDENTITY_INVALID: Final = 523
UNKNOWN_RECORD_TYPE: Final = 524
TS_INVALID: Final = 525
OBJECT_ID_INVALID: Final = 526
TOKEN_OBJECT_ID_INVALID: Final = 530
TOKEN_DATA_INVALID: Final = 531
TOKEN_ID_MISSING: Final = 532
TOKEN_TYPE_MISSING: Final = 533
TOKEN_TYPE_INVALID: Final = 534
