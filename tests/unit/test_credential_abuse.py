"""What a wrong, a repeated or a hot credential costs the directory: lookups, scrypt runs, and what happens
when the store is down."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import httpx
import pytest
from sqlalchemy.exc import OperationalError

from tapwire_core.control.accounts import directory as directory_module
from tapwire_core.control.accounts.directory import AccountDirectory, CredentialStoreUnavailable
from tapwire_core.control.accounts.failures import TooManyFailures
from tapwire_core.control.accounts.hashing import verify_secret
from tapwire_core.control.accounts.types import CredentialKind, CredentialMatch
from tapwire_core.http.app import create_app
from tapwire_core.http.context import ServiceContext
from tapwire_core.settings import Settings
from tapwire_ingest.http.upload import router
from tapwire_services import assembly
from tests.fakes import RecordingBus
from tests.unit.test_credentials import ACME, FakeClock, InMemorySource


class SlowSource(InMemorySource):
    """Lookups take a while, so concurrent requests overlap; can be switched off like a database going down."""

    def __init__(self) -> None:
        super().__init__()
        self.down = False

    async def match_credential(
        self, *, kind: CredentialKind, digests: Sequence[str]
    ) -> CredentialMatch | None:
        if self.down:
            self.lookups += 1
            raise OperationalError("SELECT", {}, ConnectionRefusedError("connection refused"))
        await asyncio.sleep(0.01)
        return await super().match_credential(kind=kind, digests=digests)


@pytest.fixture
def scrypt_runs(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    runs: list[str] = []

    def counting(secret: str, encoded: str) -> bool:
        runs.append(secret)
        return verify_secret(secret, encoded)

    monkeypatch.setattr(directory_module, "verify_secret", counting)
    return runs


async def test_an_expiring_entry_is_verified_once_for_every_request_in_flight(scrypt_runs: list[str]) -> None:
    clock = FakeClock()
    source = SlowSource()
    source.add("write_key", ACME, "wk-0123456789abcdef")
    directory = AccountDirectory(source, ttl_s=60.0, clock=clock)
    first = await asyncio.gather(
        *(directory.authenticate_write_key("wk-0123456789abcdef") for _ in range(12))
    )
    assert first == [ACME] * 12
    assert (source.lookups, len(scrypt_runs)) == (1, 1)
    clock.now = 61.0
    again = await asyncio.gather(
        *(directory.authenticate_write_key("wk-0123456789abcdef") for _ in range(12))
    )
    assert again == [ACME] * 12
    # One lookup confirms the credential is still live; its stored hash is the one verified before: no scrypt.
    assert (source.lookups, len(scrypt_runs)) == (2, 1)


async def test_a_wrong_secret_sent_again_costs_no_lookup(scrypt_runs: list[str]) -> None:
    source = SlowSource()
    source.add("passcode", ACME, "pc-0123456789abcdef")
    directory = AccountDirectory(source)
    for _ in range(5):
        assert await directory.authenticate_passcode("ACC-1", "not-the-passcode") is None
    assert source.lookups == 1 and scrypt_runs == []
    for listener in source.listeners:  # a credential change made through this process's store
        listener("ACC-1")
    assert await directory.authenticate_passcode("ACC-1", "not-the-passcode") is None
    assert source.lookups == 2


async def test_a_client_failing_too_often_is_refused_without_lookups() -> None:
    source = SlowSource()
    source.add("passcode", ACME, "pc-0123456789abcdef")
    directory = AccountDirectory(source, failures_per_minute=5)
    assert await directory.authenticate_passcode("ACC-1", "pc-0123456789abcdef", client="10.0.0.1") == ACME
    for attempt in range(5):
        assert await directory.authenticate_passcode("ACC-1", f"guess-{attempt}", client="10.0.0.1") is None
    lookups = source.lookups
    with pytest.raises(TooManyFailures) as refused:
        await directory.authenticate_passcode("ACC-1", "guess-5", client="10.0.0.1")
    assert source.lookups == lookups and 1 <= refused.value.retry_after_s <= 60
    # A credential already verified still works from that address (one NAT, many clients), and other addresses
    # are not affected.
    assert await directory.authenticate_passcode("ACC-1", "pc-0123456789abcdef", client="10.0.0.1") == ACME
    assert await directory.authenticate_passcode("ACC-1", "guess-6", client="10.0.0.2") is None


async def test_a_store_outage_keeps_verified_credentials_working() -> None:
    clock = FakeClock()
    source = SlowSource()
    source.add("write_key", ACME, "wk-0123456789abcdef")
    directory = AccountDirectory(source, ttl_s=60.0, stale_s=3600.0, clock=clock)
    assert await directory.authenticate_write_key("wk-0123456789abcdef") == ACME
    source.down = True
    clock.now = 600.0
    assert await directory.authenticate_write_key("wk-0123456789abcdef") == ACME
    with pytest.raises(CredentialStoreUnavailable):
        await directory.authenticate_write_key("wk-never-verified-here")
    clock.now = 60.0 + 3600.0
    with pytest.raises(CredentialStoreUnavailable):
        await directory.authenticate_write_key("wk-0123456789abcdef")


async def test_a_hanging_store_times_out() -> None:
    class Hanging(InMemorySource):
        async def match_credential(
            self, *, kind: CredentialKind, digests: Sequence[str]
        ) -> CredentialMatch | None:
            await asyncio.sleep(3600)
            return None

    directory = AccountDirectory(Hanging(), lookup_timeout_s=0.05)
    with pytest.raises(CredentialStoreUnavailable):
        await directory.authenticate_write_key("wk-0123456789abcdef")


# Over HTTP.

HEADERS_WRONG = {"X-CleverTap-Account-Id": "ACC-1", "X-CleverTap-Passcode": "not-the-passcode"}


def _app(
    source: InMemorySource, readiness: dict[str, bool] | None = None, advisory: frozenset[str] = frozenset()
) -> Any:
    async def ready() -> dict[str, bool]:
        return readiness or {}

    context = ServiceContext(
        settings=Settings(retry_after_s=7),
        authenticator=AccountDirectory(source, failures_per_minute=3),
        readiness=ready,
        bus_=RecordingBus(),
        advisory_checks=advisory,
    )
    return create_app(context, [router])


async def test_wrong_passcodes_from_one_address_end_in_429_without_queries() -> None:
    source = SlowSource()
    source.add("passcode", ACME, "pc-0123456789abcdef")
    transport = httpx.ASGITransport(app=_app(source), client=("203.0.113.9", 5000))
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        statuses = []
        for attempt in range(6):
            headers = HEADERS_WRONG | {"X-CleverTap-Passcode": f"guess-{attempt}"}
            response = await client.post("/1/upload", headers=headers, content=b'{"d":[]}')
            statuses.append(response.status_code)
        assert statuses == [401, 401, 401, 429, 429, 429]
        assert response.headers["Retry-After"].isdigit()
        assert source.lookups == 3


async def test_an_unreachable_store_answers_503_for_an_unverified_credential() -> None:
    source = SlowSource()
    source.down = True
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=_app(source)), base_url="http://t"
    ) as client:
        response = await client.post("/1/upload", headers=HEADERS_WRONG, content=b'{"d":[]}')
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "7"


async def test_an_advisory_check_is_reported_without_failing_readiness() -> None:
    checks = {"bus": True, "control_store": False}
    gateway = _app(SlowSource(), checks, frozenset({"control_store"}))
    other = _app(SlowSource(), checks)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=gateway), base_url="http://t") as client:
        ready = await client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json() == {"status": "ok", "checks": checks, "degraded": ["control_store"]}
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=other), base_url="http://t") as client:
        assert (await client.get("/readyz")).status_code == 503


def test_the_gateway_does_not_need_its_database_to_be_ready() -> None:
    specs = assembly.SERVICE_SPECS
    assert specs["gateway"].advisory_checks == {"control_store"}
    assert all(not spec.advisory_checks for name, spec in specs.items() if name != "gateway")
