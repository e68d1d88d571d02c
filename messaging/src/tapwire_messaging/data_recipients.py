"""Messaging's part in privacy requests: who received a subject's data (GDPR Art. 19).

Every message sent hands the recipient's address and the rendered content to a provider: the SMTP relay, the
push services (FCM, APNs), the SMS provider, or the campaign's webhook target. The delivery records (the
outbox) say which, so each channel is one :class:`~tapwire_core.privacy.data_recipients.DataRecipient` that
lists what it received about a subject, for the export, and answers an erasure or rectification.

The SMS provider (Twilio-shaped) keeps a record of every message, body and number included, and deletes it on
request: an erasure deletes each of the subject's message records there by the SID the outbox kept
(:class:`SmsDataRecipient`). The worker forwards before any store is erased, so the SIDs are still in the outbox; a
worker that dies after the deletions and before the outbox erasure forwards again, and the provider answers 404
(already gone). A sent text cannot be corrected, so a rectification is recorded as impossible. The SMTP relay and
the push services have no API to erase or correct a delivered message, and webhook targets are the customer's own
endpoints: those forwards are recorded as impossible with that reason.

The messaging tables themselves are covered by the privacy worker's handlers (``tapwire_privacy.stores.messaging``);
this module only reads the outbox.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import ColumnElement, or_, select
from sqlalchemy.ext.asyncio import AsyncEngine

from tapwire_core.control.messaging.models import OutboxRow
from tapwire_core.privacy.data_recipients import DataRecipient, Forwarded, ForwardImpossible
from tapwire_core.privacy.scope import Scope
from tapwire_core.settings import Settings
from tapwire_messaging.channels.http_retry import RetryPolicy
from tapwire_messaging.channels.sms import Deleted, TwilioMessageEraser

CHANNELS = ("email", "push", "sms", "webhook")

_NO_API = {
    "email": "an SMTP relay has no API to erase or correct a delivered message; it sits in the user's mailbox",
    "push": "FCM, APNs and the browsers' web push services have no API to recall or correct a delivered "
    "notification",
    "sms": "a sent text message cannot be corrected; the SMS provider's records of it are deleted on erasure",
    "webhook": "webhook targets are the customer's own endpoints; the customer (the controller) is told through "
    "its privacy webhook",
}


def _endpoint(url: str | None) -> str:
    """Host and port of a provider URL, without credentials, path or query."""
    if not url:
        return "not configured"
    parts = urlsplit(url)
    return parts.hostname + (f":{parts.port}" if parts.port else "") if parts.hostname else "not configured"


class ChannelDataRecipient:
    """The providers of one channel that received a subject's messages, found from the delivery records."""

    def __init__(self, engine: AsyncEngine, settings: Settings, channel: str) -> None:
        self.name = f"messaging.{channel}"
        self._engine = engine
        self._settings = settings
        self._channel = channel

    def _provider(self, row: Any) -> str:
        if self._channel == "email":
            return f"SMTP relay {_endpoint(self._settings.smtp_url)}"
        if self._channel == "sms":
            return f"SMS provider {_endpoint(self._settings.sms_url)}"
        if self._channel == "webhook":
            return f"webhook {_endpoint(row.address)}"
        if row.platform == "apns":
            return f"APNs {_endpoint(self._settings.apns_url)}"
        if row.platform == "chrome":
            return f"web push service {_endpoint(row.address)}"
        return f"FCM {_endpoint(self._settings.fcm_url)}"

    def _subject_rows(self, scope: Scope) -> list[ColumnElement[bool]]:
        """Conditions narrowing the outbox to this channel's messages to the scope (by user key, or address)."""
        conditions = [OutboxRow.account_id == scope.account_id, OutboxRow.channel == self._channel]
        if scope.keys is not None:
            keys = sorted(scope.keys)
            addresses = [k.split(":", 1)[1] for k in keys if k[:2] in ("e:", "p:")]
            conditions.append(or_(OutboxRow.user_key.in_(keys), OutboxRow.address.in_(addresses)))
        return conditions

    async def received(self, scope: Scope) -> list[dict[str, Any]]:
        query = select(OutboxRow.address, OutboxRow.platform).where(
            OutboxRow.status == "sent", *self._subject_rows(scope)
        )
        async with self._engine.connect() as connection:
            rows = (await connection.execute(query)).all()
        by_provider: dict[str, list[str]] = defaultdict(list)
        for row in rows:
            # A webhook URL is the customer's and may carry its credentials: only its host goes into an export.
            shown = _endpoint(row.address) if self._channel == "webhook" else row.address
            by_provider[self._provider(row)].append(shown)
        return [
            {
                "channel": self._channel,
                "provider": provider,
                "messages": len(addresses),
                "addresses": sorted(set(addresses)),
            }
            for provider, addresses in sorted(by_provider.items())
        ]

    async def forward(
        self, action: Forwarded, scope: Scope, fields: Mapping[str, Any] | None
    ) -> Mapping[str, int] | None:
        raise ForwardImpossible(_NO_API[self._channel])


class SmsDataRecipient(ChannelDataRecipient):
    """The SMS provider: an erasure deletes the subject's message records there; a rectification is impossible."""

    def __init__(self, engine: AsyncEngine, settings: Settings, *, policy: RetryPolicy | None = None) -> None:
        super().__init__(engine, settings, "sms")
        self._policy = policy

    async def forward(
        self, action: Forwarded, scope: Scope, fields: Mapping[str, Any] | None
    ) -> Mapping[str, int] | None:
        """Counts only (``messages``, ``deleted``, ``already_gone``, ``without_id``); raises
        :class:`~tapwire_messaging.channels.sms.ProviderUnavailable` when a deletion was not confirmed, so the
        worker retries the step later instead of erasing the outbox that holds the SIDs."""
        if action != "erasure":
            raise ForwardImpossible(_NO_API["sms"])
        # Every message the provider took (status "sent"); the provider holds a record of each.
        query = select(OutboxRow.provider_id).where(OutboxRow.status == "sent", *self._subject_rows(scope))
        async with self._engine.connect() as connection:
            found = list((await connection.execute(query)).scalars())
        sids = {sid for sid in found if sid}
        without_id = sum(1 for sid in found if not sid)
        if sids and not self._settings.sms_url:
            raise ForwardImpossible(
                "no SMS provider is configured (TAPWIRE_SMS_URL), so its message records cannot be deleted"
            )
        outcome = Deleted()
        if sids:
            eraser = TwilioMessageEraser(self._settings.sms_url or "", policy=self._policy)
            outcome = await eraser.delete(sids)
        return {
            "messages": len(sids),
            "deleted": outcome.deleted,
            "already_gone": outcome.already_gone,
            "without_id": without_id,
        }


def messaging_data_recipients(
    engine: AsyncEngine, settings: Settings, *, sms_policy: RetryPolicy | None = None
) -> list[DataRecipient]:
    """One data recipient per channel, for the privacy worker's registry. ``sms_policy`` sets the retries of the SMS
    provider's deletions (the default is the eraser's)."""
    return [
        SmsDataRecipient(engine, settings, policy=sms_policy)
        if channel == "sms"
        else ChannelDataRecipient(engine, settings, channel)
        for channel in CHANNELS
    ]
