"""Which account a client-SDK request is for, and whether that account takes client-SDK requests here.

Client SDKs name the account by its id alone (the mobile SDKs add the account token, tapwire's write key): the
id is public, in every page that embeds the SDK, so it grants writing only. Accounts are looked up by id through
a small cache, unknown ids included, so a flood of made-up ids costs the database one query per id and TTL.

Account settings read here: ``client_ingestion`` (false turns client-SDK ingestion off; on by default, as at
CleverTap), ``cors_origins`` (the page origins allowed to send, shared with the Segment browser endpoints;
unset means any), ``client_sdk_requests_per_s`` (the account's rate limit, else the deployment's) and
``web_push_public_key`` (the VAPID public key the Web SDK subscribes browsers to web push with; unset, the SDK
is not told web push is on and asks no browser).
"""

from __future__ import annotations

import re
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Final
from urllib.parse import urlsplit

from tapwire_core.http.context import AccountView
from tapwire_core.http.errors import ApiError
from tapwire_ingest.segment.cors import origin_allowed

# The console's "Client SDKs may send events" switch (``settings_schema``): one setting, whoever changes it.
ENABLED_SETTING: Final = "client_ingestion"
RATE_SETTING: Final = "client_sdk_requests_per_s"
WEB_PUSH_KEY_SETTING: Final = "web_push_public_key"
# A VAPID application server key: an uncompressed P-256 point (65 bytes), base64url without padding.
_WEB_PUSH_KEY: Final = re.compile(r"[A-Za-z0-9_-]{16,256}")
_MAX_ACCOUNT_ID_CHARS: Final = 64

Lookup = Callable[[str], Awaitable[AccountView | None]]


class AccountsById:
    """Accounts by id, cached for ``ttl_s`` (unknown ids for ``miss_ttl_s``), at most ``max_entries``."""

    def __init__(
        self,
        lookup: Lookup,
        *,
        ttl_s: float = 30.0,
        miss_ttl_s: float = 5.0,
        max_entries: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._lookup = lookup
        self._ttl_s = ttl_s
        self._miss_ttl_s = miss_ttl_s
        self._max_entries = max_entries
        self._clock = clock
        self._entries: OrderedDict[str, tuple[AccountView | None, float]] = OrderedDict()

    async def get(self, account_id: str) -> AccountView | None:
        """The account, or None when no account has this id. May raise what the lookup raises."""
        now = self._clock()
        cached = self._entries.get(account_id)
        if cached is not None and cached[1] > now:
            return cached[0]
        account = await self._lookup(account_id)
        self._entries[account_id] = (
            account,
            now + (self._ttl_s if account is not None else self._miss_ttl_s),
        )
        self._entries.move_to_end(account_id)
        while len(self._entries) > self._max_entries:
            self._entries.popitem(last=False)
        return account

    def invalidate(self, account_id: str) -> None:
        """Forget one account (its settings changed in this process)."""
        self._entries.pop(account_id, None)


async def sdk_account(accounts: AccountsById, account_id: Any, *, region: str) -> AccountView:
    """The account a request names, checked: 401 unknown, 403 in another region or with client SDKs off."""
    if type(account_id) is not str or not account_id or len(account_id) > _MAX_ACCOUNT_ID_CHARS:
        raise ApiError(401, "Account ID is missing or not valid")
    account = await accounts.get(account_id)
    if account is None:
        raise ApiError(401, "Account ID is not valid")
    if account.region != region:
        raise ApiError(
            403,
            f"Account {account.id} belongs to region {account.region}; "
            f"point the SDK at {account.region}.<your domain>",
        )
    if account.settings.get(ENABLED_SETTING, True) is False:
        raise ApiError(403, f"Client SDK ingestion is turned off for account {account.id}")
    return account


class OriginRefused(ApiError):
    """403 for a page outside the account's allowed origins: answered without CORS headers, so the page
    cannot even read why."""

    def __init__(self, error: str) -> None:
        super().__init__(403, error)


def check_page_origin(settings: Mapping[str, Any], *, origin: str | None, referer: str | None) -> None:
    """403 unless the page is one of the account's allowed origins (no list: any page).

    Browsers send ``Origin`` on fetch requests and ``Referer`` (its origin part under the default referrer
    policy) on script tags; a page that sends neither cannot be told apart from any other client.
    """
    if settings.get("cors_origins") in (None, "*"):
        return
    page = origin or _origin_of(referer)
    if page is None:
        raise OriginRefused(
            "This account accepts events only from its allowed origins; the request names none"
        )
    if not origin_allowed(page, settings):
        raise OriginRefused(f"Origin {page} may not send events for this account")


def web_push_key(settings: Mapping[str, Any]) -> str | None:
    """The account's VAPID public key when it is set and well-formed, else None."""
    key = settings.get(WEB_PUSH_KEY_SETTING)
    return key if type(key) is str and _WEB_PUSH_KEY.fullmatch(key) else None


def _origin_of(url: str | None) -> str | None:
    if not url:
        return None
    parts = urlsplit(url)
    if not parts.scheme or not parts.netloc:
        return None
    return f"{parts.scheme}://{parts.netloc}"
