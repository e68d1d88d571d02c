"""``TAPWIRE_CREDENTIAL_SECRET``: parsed, generated in embedded mode, required by every distributed service that
checks credentials, and enough to tell lookup digests apart."""

from __future__ import annotations

import stat
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tapwire_core.control.accounts.lookup import (
    CredentialSecretError,
    LookupDigests,
    legacy_digest,
    load_or_create_credential_secret,
)
from tapwire_core.control.store import ControlStore
from tapwire_core.settings import Settings
from tapwire_services import runtime
from tapwire_services.accounts import announce_accounts
from tapwire_services.assembly import SERVICES, service_app

OLD = "old-credential-secret-0123456789abcdef"
NEW = "new-credential-secret-0123456789abcdef"


def _distributed(**extra: str) -> Settings:
    return Settings(
        database_url="postgresql://u:p@db:5432/tapwire",
        kafka_bootstrap="kafka:9092",
        clickhouse_url="http://u:p@clickhouse:8123/tapwire",
        messaging_secret="messaging-secret-0123456789abcdef",
        console_secret="console-secret-0123456789abcdef",
        **extra,  # type: ignore[arg-type]
    )


@pytest.mark.parametrize("service", [s for s in SERVICES if s != "loader"])
def test_every_service_that_checks_credentials_needs_the_secret(service: str) -> None:
    with pytest.raises(runtime.ConfigurationError, match="TAPWIRE_CREDENTIAL_SECRET is required"):
        service_app(_distributed(), service)  # type: ignore[arg-type]
    service_app(_distributed(credential_secret=NEW), service)  # type: ignore[arg-type]


def test_the_loader_runs_without_it() -> None:
    service_app(_distributed(), "loader")


async def test_a_process_without_it_leaves_tapwire_accounts_to_the_others(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'control.db'}"
    accounts = "ACC-1:passcode-0123456789abcdef:writekey-0123456789abcdef"
    async with ControlStore(url) as loaders_store:
        await announce_accounts(loaders_store, _distributed(accounts=accounts), embedded=False)
        assert await loaders_store.list_accounts() == []
    digests = runtime.lookup_digests(_distributed(credential_secret=NEW), embedded=False)
    async with ControlStore(url, lookup_digests=digests) as gateways_store:
        await announce_accounts(gateways_store, _distributed(accounts=accounts), embedded=False)
        assert [a.id for a in await gateways_store.list_accounts()] == ["ACC-1"]


def test_a_short_or_repeated_secret_is_refused_without_showing_it() -> None:
    for value in ("too-short-0123456789", f"{NEW},{NEW}", " , "):
        with pytest.raises(runtime.ConfigurationError) as raised:
            runtime.lookup_digests(_distributed(credential_secret=value), embedded=False)
        assert NEW not in str(raised.value) and "too-short" not in str(raised.value)


def test_the_newest_secret_keys_new_digests_and_every_one_is_looked_up() -> None:
    rotated = LookupDigests.parse(f" {NEW} , {OLD} ")
    before = LookupDigests([OLD])
    assert rotated.current_secret_id != before.current_secret_id
    assert rotated.secret_ids[1] == before.current_secret_id
    candidates = rotated.candidates("passcode", "a-passcode-0123456789", account_id="ACC-1")
    assert [c.value for c in candidates] == [
        rotated.current("passcode", "a-passcode-0123456789", account_id="ACC-1"),
        before.current("passcode", "a-passcode-0123456789", account_id="ACC-1"),
        legacy_digest("passcode", "a-passcode-0123456789", account_id="ACC-1"),
    ]
    assert [c.secret_id for c in candidates] == [*rotated.secret_ids, None]
    # A secret's id says nothing about it, and differs from every digest.
    assert OLD not in repr(rotated.secret_ids) and len(rotated.current_secret_id) == 16


def test_embedded_mode_generates_a_private_secret_once(tmp_path: Path) -> None:
    first = load_or_create_credential_secret(None, tmp_path)
    assert len(first) >= 32
    path = tmp_path / "credential-secret"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_or_create_credential_secret(None, tmp_path) == first
    assert load_or_create_credential_secret(NEW, tmp_path) == NEW
    assert path.read_text() == first
    LookupDigests.parse(first)


def test_processes_starting_together_agree_on_one_generated_secret(tmp_path: Path) -> None:
    with ThreadPoolExecutor(8) as pool:
        secrets = set(pool.map(lambda _: load_or_create_credential_secret(None, tmp_path), range(32)))
    assert secrets == {(tmp_path / "credential-secret").read_text()}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["credential-secret"]


def test_lookup_digests_refuse_nonsense() -> None:
    with pytest.raises(CredentialSecretError):
        LookupDigests([])
    with pytest.raises(CredentialSecretError):
        LookupDigests([" " + NEW])
