"""OAuth 2.0 access tokens for FCM HTTP v1, minted from a Google service-account key with google-auth.

google-auth reads the key (only a service-account key: a credential file of another type could make the
process call URLs the file names), signs the JWT assertion and exchanges it at the key's ``token_uri``. Access tokens last an hour; one is shared by every send of a process and refreshed
``refresh_margin_s`` before it expires, or at once when FCM answers 401. google-auth's transport is
synchronous, so the refresh (one HTTP request an hour) runs in a worker thread, over httpx, one at a time.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import google.auth.credentials
import google.auth.exceptions
import google.auth.transport
import httpx
from google.oauth2 import service_account

SCOPE = "https://www.googleapis.com/auth/firebase.messaging"


class TokenUnavailable(Exception):
    """No access token could be obtained (the token endpoint failed or refused the key); transient for a send."""


class _Response(google.auth.transport.Response):
    def __init__(self, response: httpx.Response) -> None:
        self._response = response

    @property
    def status(self) -> int:
        return self._response.status_code

    @property
    def headers(self) -> Mapping[str, str]:
        return self._response.headers

    @property
    def data(self) -> bytes:
        return self._response.content


class _HttpxRequest(google.auth.transport.Request):
    """google-auth's transport interface over an httpx client (no requests/urllib3 dependency)."""

    def __init__(self, timeout_s: float) -> None:
        self._client = httpx.Client(timeout=timeout_s, follow_redirects=False)
        self._timeout_s = timeout_s

    def __call__(
        self,
        url: str,
        method: str = "GET",
        body: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        timeout: float | None = None,
        **kwargs: Any,
    ) -> google.auth.transport.Response:
        try:
            response = self._client.request(
                method, url, content=body, headers=headers, timeout=timeout or self._timeout_s
            )
        except httpx.HTTPError as exc:
            error = f"{type(exc).__name__}: {exc}"
            raise google.auth.exceptions.TransportError(error) from exc  # type: ignore[no-untyped-call]
        return _Response(response)

    def close(self) -> None:
        self._client.close()


class FcmAccessToken:
    """The bearer token for FCM requests. ``bearer`` may wait for a refresh; raises TokenUnavailable."""

    def __init__(
        self,
        credentials: google.auth.credentials.Credentials,
        *,
        refresh_margin_s: float = 300.0,
        timeout_s: float = 10.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._credentials = credentials
        self._refresh_margin_s = refresh_margin_s
        self._clock = clock
        self._request = _HttpxRequest(timeout_s)
        self._lock = asyncio.Lock()
        self.refreshes = 0

    @classmethod
    def from_file(cls, path: Path, **options: Any) -> tuple[FcmAccessToken, str | None]:
        """The token source for a credential file, and the Firebase project id it names (if it does).
        Raises ValueError naming the problem."""
        try:
            credentials = service_account.Credentials.from_service_account_file(  # type: ignore[no-untyped-call]
                str(path), scopes=[SCOPE]
            )
        except (OSError, ValueError, KeyError) as exc:
            raise ValueError(
                f"TAPWIRE_FCM_CREDENTIALS_FILE: not a readable service-account key: {exc}"
            ) from exc
        project_id = credentials.project_id
        return cls(credentials, **options), str(project_id) if project_id else None

    async def bearer(self) -> str:
        if self._stale():
            async with self._lock:
                if self._stale():
                    try:
                        await asyncio.to_thread(self._credentials.refresh, self._request)
                    except google.auth.exceptions.GoogleAuthError as exc:
                        raise TokenUnavailable(f"{type(exc).__name__}: {exc}") from exc
                    self.refreshes += 1
        token = self._credentials.token
        if not token:
            raise TokenUnavailable("the token endpoint answered no access token")
        return str(token)

    def expired(self, token: str) -> None:
        """FCM refused ``token``: the next ``bearer`` refreshes (unless another send already did)."""
        if token == self._credentials.token:
            self._credentials.token = None

    def _stale(self) -> bool:
        expiry: dt.datetime | None = self._credentials.expiry  # naive UTC, as google-auth keeps it
        if not self._credentials.token or expiry is None:
            return True
        now = dt.datetime.fromtimestamp(self._clock(), dt.UTC).replace(tzinfo=None)
        return (expiry - now).total_seconds() < self._refresh_margin_s

    def close(self) -> None:
        self._request.close()
