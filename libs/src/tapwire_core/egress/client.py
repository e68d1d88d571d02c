"""The one HTTP client for customer-supplied URLs: every connection goes only to a vetted public address.

A check of the URL before the request is not enough: the name is resolved again when connecting, and a hostile
DNS server can answer a public address to the check and ``127.0.0.1`` or ``169.254.169.254`` to the connection
(DNS rebinding). Here the check *is* the connection: a custom httpcore network backend resolves the host
itself, refuses internal addresses (:class:`~tapwire_core.egress.policy.EgressPolicy`), connects to the vetted
IP (TLS still verifies the certificate against the host name, and SNI carries it), and checks the peer address
of the socket it got. Every new connection repeats this; a kept-alive connection stays with the address it
was vetted for. Redirects are never followed, environment proxies are ignored (a proxy would make the guard
judge the proxy's address instead of the target's), response bodies are capped and every exchange has a
deadline, so a hostile receiver can neither point the suite inward nor hold its memory or its senders.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from ipaddress import ip_address

import httpcore
import httpx

from tapwire_core.egress.addresses import IPAddress
from tapwire_core.egress.policy import EgressPolicy

Resolver = Callable[[str, int], Awaitable[Sequence[str]]]
"""``(host, port) -> addresses``; raises OSError when the name does not resolve."""

DEFAULT_MAX_RESPONSE_BYTES = 1024 * 1024
DEFAULT_LIMITS = httpx.Limits(max_connections=100, max_keepalive_connections=20)


class EgressRefused(httpx.ConnectError):
    """The URL leads to an address customers may not reach. Final: retrying cannot change the answer unless
    the DNS record or the operator's allow-list changes."""


class ResponseTooLarge(httpx.ReadError):
    """The receiver sent more than the client reads from a customer's endpoint."""


async def system_resolver(host: str, port: int) -> list[str]:
    """The addresses ``getaddrinfo`` gives for ``host``, in its order, without repeats."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


class GuardedNetworkBackend(httpcore.AsyncNetworkBackend):
    """Resolves, vets and connects; the only way a guarded client reaches the network."""

    def __init__(
        self,
        policy: EgressPolicy,
        *,
        resolver: Resolver = system_resolver,
        inner: httpcore.AsyncNetworkBackend | None = None,
    ) -> None:
        self.policy = policy
        self._resolver = resolver
        self._inner = inner or httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 (httpcore's interface)
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        addresses = await self._vetted(host, port, timeout)
        failure: Exception | None = None
        for address in addresses:
            remaining = None if deadline is None else max(0.0, deadline - loop.time())
            try:
                stream = await self._inner.connect_tcp(
                    str(address),
                    port,
                    timeout=remaining,
                    local_address=local_address,
                    socket_options=socket_options,
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                failure = exc
                continue
            self._check_peer(host, stream)
            return stream
        assert failure is not None
        raise failure

    async def _vetted(self, host: str, port: int, timeout_s: float | None) -> list[IPAddress]:
        """The addresses of ``host`` a connection may use; EgressRefused when there are none."""
        try:
            async with asyncio.timeout(timeout_s):
                answers = await self._resolver(host, port)
        except TimeoutError as exc:
            raise httpcore.ConnectTimeout(f"resolving {host} took longer than {timeout_s}s") from exc
        except OSError as exc:
            raise httpcore.ConnectError(f"cannot resolve {host}: {exc}") from exc
        allowed: list[IPAddress] = []
        refusals: list[str] = []
        for answer in answers:
            address = ip_address(answer)
            reason = self.policy.refusal(host, address)
            if reason is None:
                allowed.append(address)
            else:
                refusals.append(reason)
        if not allowed:
            raise EgressRefused(f"{host} is not reachable: {'; '.join(refusals) or 'no address'}")
        return allowed

    def _check_peer(self, host: str, stream: httpcore.AsyncNetworkStream) -> None:
        """The socket's own idea of its peer, judged again: whatever the inner backend did, the connection
        is to a vetted address or it is closed."""
        peer = stream.get_extra_info("server_addr")
        reason = (
            "no peer address"
            if not peer
            else self.policy.refusal(host, ip_address(str(peer[0]).split("%")[0]))
        )
        if reason is not None:
            raise EgressRefused(f"{host} is not reachable: {reason}")

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,  # noqa: ASYNC109 (httpcore's interface)
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise EgressRefused("Unix sockets are not reachable from customer-supplied URLs")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


class _BoundedBody(httpx.AsyncByteStream):
    """A response body read under a byte cap and the exchange's deadline."""

    def __init__(self, stream: httpx.AsyncByteStream, *, max_bytes: int, deadline: float) -> None:
        self._stream = stream
        self._max_bytes = max_bytes
        self._deadline = deadline

    async def __aiter__(self) -> AsyncIterator[bytes]:
        received = 0
        chunks = self._stream.__aiter__()
        loop = asyncio.get_running_loop()
        while True:
            try:
                async with asyncio.timeout_at(self._deadline):
                    chunk = await anext(chunks)
            except StopAsyncIteration:
                return
            except TimeoutError as exc:
                raise httpx.ReadTimeout("the response took longer than the exchange's deadline") from exc
            received += len(chunk)
            if received > self._max_bytes:
                raise ResponseTooLarge(f"the response is larger than {self._max_bytes} bytes")
            if loop.time() > self._deadline:
                raise httpx.ReadTimeout("the response took longer than the exchange's deadline")
            yield chunk

    async def aclose(self) -> None:
        await self._stream.aclose()


