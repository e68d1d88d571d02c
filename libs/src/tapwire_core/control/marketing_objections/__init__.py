"""Marketing objections (GDPR Art. 21 opt-outs), shared by the privacy worker, which records them, and the
messaging service, which must not send marketing to anyone listed here.

Rows hold salted hashes of subject keys (``tapwire_core.control.privacy.subject_keys``), so the table says
"this identifier objected" without listing identifiers. Messaging checks a recipient with :func:`has_objected`
before every marketing send; its consent check (``tapwire_core.control.messaging.consent.blocked``) reads this
table for every batch it judges, so an objection holds from the next message on. This is the only store of
objections: messaging's own ``record_objection`` writes here too.
"""

from tapwire_core.control.marketing_objections.models import MarketingObjectionRow
from tapwire_core.control.marketing_objections.operations import (
    has_objected,
    lift_objection,
    objected_keys,
    record_objection,
)

__all__ = ["MarketingObjectionRow", "has_objected", "lift_objection", "objected_keys", "record_objection"]
