"""Parsing ``TAPWIRE_ACCOUNTS`` and the operator messages of start-up."""

from __future__ import annotations

from types import MappingProxyType

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tapwire_core.control.accounts import Account
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

_ID_FIRST = st.sampled_from("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789")
_ID_REST = st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.", max_size=20)
_SECRET_ALPHABET = "".join(chr(c) for c in range(0x21, 0x7F) if chr(c) not in ":,")
_SECRETS = st.text(alphabet=_SECRET_ALPHABET, min_size=1, max_size=40)


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
    specs = parse_accounts(" 948-4KK-444Z:pc-1:wk-1 , ACC-2:pc-2:wk-2:mec1 ,", default_region="aps3")
    assert specs == [
        AccountSpec(account_id="948-4KK-444Z", passcode="pc-1", write_key="wk-1", region="aps3"),
        AccountSpec(account_id="ACC-2", passcode="pc-2", write_key="wk-2", region="mec1"),
    ]


def test_blank_value_names_no_account() -> None:
    assert parse_accounts("  ", default_region="eu1") == []


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (
            "ACC-1:pc-secret",
            "entry 1 (ACC-1:…): expected ACCOUNT_ID:PASSCODE:WRITE_KEY[:REGION], found 2 fields",
        ),
        (
            "ACC-1:p:w,ACC-2:pc-secret:wk-secret:xx9",
            "entry 2 (ACC-2:***:***:xx9): region 'xx9' is not one of",
        ),
        ("ACC-1:p:w:eu1:extra", "entry 1 (ACC-1:…): expected"),
        ("-ACC:pc-secret:wk-secret", "entry 1 (-ACC:***:***): account id must be"),
        ("ACC-1::wk-secret", "entry 1 (ACC-1:***:***): passcode must be"),
        ("ACC-1:pc-secret:wk secret", "entry 1 (ACC-1:***:***): write key must be"),
        ("ACC-1:p:w,ACC-1:pc-secret:wk-secret", "entry 2 (ACC-1:***:***): account id repeats entry 1"),
        (
            "ACC-1:p:wk-secret,,ACC-2:q:wk-secret",
            "entry 3 (ACC-2:***:***): write key repeats the one of entry 1",
        ),
    ],
)
def test_errors_name_the_entry_and_hide_its_secrets(value: str, expected: str) -> None:
    with pytest.raises(AccountsConfigError) as raised:
        parse_accounts(value, default_region="eu1")
    message = str(raised.value)
    assert expected in message
    for secret in ("pc-secret", "wk-secret", "wk secret"):
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
