"""``tapwire accounts add-write-key`` and ``set-origins`` on an embedded data directory."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tapwire_core.control.accounts import AccountDirectory
from tapwire_core.control.bootstrap import DEMO_ACCOUNT_ID
from tapwire_core.control.store import ControlStore


def tapwire(data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = os.environ | {"TAPWIRE_DATA_DIR": str(data_dir)}
    return subprocess.run(
        [sys.executable, "-m", "tapwire_services.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


async def test_issue_write_key_and_restrict_origins(tmp_path: Path) -> None:
    assert tapwire(tmp_path, "accounts", "reset-demo").returncode == 0
    issued = tapwire(tmp_path, "accounts", "add-write-key", DEMO_ACCOUNT_ID)
    assert issued.returncode == 0, issued.stderr
    write_key = issued.stdout.split("write key:")[1].strip()
    restricted = tapwire(tmp_path, "accounts", "set-origins", DEMO_ACCOUNT_ID, "https://shop.example")
    assert restricted.returncode == 0 and "https://shop.example" in restricted.stdout
    missing = tapwire(tmp_path, "accounts", "add-write-key", "NO-SUCH-ACCOUNT")
    assert missing.returncode == 1 and "NO-SUCH-ACCOUNT" in missing.stderr

    store = ControlStore(f"sqlite+aiosqlite:///{tmp_path / 'control.db'}")
    await store.start()
    try:
        account = await AccountDirectory(store).authenticate_write_key(write_key)
        assert account is not None and account.id == DEMO_ACCOUNT_ID
        assert account.settings["cors_origins"] == ["https://shop.example"]
    finally:
        await store.close()
    assert tapwire(tmp_path, "accounts", "set-origins", DEMO_ACCOUNT_ID).returncode == 0
    store = ControlStore(f"sqlite+aiosqlite:///{tmp_path / 'control.db'}")
    await store.start()
    try:
        account = await store.get_account(DEMO_ACCOUNT_ID)
        assert account is not None and "cors_origins" not in account.settings
    finally:
        await store.close()
