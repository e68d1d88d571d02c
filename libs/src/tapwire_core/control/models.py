"""Every control-plane table, imported in one place so the metadata is complete (Alembic, schema checks)."""

from tapwire_core.control.accounts.models import AccountRow, CredentialRow
from tapwire_core.control.base import Base
from tapwire_core.control.marketing_objections.models import MarketingObjectionRow
from tapwire_core.control.privacy.models import (
    PrivacyAuditRow,
    PrivacyKeyRow,
    PrivacyNoticeRow,
    PrivacyRequestRow,
    PrivacyRequestSubjectRow,
    SuppressionRow,
)

__all__ = [
    "AccountRow",
    "Base",
    "CredentialRow",
    "MarketingObjectionRow",
    "PrivacyAuditRow",
    "PrivacyKeyRow",
    "PrivacyNoticeRow",
    "PrivacyRequestRow",
    "PrivacyRequestSubjectRow",
    "SuppressionRow",
]
