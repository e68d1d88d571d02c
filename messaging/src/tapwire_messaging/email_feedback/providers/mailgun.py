"""Mailgun's event webhooks: HMAC-signed events read into notices.

Each post carries ``signature: {timestamp, token, signature}``: the hex HMAC-SHA256 of ``timestamp + token``
under the domain's webhook signing key (``TAPWIRE_MAILGUN_SIGNING_KEY``). Posts older than a day are refused,
and a token seen before (within that day, in this process) is refused as a replay.

Events read: ``failed`` with ``severity: permanent`` (a hard bounce unless its reason or delivery status says
otherwise: a suppressed complaint or unsubscribe, a policy block), ``complained`` and ``delivered``.
``failed`` with ``severity: temporary`` means Mailgun is still retrying and is not reported on. The message is
found by the ``tapwire`` user variable (``X-Mailgun-Variables``) or the Message-ID.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import Any, Final

from tapwire_messaging.email_feedback.classify import classify_reply
from tapwire_messaging.email_feedback.notices import Notice, notice_id, scrubbed
from tapwire_messaging.email_feedback.providers.errors import WebhookRefused
from tapwire_messaging.email_feedback.return_path import ReturnPathTokens

MAX_AGE_S: Final = 24 * 3600
_MAX_TOKENS: Final = 100_000


class MailgunVerifier:
    def __init__(self, signing_key: str, *, now: Callable[[], float] = time.time) -> None:
        self._key = signing_key.encode()
        self._now = now
        self._seen: OrderedDict[str, float] = OrderedDict()

    def verify(self, payload: Any) -> Mapping[str, Any]:
        """The ``event-data`` of a genuine, fresh, first-seen post; WebhookRefused otherwise."""
        signature = payload.get("signature") if isinstance(payload, dict) else None
        if not isinstance(signature, dict):
            raise WebhookRefused(401, "signature-missing", "the Mailgun signature is missing")
        timestamp, token, digest = (signature.get(k) for k in ("timestamp", "token", "signature"))
        if not all(isinstance(v, str) and v for v in (timestamp, token, digest)):
            raise WebhookRefused(401, "signature-malformed", "the Mailgun signature is malformed")
        assert isinstance(timestamp, str) and isinstance(token, str) and isinstance(digest, str)
        expected = hmac.new(self._key, (timestamp + token).encode(), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, digest.lower()):
            raise WebhookRefused(401, "signature", "the Mailgun signature does not match")
        now = self._now()
        try:
            age = now - float(timestamp)
        except ValueError as exc:
            raise WebhookRefused(401, "signature-malformed", "the Mailgun timestamp is not a number") from exc
        if age > MAX_AGE_S or age < -300:
            raise WebhookRefused(401, "stale", "the Mailgun timestamp is too old or in the future")
        self._forget(now)
        if token in self._seen:
            raise WebhookRefused(401, "replay", "this Mailgun signature was used before")
        self._seen[token] = now
        data = payload.get("event-data")
        return data if isinstance(data, dict) else {}

    def _forget(self, now: float) -> None:
        while self._seen and (
            len(self._seen) >= _MAX_TOKENS or next(iter(self._seen.values())) < now - MAX_AGE_S
        ):
            self._seen.popitem(last=False)


def mailgun_notices(data: Mapping[str, Any], *, tokens: ReturnPathTokens) -> list[Notice]:
    event, address = data.get("event"), data.get("recipient")
    if not isinstance(event, str) or not isinstance(address, str):
        return []
    headers = _dict(_dict(data.get("message")).get("headers"))
    variables = _dict(data.get("user-variables"))
    row_id = tokens.first_row_id([_text(variables.get("tapwire")), _text(headers.get("message-id"))])
    event_id = notice_id("mailgun", data.get("id") or (event, address, data.get("timestamp")))
    ts_ms = int(data["timestamp"] * 1000) if isinstance(data.get("timestamp"), int | float) else None
    if event == "delivered":
        return [Notice("delivered", "mailgun", event_id, row_id, address, "delivered", ts_ms=ts_ms)]
    if event == "complained":
        return [Notice("complaint", "mailgun", event_id, row_id, address, "abuse", ts_ms=ts_ms)]
    if event != "failed" or data.get("severity") != "permanent":
        return []
    reason = str(data.get("reason", ""))
    status = _dict(data.get("delivery-status"))
    text = " ".join(t for t in (_text(status.get("message")), _text(status.get("description"))) if t)
    if reason == "suppress-complaint":
        return [
            Notice("complaint", "mailgun", event_id, row_id, address, "previously-complained", ts_ms=ts_ms)
        ]
    if reason == "suppress-unsubscribe":
        return []
    if reason == "suppress-bounce":
        return [
            Notice("hard_bounce", "mailgun", event_id, row_id, address, "previously-bounced", ts_ms=ts_ms)
        ]
    code = status.get("code")
    judged = classify_reply(code, f"{code} {text}", command="RCPT") if isinstance(code, int) else None
    kind, category = (
        (judged.kind, judged.category) if judged is not None else ("hard_bounce", reason or "bounce")
    )
    return [
        Notice(
            kind=kind,
            source="mailgun",
            notice_id=event_id,
            row_id=row_id,
            recipient=address,
            category=category,
            status=judged.status if judged is not None else None,
            detail=scrubbed(text, address),
            ts_ms=ts_ms,
        )
    ]


def _dict(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, dict) else {}


def _text(value: Any) -> str | None:
    return value[:1000] if isinstance(value, str) else None
