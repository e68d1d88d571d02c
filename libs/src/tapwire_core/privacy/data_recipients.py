"""Data recipients (GDPR Art. 19): who received a subject's data, and telling them about erasure and rectification.

A *data recipient* is a party outside the suite that personal data was handed to: an SMTP relay, a push service,
an SMS provider, a customer's webhook endpoint. (A *recipient*, without the qualifier, is the person a message
goes to.) The service that sent the data out contributes one :class:`DataRecipient` per destination; the privacy
worker asks each what it received about a subject and forwards an erasure or rectification where it has an API
for it (for an erasure, before any store is erased, so what names the data recipient's records is still there).
Where it has none it raises :class:`ForwardImpossible` with the reason, which the worker records in the audit
trail instead of failing the request. Exports list every data recipient that received something.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal, Protocol

from tapwire_core.privacy.scope import Scope

Forwarded = Literal["erasure", "rectify"]


class ForwardImpossible(Exception):
    """The data recipient cannot be told (no API, no address). ``reason`` goes into the audit trail."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class DataRecipient(Protocol):
    name: str
    """Stable name used in manifests and the audit trail, e.g. ``messaging.sms``."""

    async def received(self, scope: Scope) -> list[dict[str, Any]]:
        """What this data recipient got about the scope (JSON-ready, no more than needed to show it); [] if
        nothing.

        Read from our own records of what was sent, which the erasure removes: an erasure's second sweep forwards
        again only to a data recipient that lists something sent to the subject after the first pass."""
        ...

    async def forward(
        self, action: Forwarded, scope: Scope, fields: Mapping[str, Any] | None
    ) -> Mapping[str, int] | None:
        """Tell the data recipient. Returns counts for the audit trail and the request's progress (e.g. records
        deleted), never personal data; None when there is nothing to count. Raises ForwardImpossible when it
        cannot be told; any other error fails the step, which is retried later, and must leave the forward safe
        to repeat (the worker forwards again until it succeeds)."""
        ...
