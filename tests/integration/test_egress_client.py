"""The guarded HTTP client against real receivers on loopback: refused unless the operator allows them, on every
connection, whatever the DNS answers in between."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import httpcore
import httpx
import pytest

from tapwire_core.egress import (
    EgressPolicy,
    EgressRefused,
    GuardedNetworkBackend,
    Resolver,
    ResponseTooLarge,
    guarded_client,
)
from tests.messaging.servers import http_receiver

pytestmark = pytest.mark.integration

NO_KEEPALIVE = httpx.Limits(max_connections=10, max_keepalive_connections=0)


def fixed(answers: dict[str, list[str]]) -> Resolver:
    async def resolve(host: str, port: int) -> Sequence[str]:
        return answers[host]

    return resolve


class Rebinding:
    """A resolver answering the first list to the first question, the second to the next, and so on."""

    def __init__(self, *answers: list[str]) -> None:
        self.answers = answers
        self.calls: list[str] = []

    async def __call__(self, host: str, port: int) -> Sequence[str]:
        self.calls.append(host)
        return self.answers[min(len(self.calls), len(self.answers)) - 1]


@pytest.mark.parametrize(
    "address", ["127.0.0.1", "::ffff:127.0.0.1", "169.254.169.254", "::ffff:169.254.169.254", "10.0.0.7"]
)
async def test_a_name_resolving_inside_is_refused_without_a_request(address: str) -> None:
    with http_receiver() as receiver:
        resolver = fixed({"hooks.customer.example": [address]})
        async with guarded_client(EgressPolicy(), resolver=resolver) as client:
            with pytest.raises(EgressRefused, match=r"hooks\.customer\.example is not reachable"):
                await client.post(f"http://hooks.customer.example:{receiver.port}/hook", json={})
    assert receiver.requests == []


async def test_an_internal_receiver_named_in_the_allow_list_is_reached() -> None:
    with http_receiver() as receiver:
        resolver = fixed({"hooks.customer.example": ["127.0.0.1"]})
        async with guarded_client(EgressPolicy.parse("127.0.0.1/32"), resolver=resolver) as client:
            response = await client.post(f"http://hooks.customer.example:{receiver.port}/hook", json={"a": 1})
    assert response.status_code == 200
    assert [r.json() for r in receiver.requests] == [{"a": 1}]
    # The Host header still names the URL's host: only the connection goes to the vetted address.
    assert receiver.requests[0].headers["host"] == f"hooks.customer.example:{receiver.port}"


async def test_localhost_through_the_system_resolver_is_refused_unless_allowed() -> None:
    with http_receiver() as receiver:
        url = f"http://localhost:{receiver.port}/hook"
        async with guarded_client(EgressPolicy()) as client:
            with pytest.raises(EgressRefused, match="loopback"):
                await client.post(url, json={})
        assert receiver.requests == []
        # Allowed by address: ::1 (where nothing listens) stays refused, 127.0.0.1 is used.
        async with guarded_client(EgressPolicy.parse("127.0.0.1/32")) as client:
            assert (await client.post(url, json={})).status_code == 200
        async with guarded_client(EgressPolicy.parse("localhost")) as client:
            assert (await client.post(url, json={})).status_code == 200
    assert len(receiver.requests) == 2


async def test_a_literal_internal_address_is_refused() -> None:
    with http_receiver() as receiver:
        async with guarded_client(EgressPolicy()) as client:
            for url in (
                receiver.url,
                f"http://[::ffff:127.0.0.1]:{receiver.port}/",
                f"http://2130706433:{receiver.port}/",
            ):
                with pytest.raises(EgressRefused, match="loopback"):
                    await client.post(url, json={})
    assert receiver.requests == []


async def test_a_rebinding_name_is_refused_on_the_connection_that_would_go_inside() -> None:
    """First answer: an address the operator allows (a receiver listens there). Second answer, for the next
    connection: a loopback address where another receiver listens on the same port. The second request must
    not reach it."""
    with http_receiver(host="127.0.0.2") as allowed, http_receiver(port=allowed.port) as internal:
        resolver = Rebinding(["127.0.0.2"], ["127.0.0.1"])
        policy = EgressPolicy.parse("127.0.0.2/32")
        url = f"http://rebind.customer.example:{allowed.port}/hook"
        async with guarded_client(policy, resolver=resolver, limits=NO_KEEPALIVE) as client:
            assert (await client.post(url, json={"n": 1})).status_code == 200
            with pytest.raises(EgressRefused, match=r"127\.0\.0\.1 is loopback"):
                await client.post(url, json={"n": 2})
    assert [r.json() for r in allowed.requests] == [{"n": 1}]
    assert internal.requests == []
    assert resolver.calls == ["rebind.customer.example"] * 2


class _Stream(httpcore.AsyncNetworkStream):
    def __init__(self, peer: str) -> None:
        self.peer = peer

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:  # noqa: ASYNC109
        return b""

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:  # noqa: ASYNC109
        return None

    async def aclose(self) -> None:
        return None

    def get_extra_info(self, info: str) -> object:
        return (self.peer, 443) if info == "server_addr" else None


class _RecordingBackend(httpcore.AsyncNetworkBackend):
    """Stands in for the socket layer: records where it is asked to connect and claims a given peer."""

    def __init__(self, peer: str | None = None) -> None:
        self.connects: list[str] = []
        self.peer = peer

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        self.connects.append(host)
        return _Stream(self.peer or host)


async def test_first_answer_public_second_private_connects_only_to_the_public_address() -> None:
    inner = _RecordingBackend()
    resolver = Rebinding(["93.184.215.14"], ["169.254.169.254"])
    backend = GuardedNetworkBackend(EgressPolicy(), resolver=resolver, inner=inner)
    await backend.connect_tcp("hooks.customer.example", 443, timeout=5)
    with pytest.raises(EgressRefused, match=r"169\.254\.169\.254 is link-local \(cloud metadata\)"):
        await backend.connect_tcp("hooks.customer.example", 443, timeout=5)
    # The socket layer was given the vetted address, never the name (which it would resolve again).
    assert inner.connects == ["93.184.215.14"]


async def test_only_the_public_answers_of_a_mixed_name_are_used() -> None:
    inner = _RecordingBackend()
    backend = GuardedNetworkBackend(
        EgressPolicy(), resolver=fixed({"mixed.example": ["127.0.0.1", "93.184.215.14"]}), inner=inner
    )
    await backend.connect_tcp("mixed.example", 443, timeout=5)
    assert inner.connects == ["93.184.215.14"]


async def test_a_connection_whose_peer_is_internal_is_refused() -> None:
    inner = _RecordingBackend(peer="127.0.0.1")
    backend = GuardedNetworkBackend(
        EgressPolicy(), resolver=fixed({"hooks.customer.example": ["93.184.215.14"]}), inner=inner
    )
    with pytest.raises(EgressRefused, match=r"127\.0\.0\.1 is loopback"):
        await backend.connect_tcp("hooks.customer.example", 443, timeout=5)


async def test_unix_sockets_are_refused() -> None:
    with pytest.raises(EgressRefused):
        await GuardedNetworkBackend(EgressPolicy()).connect_unix_socket("/run/docker.sock")


async def test_redirects_are_returned_not_followed() -> None:
    with http_receiver(lambda _r, _n: (302, {"to": "http://169.254.169.254/"})) as receiver:
        async with guarded_client(EgressPolicy.parse("127.0.0.1/32")) as client:
            response = await client.post(f"{receiver.url}/hook", json={})
            assert response.status_code == 302
            assert not response.has_redirect_location or response.next_request is None
    assert len(receiver.requests) == 1


async def test_a_response_past_the_cap_is_cut() -> None:
    with http_receiver(lambda _r, _n: (200, "x" * 200_000)) as receiver:
        policy = EgressPolicy.parse("127.0.0.1/32")
        async with guarded_client(policy, max_response_bytes=64 * 1024) as client:
            with pytest.raises(ResponseTooLarge):
                await client.post(f"{receiver.url}/hook", json={})
        async with guarded_client(policy, max_response_bytes=256 * 1024) as client:
            assert len((await client.post(f"{receiver.url}/hook", json={})).content) == 200_000


async def test_an_unresolvable_name_is_a_connect_error_not_a_refusal() -> None:
    async def nxdomain(host: str, port: int) -> Sequence[str]:
        raise OSError("Name or service not known")

    async with guarded_client(EgressPolicy(), resolver=nxdomain) as client:
        with pytest.raises(httpx.ConnectError) as caught:
            await client.post("http://nowhere.customer.example/hook", json={})
    assert not isinstance(caught.value, EgressRefused)
