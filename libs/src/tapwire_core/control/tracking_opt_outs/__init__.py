"""Tracking opt-outs: people who told a client SDK to stop tracking them (``clevertap.privacy.push({optOut: true})``).

Unlike a marketing objection, which stops messages, an opt-out stops storage: the gateway drops every later
record of an opted-out device or person. Rows hold salted key hashes (``subject_keys``), like the objection and
suppression lists. Recording an opt-out records a marketing objection for the same keys too (``request_id``
``client-sdk``), which is how messaging and the privacy worker see it; opting back in lifts only that objection,
never one made through a privacy request.
"""

from tapwire_core.control.tracking_opt_outs.list import TrackingOptOutList
from tapwire_core.control.tracking_opt_outs.models import TrackingOptOutRow
from tapwire_core.control.tracking_opt_outs.operations import (
    OBJECTION_SOURCE,
    lift_opt_out,
    record_opt_out,
)

__all__ = ["OBJECTION_SOURCE", "TrackingOptOutList", "TrackingOptOutRow", "lift_opt_out", "record_opt_out"]
