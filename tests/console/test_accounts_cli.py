"""``tapwire accounts create|list|rotate|delete`` as an operator runs them, on an embedded data directory."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import orjson
import pytest

from tapwire_core.control.store import ControlStore

pytestmark = pytest.mark.integration


def _tapwire(data: Path, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    env = os.environ | {
        "TAPWIRE_DATA_DIR": str(data),
        "TAPWIRE_PRIVACY_SWEEP_DELAY_S": "0.2",
        "TAPWIRE_PRIVACY_POLL_S": "0.05",
    }
    return subprocess.run(
        [sys.executable, "-m", "tapwire_services.cli", "accounts", *args],
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )


def _secrets(output: str) -> dict[str, str]:
    return {
        line.split(":", 1)[0].strip(): line.split(":", 1)[1].strip()
        for line in output.splitlines()
        if ":" in line
    }


async def _count(data: Path, table: str, account_id: str) -> int:
    from sqlalchemy import text

    async with (
        ControlStore(f"sqlite+aiosqlite:///{data / 'control.db'}") as store,
        store.engine.connect() as conn,
    ):
        found = await conn.execute(
            text(f"SELECT count(*) FROM {table} WHERE account_id = :a"), {"a": account_id}
        )
        return int(found.scalar_one())


def _shown_once(secret: str, run: subprocess.CompletedProcess[str], data: Path) -> None:
    """``secret`` is on the command's stdout once, and nowhere else: not in its stderr (where its warnings and
    errors go), not in any file of the data directory (the control store keeps a hash and a keyed digest)."""
    assert run.stdout.count(secret) == 1
    assert secret not in run.stderr
    for path in data.rglob("*"):
        if path.is_file():
            assert secret.encode() not in path.read_bytes(), f"{path.name} holds a secret"


def test_create_list_rotate_and_delete_with_confirmation(tmp_path: Path) -> None:
    data = tmp_path / "data"
    created = _tapwire(data, "create", "ACME", "--name", "Acme Ltd")
    assert created.returncode == 0, created.stderr
    first = _secrets(created.stdout)
    assert first["account id"] == "ACME" and len(first["passcode"]) >= 16 and len(first["write key"]) >= 16
    _shown_once(first["passcode"], created, data)
    _shown_once(first["write key"], created, data)
    assert _tapwire(data, "create", "ACME").returncode == 1
    _tapwire(data, "create", "OTHER")

    listing = _tapwire(data, "list")
    assert listing.returncode == 0
    assert [line.split()[0] for line in listing.stdout.splitlines()[1:]] == ["ACME", "OTHER"]

    rotated = _tapwire(data, "rotate", "ACME", "--kind", "passcode", "--revoke-old")
    assert rotated.returncode == 0, rotated.stderr
    new_passcode = _secrets(rotated.stdout)["passcode"]
    assert new_passcode != first["passcode"]
    _shown_once(new_passcode, rotated, data)

    async def check_passcodes() -> tuple[bool, bool]:
        from tapwire_core.control.accounts import AccountDirectory
        from tapwire_core.control.accounts.lookup import LookupDigests

        # The embedded suite's credential secret, generated into the data directory by the first command.
        digests = LookupDigests.parse((data / "credential-secret").read_text())
        async with ControlStore(
            f"sqlite+aiosqlite:///{data / 'control.db'}", lookup_digests=digests
        ) as store:
            directory = AccountDirectory(store)
            old = await directory.authenticate_passcode("ACME", first["passcode"])
            new = await directory.authenticate_passcode("ACME", new_passcode)
            return old is not None, new is not None

    assert asyncio.run(check_passcodes()) == (False, True)

    # Not confirmed (no --yes and no terminal to type the id at): nothing changes.
    refused = _tapwire(data, "delete", "ACME", stdin="ACM\n")
    assert refused.returncode != 0
    assert asyncio.run(_count(data, "credentials", "ACME")) > 0

    deleted = _tapwire(data, "delete", "ACME", "--yes")
    assert deleted.returncode == 0, deleted.stderr
    report = _secrets(deleted.stdout)
    assert deleted.stdout.splitlines()[-1].startswith("deleted ACME: archived, every store erased")
    # The account's archive, written before anything was deleted, is the operator's to hand over.
    archive = Path(report["archive"].split(" (")[0])
    with zipfile.ZipFile(archive) as opened:
        accounts = orjson.loads(opened.read("stores/control.accounts.json"))
        credentials = orjson.loads(opened.read("stores/control.credentials.json"))
    assert [a["id"] for a in accounts] == ["ACME"] and len(credentials) >= 3
    assert all("secret_hash" not in c and "lookup_digest" not in c for c in credentials)
    assert report["download"].startswith("http") and "/privacy/v1/requests/" in report["download"]
    assert asyncio.run(_count(data, "credentials", "ACME")) == 0
    assert asyncio.run(_count(data, "audit_log", "ACME")) == 0
    assert asyncio.run(_count(data, "credentials", "OTHER")) > 0
    # The erasure's completion record outlives the account, as the law wants.
    assert asyncio.run(_count(data, "privacy_requests", "ACME")) == 1
    assert [line.split()[0] for line in _tapwire(data, "list").stdout.splitlines()[1:]] == ["OTHER"]
