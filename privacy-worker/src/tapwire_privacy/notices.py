"""Delivering notices to the customer: a JSON POST to the account's privacy webhook.

The webhook is the account setting ``privacy_webhook_url``. Notices carry request ids, types, dates and (for an
extension) the reason, never the subject's identifiers. Undelivered notices stay queued and are retried with
backoff; the customer can always see referred requests in ``GET /privacy/v1/requests?status=referred``. The URL
is the customer's: it is reached through the guarded client (public addresses, or the operator's allow-list).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import httpx

from tapwire_core.egress import EgressPolicy, EgressRefused, Resolver, guarded_client, system_resolver
from tapwire_core.http.context import AccountView

AccountLookup = Callable[[str], Awaitable[AccountView | None]]
WEBHOOK_SETTING = "privacy_webhook_url"


class WebhookNotifier:
    """Posts notices to each account's webhook. ``deliver`` returns None on a 2xx, else the reason."""

    def __init__(
        self,
        accounts: AccountLookup,
        *,
        egress: EgressPolicy | None = None,
        timeout_s: float = 10.0,
        resolver: Resolver = system_resolver,
    ) -> None:
        self._accounts = accounts
        self._client = guarded_client(
            egress or EgressPolicy(), timeout_s=timeout_s, deadline_s=3 * timeout_s, resolver=resolver
        )

    async def deliver(self, account_id: str, kind: str, payload: dict[str, Any]) -> str | None:
        account = await self._accounts(account_id)
        url = None if account is None else account.settings.get(WEBHOOK_SETTING)
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            return "no privacy webhook configured for the account"
        try:
            response = await self._client.post(url, json={"event": f"privacy.{kind}", **payload})
        except EgressRefused as exc:
            return f"webhook refused: {exc}"
        except httpx.HTTPError as exc:
            return f"webhook unreachable: {type(exc).__name__}"
        if response.is_success:
            return None
        return f"webhook answered HTTP {response.status_code}"

    async def close(self) -> None:
        await self._client.aclose()
