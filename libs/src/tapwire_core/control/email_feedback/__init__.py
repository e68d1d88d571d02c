"""Bounces and complaints about email addresses, and the suppression list they feed; shared by the messaging
service, which records them and checks the list before every email, and the privacy worker, which erases a
person's records.

Rows hold keyed hashes of addresses (``tapwire_core.control.privacy.subject_keys``), never the addresses.
"""

from tapwire_core.control.email_feedback.models import EmailFeedbackRow, EmailSuppressionRow
from tapwire_core.control.email_feedback.operations import (
    FEEDBACK_KINDS,
    FeedbackEntry,
    FeedbackKind,
    FeedbackView,
    Recorded,
    SoftBouncePolicy,
    SuppressionReason,
    SuppressionView,
    address_hash,
    address_state,
    lift_suppression,
    normalise_address,
    record_feedback,
    recorded_notices,
    suppressed_addresses,
)

__all__ = [
    "FEEDBACK_KINDS",
    "EmailFeedbackRow",
    "EmailSuppressionRow",
    "FeedbackEntry",
    "FeedbackKind",
    "FeedbackView",
    "Recorded",
    "SoftBouncePolicy",
    "SuppressionReason",
    "SuppressionView",
    "address_hash",
    "address_state",
    "lift_suppression",
    "normalise_address",
    "record_feedback",
    "recorded_notices",
    "suppressed_addresses",
]
