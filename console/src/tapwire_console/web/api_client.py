"""How the console's pages reach tapwire's JSON APIs: as any other client, with the signed-in person's session.

In embedded mode every API is served by this process, so requests go through the app in memory (ASGI, no
socket) with the browser's address as the client. In distributed mode the console's own ``/account/v1`` API
is still in memory, and query, messaging and privacy calls go over HTTP to ``TAPWIRE_CONSOLE_*_URL``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx
from starlette.types import ASGIApp

from tapwire_core.settings import Settings

_REMOTE_PREFIXES = {
    "query": (
        "/1/profile.json",
        "/1/events.json",
        "/1/profiles.json",
        "/1/counts/",
        "/1/now.json",
        "/segments",
        "/query/",
    ),
    "messaging": ("/1/targets/", "/1/message/", "/1/send/", "/messaging/"),
    "privacy": ("/privacy/", "/1/delete/"),
}


@dataclass(frozen=True)
class ApiResult:
    status: int
    body: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    @property
    def error(self) -> str:
        """The API's message for a failure, as the person should read it."""
        message = self.body.get("message") or self.body.get("error")
        return str(message) if message else f"the request failed (HTTP {self.status})"

    def field_error(self, name: str) -> str | None:
        """The message when it names ``name`` (``name: ...`` or ``name.sub: ...``)."""
        message = self.error
        head = message.split(":", 1)[0]
        return message if not self.ok and (head == name or head.startswith(f"{name}.")) else None


class _InProcess(httpx.AsyncBaseTransport):
    """Requests into this process's app, with the browser's address as the client (``extensions["client"]``).

    One long-lived client uses it: building an ``httpx.AsyncClient`` per call costs more than the call itself.
    """

    def __init__(self) -> None:
        self.app: ASGIApp | None = None

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if self.app is None:
            raise RuntimeError("the console's API gateway is not attached to an app")
        client = (str(request.extensions.get("client", "")), 0)
        return await httpx.ASGITransport(app=self.app, client=client).handle_async_request(request)


class ApiGateway:
    """Process-wide: the in-memory transport to this app and pooled clients to the other services."""

    def __init__(self, settings: Settings, *, embedded: bool) -> None:
        self._local_transport = _InProcess()
        self._local = httpx.AsyncClient(
            transport=self._local_transport, base_url="http://console.internal", timeout=60
        )
        self._remote: dict[str, httpx.AsyncClient] = {}
        if not embedded:
            urls = {
                "query": settings.console_query_url,
                "messaging": settings.console_messaging_url,
                "privacy": settings.console_privacy_url,
            }
            for service, url in urls.items():
                if url:
                    self._remote[service] = httpx.AsyncClient(base_url=url, timeout=30)

    def attach(self, app: ASGIApp) -> None:
        self._local_transport.app = app

    def client(self, *, token: str | None, client_host: str) -> ApiClient:
        return ApiClient(self, token=token, client_host=client_host)

    def _remote_for(self, path: str) -> httpx.AsyncClient | None:
        for service, prefixes in _REMOTE_PREFIXES.items():
            if path.startswith(prefixes) and service in self._remote:
                return self._remote[service]
        return None

    async def send(
        self, method: str, path: str, *, headers: Mapping[str, str], client_host: str, **kwargs: Any
    ) -> httpx.Response:
        remote = self._remote_for(path)
        if remote is not None:
            return await remote.request(method, path, headers=dict(headers), **kwargs)
        return await self._local.request(
            method, path, headers=dict(headers), extensions={"client": client_host}, **kwargs
        )

    async def close(self) -> None:
        await self._local.aclose()
        for client in self._remote.values():
            await client.aclose()


class ApiClient:
    """One browser request's view of the APIs, authenticated as that browser's session."""

    def __init__(self, gateway: ApiGateway, *, token: str | None, client_host: str) -> None:
        self._gateway = gateway
        self._client_host = client_host
        self._headers = {"Authorization": f"Bearer {token}"} if token else {}

    async def call(self, method: str, path: str, **kwargs: Any) -> ApiResult:
        try:
            response = await self._gateway.send(
                method, path, headers=self._headers, client_host=self._client_host, **kwargs
            )
        except httpx.HTTPError:
            return ApiResult(503, {"message": "a tapwire service did not answer; try again shortly"})
        try:
            body = response.json()
        except ValueError:
            body = {}
        return ApiResult(response.status_code, body if isinstance(body, dict) else {"value": body})

    async def get(self, path: str, params: Mapping[str, Any] | None = None) -> ApiResult:
        clean = {k: v for k, v in (params or {}).items() if v not in (None, "")}
        return await self.call("GET", path, params=clean)

    async def post(self, path: str, body: Any = None) -> ApiResult:
        return await self.call("POST", path, json=body if body is not None else {})

    async def patch(self, path: str, body: Any) -> ApiResult:
        return await self.call("PATCH", path, json=body)

    async def delete(self, path: str) -> ApiResult:
        return await self.call("DELETE", path)