class GuardedTransport(httpx.AsyncHTTPTransport):
    """httpx's transport over :class:`GuardedNetworkBackend`, with a response cap and an exchange deadline."""

    def __init__(
        self,
        policy: EgressPolicy,
        *,
        resolver: Resolver = system_resolver,
        deadline_s: float = 30.0,
        max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
        limits: httpx.Limits = DEFAULT_LIMITS,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        super().__init__(trust_env=False, limits=limits)
        # httpx builds its pool without a way to pass a network backend; the same pool, with ours.
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=ssl_context or httpx.create_ssl_context(trust_env=False),
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=GuardedNetworkBackend(policy, resolver=resolver),
        )
        self._deadline_s = deadline_s
        self._max_response_bytes = max_response_bytes

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._deadline_s
        try:
            async with asyncio.timeout_at(deadline):
                response = await super().handle_async_request(request)
        except TimeoutError as exc:
            raise httpx.ReadTimeout(
                f"no response within the exchange's deadline of {self._deadline_s}s", request=request
            ) from exc
        assert isinstance(response.stream, httpx.AsyncByteStream)
        return httpx.Response(
            status_code=response.status_code,
            headers=response.headers,
            stream=_BoundedBody(response.stream, max_bytes=self._max_response_bytes, deadline=deadline),
            extensions=response.extensions,
        )


def guarded_client(
    policy: EgressPolicy,
    *,
    timeout_s: float = 10.0,
    deadline_s: float = 30.0,
    max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
    resolver: Resolver = system_resolver,
    limits: httpx.Limits | None = None,
    ssl_context: ssl.SSLContext | None = None,
) -> httpx.AsyncClient:
    """An ``httpx.AsyncClient`` for customer-supplied URLs.

    ``timeout_s`` bounds each step (resolving and connecting, each read, each write), ``deadline_s`` the whole
    exchange including the body. Requests raise :class:`EgressRefused` (an ``httpx.ConnectError``) for a URL
    leading inside, and never follow redirects: a 3xx is returned as it is. ``ssl_context`` replaces the
    system's trust store (a private CA of the operator's, a test's own).
    """
    transport = GuardedTransport(
        policy,
        resolver=resolver,
        deadline_s=deadline_s,
        max_response_bytes=max_response_bytes,
        limits=limits or DEFAULT_LIMITS,
        ssl_context=ssl_context,
    )
    return httpx.AsyncClient(transport=transport, timeout=timeout_s, follow_redirects=False, trust_env=False)
