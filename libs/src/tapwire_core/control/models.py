"""Every control-plane table, imported in one place so the metadata is complete (Alembic, schema checks)."""

from tapwire_core.control.accounts.models import AccountRow, CredentialRow
from tapwire_core.control.aggregate_release_models import AggregateReleaseRow
from tapwire_core.control.base import Base
from tapwire_core.control.console.models import (
    AuditEntryRow,
    ConsoleSessionRow,
    ConsoleUserRow,
    SignInThrottleRow,
)
from tapwire_core.control.email_feedback.models import EmailFeedbackRow, EmailSuppressionRow
from tapwire_core.control.marketing_objections.models import MarketingObjectionRow
from tapwire_core.control.messaging.journey_models import (
    JourneyHistoryRow,
    JourneyPositionRow,
    JourneyRow,
    JourneyVersionRow,
)
from tapwire_core.control.messaging.models import CampaignRow, ConsentRow, InteractionRow, OutboxRow
from tapwire_core.control.messaging.trigger_models import TriggerTimerRow
from tapwire_core.control.privacy.ledger_models import ErasureLedgerRow
from tapwire_core.control.privacy.models import (
    PrivacyAuditRow,
    PrivacyKeyRow,
    PrivacyNoticeRow,
    PrivacyRequestRow,
    PrivacyRequestSubjectRow,
    SuppressionRow,
)
from tapwire_core.control.query_job_models import QueryJobRow
from tapwire_core.control.sdk_messages.models import SdkMessageKeyRow, SdkMessageRow
from tapwire_core.control.segment_models import SegmentRow
from tapwire_core.control.tracking_opt_outs.models import TrackingOptOutRow
from tapwire_core.identity.models import IdentityEdgeRow, IdentityNodeRow

__all__ = [
    "AccountRow",
    "AggregateReleaseRow",
    "AuditEntryRow",
    "Base",
    "CampaignRow",
    "ConsentRow",
    "ConsoleSessionRow",
    "ConsoleUserRow",
    "CredentialRow",
    "EmailFeedbackRow",
    "EmailSuppressionRow",
    "ErasureLedgerRow",
    "IdentityEdgeRow",
    "IdentityNodeRow",
    "InteractionRow",
    "JourneyHistoryRow",
    "JourneyPositionRow",
    "JourneyRow",
    "JourneyVersionRow",
    "MarketingObjectionRow",
    "OutboxRow",
    "PrivacyAuditRow",
    "PrivacyKeyRow",
    "PrivacyNoticeRow",
    "PrivacyRequestRow",
    "PrivacyRequestSubjectRow",
    "QueryJobRow",
    "SdkMessageKeyRow",
    "SdkMessageRow",
    "SegmentRow",
    "SignInThrottleRow",
    "SuppressionRow",
    "TrackingOptOutRow",
    "TriggerTimerRow",
]
