"""Parsing ``TAPWIRE_ACCOUNTS`` and the operator messages of start-up."""

from __future__ import annotations

from pathlib import Path
from types import MappingProxyType

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tapwire_core.control.accounts import Account
from tapwire_core.control.accounts.hashing import MIN_SECRET_LENGTH
from tapwire_core.control.bootstrap import (
    DEMO_ACCOUNT_ID,
    AccountsConfigError,
    AccountSpec,
    BootstrapResult,
    DemoCredentials,
    format_accounts,
    parse_accounts,
)
from tapwire_core.control.regions import REGIONS
from tapwire_services.cli import main

_ID_FIRST = st.sampled_from("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789")
_ID_REST = st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.", max_size=20)
_SECRET_ALPHABET = "".join(chr(c) for c in range(0x21, 0x7F) if chr(c) not in ":,")
_SECRETS = st.text(alphabet=_SECRET_ALPHABET, min_size=MIN_SECRET_LENGTH, max_size=40)
# Secrets of the required length, named after the short ones they stand for.
P, W, Q = "p-0123456789abcdef", "w-0123456789abcdef", "q-0123456789abcdef"
PC, WK = "pc-secret-0123456789", "wk-secret-0123456789"


@st.composite
def _specs(draw: st.DrawFn) -> list[AccountSpec]:
    ids = draw(
        st.lists(st.builds(lambda a, b: a + b, _ID_FIRST, _ID_REST), min_size=1, max_size=5, unique=True)
    )
    keys = draw(st.lists(_SECRETS, min_size=len(ids), max_size=len(ids), unique=True))
    return [
        AccountSpec(account_id=i, passcode=draw(_SECRETS), write_key=k, region=draw(st.sampled_from(REGIONS)))
        for i, k in zip(ids, keys, strict=True)
    ]


@given(_specs())
def test_format_then_parse_round_trips(specs: list[AccountSpec]) -> None:
    assert parse_accounts(format_accounts(specs), default_region="eu1") == specs


@given(st.text(max_size=80))
def test_any_input_parses_or_fails_with_a_config_error(value: str) -> None:
    try:
        specs = parse_accounts(value, default_region="eu1")
    except AccountsConfigError as error:
        assert str(error).startswith("TAPWIRE_ACCOUNTS entry ")
    else:
        assert all(s.region in REGIONS for s in specs)


def test_region_defaults_to_the_deployment_region() -> None:
    specs = parse_accounts(f" 948-4KK-444Z:{P}:{W} , ACC-2:{PC}:{WK}:mec1 ,", default_region="aps3")
    assert specs == [
        AccountSpec(account_id="948-4KK-444Z", passcode=P, write_key=W, region="aps3"),
        AccountSpec(account_id="ACC-2", passcode=PC, write_key=WK, region="mec1"),
    ]


def test_blank_value_names_no_account() -> None:
    assert parse_accounts("  ", default_region="eu1") == []


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (
            f"ACC-1:{PC}",
            "entry 1 (ACC-1:…): expected ACCOUNT_ID:PASSCODE:WRITE_KEY[:REGION], found 2 fields",
        ),
        (
            f"ACC-1:{P}:{W},ACC-2:{PC}:{WK}:xx9",
            "entry 2 (ACC-2:***:***:xx9): region 'xx9' is not one of",
        ),
        (f"ACC-1:{P}:{W}:eu1:extra", "entry 1 (ACC-1:…): expected"),
        (f"-ACC:{PC}:{WK}", "entry 1 (-ACC:***:***): account id must be"),
        (f"ACC-1::{WK}", "entry 1 (ACC-1:***:***): passcode must be"),
        (f"ACC-1:{PC}:wk secret-0123456789", "entry 1 (ACC-1:***:***): write key must be"),
        (f"ACC-1:{P}:{W},ACC-1:{PC}:{WK}", "entry 2 (ACC-1:***:***): account id repeats entry 1"),
        (
            f"ACC-1:{P}:{WK},,ACC-2:{Q}:{WK}",
            "entry 3 (ACC-2:***:***): write key repeats the one of entry 1",
        ),
        (
            f"ACC-1:pc-15-character:{WK}",
            "entry 1 (ACC-1:***:***): the passcode of account ACC-1 is shorter than 16 characters",
        ),
        (
            f"ACC-1:{P}:{W},ACC-2:{PC}:wk-1:us1",
            "entry 2 (ACC-2:***:***:us1): the write key of account ACC-2 is shorter than 16 characters",
        ),
    ],
)
def test_errors_name_the_entry_and_hide_its_secrets(value: str, expected: str) -> None:
    with pytest.raises(AccountsConfigError) as raised:
        parse_accounts(value, default_region="eu1")
    message = str(raised.value)
    assert expected in message
    for secret in (PC, WK, "wk secret", "pc-15-character", "wk-1"):
        assert secret not in message


def test_an_unknown_deployment_region_is_refused() -> None:
    with pytest.raises(AccountsConfigError, match="deployment region 'eu2'"):
        parse_accounts("ACC-1:p:w", default_region="eu2")


def test_announcement_shows_demo_secrets_only_when_created() -> None:
    demo = Account(id=DEMO_ACCOUNT_ID, name="Demo account", region="eu1", settings=MappingProxyType({}))
    creds = DemoCredentials(account_id=DEMO_ACCOUNT_ID, passcode="PASS123", write_key="WK456", region="eu1")
    first = "\n".join(BootstrapResult(demo_account=demo, demo_credentials=creds).announcement())
    assert all(
        value in first for value in (DEMO_ACCOUNT_ID, "PASS123", "WK456", "tapwire accounts reset-demo")
    )
    later = "\n".join(BootstrapResult(demo_account=demo).announcement())
    assert DEMO_ACCOUNT_ID in later and "reset-demo" in later
    assert "PASS123" not in later and "WK456" not in later
    assert "PASS123" not in repr(creds)
    assert BootstrapResult(applied=("A", "B")).announcement() == ["Accounts from TAPWIRE_ACCOUNTS: A, B"]
    assert BootstrapResult().announcement() == []


@pytest.mark.parametrize("command", [["up"], ["serve", "gateway"]])
def test_a_short_secret_stops_the_start_naming_the_account(
    command: list[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("TAPWIRE_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("TAPWIRE_ACCOUNTS", f"ACC-1:{PC}:{WK},ACC-2:{P}:wk-2")
    monkeypatch.setenv("TAPWIRE_DATABASE_URL", f"sqlite+aiosqlite:///{tmp_path / 'control.db'}")
    monkeypatch.setenv("TAPWIRE_KAFKA_BOOTSTRAP", "127.0.0.1:9")
    monkeypatch.setenv("TAPWIRE_CREDENTIAL_SECRET", "unit-test-credential-secret-0123456789")
    assert main(command) == 2
    error = capsys.readouterr().err
    assert (
        "TAPWIRE_ACCOUNTS entry 2 (ACC-2:***:***): the write key of account ACC-2 is shorter than 16" in error
    )
    assert "wk-2" not in error.replace("ACC-2", "")
    assert not (tmp_path / "data").exists() and not (tmp_path / "control.db").exists()  # nothing started
