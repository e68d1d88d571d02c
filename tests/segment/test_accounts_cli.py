"""``tapwire accounts add-write-key`` and ``set-origins`` on an embedded data directory."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from tapwire_core.control.accounts import Account, AccountDirectory
from tapwire_core.control.accounts.lookup import LookupDigests
from tapwire_core.control.bootstrap import DEMO_ACCOUNT_ID
from tapwire_core.control.store import ControlStore
from tapwire_services.cli import main


def test_issue_write_key_and_restrict_origins(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("TAPWIRE_DATA_DIR", str(tmp_path))
    url = f"sqlite+aiosqlite:///{tmp_path / 'control.db'}"

    def by_write_key(write_key: str) -> Account | None:
        # The embedded suite's credential secret, generated into the data directory by the first command.
        digests = LookupDigests.parse((tmp_path / "credential-secret").read_text())

        async def look_up() -> Account | None:
            async with ControlStore(url, lookup_digests=digests) as store:
                return await AccountDirectory(store).authenticate_write_key(write_key)

        return asyncio.run(look_up())

    assert main(["accounts", "reset-demo"]) == 0
    capsys.readouterr()
    assert main(["accounts", "add-write-key", DEMO_ACCOUNT_ID]) == 0
    write_key = capsys.readouterr().out.split("write key:")[1].strip()
    assert main(["accounts", "set-origins", DEMO_ACCOUNT_ID, "https://shop.example"]) == 0
    assert "https://shop.example" in capsys.readouterr().out

    account = by_write_key(write_key)
    assert account is not None and account.id == DEMO_ACCOUNT_ID
    assert account.settings["cors_origins"] == ["https://shop.example"]

    assert main(["accounts", "set-origins", DEMO_ACCOUNT_ID]) == 0
    assert "any origin" in capsys.readouterr().out
    account = by_write_key(write_key)
    assert account is not None and "cors_origins" not in account.settings

    assert main(["accounts", "add-write-key", "NO-SUCH-ACCOUNT"]) == 1
    assert "NO-SUCH-ACCOUNT" in capsys.readouterr().err


def test_commands_on_a_distributed_store_need_the_credential_secret(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("TAPWIRE_DATABASE_URL", f"sqlite+aiosqlite:///{tmp_path / 'control.db'}")
    monkeypatch.setenv("TAPWIRE_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("TAPWIRE_CREDENTIAL_SECRET", raising=False)
    with pytest.raises(SystemExit) as exited:
        main(["accounts", "add-write-key", DEMO_ACCOUNT_ID])
    assert exited.value.code == 2
    assert "TAPWIRE_CREDENTIAL_SECRET is required" in capsys.readouterr().err
    assert not (tmp_path / "data" / "credential-secret").exists()  # never invented for a shared store
