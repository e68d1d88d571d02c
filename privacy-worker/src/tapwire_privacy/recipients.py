"""Recipients of a subject's data (GDPR Art. 19): who got it, and telling them about erasure and rectification.

A :class:`Recipient` is contributed by the service that sent data out (messaging providers and customer webhooks
from the messaging service); it says what it received about a subject and forwards an erasure or rectification
where it has an API for it (for an erasure, before any store is erased, so what names the recipient's records is
still there). Where it has none it raises :class:`ForwardImpossible` with the reason, which the
worker records in the audit trail instead of failing the request. Exports list every recipient that received
something.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal, Protocol

from tapwire_privacy.stores.base import Scope

Forwarded = Literal["erasure", "rectify"]


class ForwardImpossible(Exception):
    """The recipient cannot be told (no API, no address). ``reason`` goes into the audit trail."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Recipient(Protocol):
    name: str
    """Stable name used in manifests and the audit trail, e.g. ``messaging.sms_provider``."""

    async def received(self, scope: Scope) -> list[dict[str, Any]]:
        """What this recipient got about the scope (JSON-ready, no more than needed to show it); [] if nothing.

        Read from our own records of what was sent, which the erasure removes: an erasure's second sweep forwards
        again only to a recipient that lists something sent to the subject after the first pass."""
        ...

    async def forward(
        self, action: Forwarded, scope: Scope, fields: Mapping[str, Any] | None
    ) -> Mapping[str, int] | None:
        """Tell the recipient. Returns counts for the audit trail and the request's progress (e.g. records
        deleted), never personal data; None when there is nothing to count. Raises ForwardImpossible when it
        cannot be told; any other error fails the step, which is retried later, and must leave the forward safe
        to repeat (the worker forwards again until it succeeds)."""
        ...
