"""An app serving the account administration API over a real SQLite control store, with a clock the test moves."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tapwire_console.api import ROUTERS
from tapwire_core.control.accounts import AccountDirectory
from tapwire_core.control.console.directory import ConsoleDirectory
from tapwire_core.control.console.roles import Role
from tapwire_core.control.store import ControlStore
from tapwire_core.http.app import create_app
from tapwire_core.http.context import ServiceContext
from tapwire_core.settings import Settings
from tests.credentials import LOOKUP_DIGESTS

PASSCODE = "passcode-one-1234567"
OTHER_PASSCODE = "passcode-two-1234567"


class Clock:
    def __init__(self) -> None:
        self.now = dt.datetime(2026, 3, 1, 9, 0, tzinfo=dt.UTC)

    def __call__(self) -> dt.datetime:
        return self.now

    def advance(self, **kwargs: float) -> None:
        self.now += dt.timedelta(**kwargs)


@dataclass
class AccountApi:
    client: httpx.AsyncClient
    store: ControlStore
    console: ConsoleDirectory
    clock: Clock

    @property
    def admin(self) -> dict[str, str]:
        return {"X-CleverTap-Account-Id": "ACC-1", "X-CleverTap-Passcode": PASSCODE}

    async def sign_in_user(self, email: str, role: Role, password: str = "correct horse battery") -> str:
        """Invite ``email`` with ``role``, accept with ``password``, sign in; the session token."""
        invited = await self.console.users.invite(
            "ACC-1", email=email, name=email.split("@", maxsplit=1)[0], role=role
        )
        await self.console.users.accept(invited.token, password=password)
        response = await self.client.post(
            "/account/v1/sessions", json={"account_id": "ACC-1", "email": email, "password": password}
        )
        assert response.status_code == 201, response.text
        token: str = response.json()["token"]
        return token


@pytest.fixture(params=["sqlite", "postgresql"])
def control_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Both control stores: SQLite (embedded) and PostgreSQL (distributed)."""
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'control.db'}"
    url: str = request.getfixturevalue("fresh_postgres_url")
    return url


@pytest.fixture
async def account_api(control_url: str, tmp_path: Path) -> AsyncIterator[AccountApi]:
    store = ControlStore(control_url, lookup_digests=LOOKUP_DIGESTS)
    await store.start()
    await store.upsert_account("ACC-1", passcode=PASSCODE, write_key="write-key-one-123456", region="eu1")
    await store.upsert_account(
        "ACC-2", passcode=OTHER_PASSCODE, write_key="write-key-two-123456", region="eu1"
    )
    clock = Clock()
    console = ConsoleDirectory(store, clock=clock)
    context = ServiceContext(
        settings=Settings(data_dir=tmp_path / "data", public_url="https://console.example"),
        authenticator=AccountDirectory(store),
        readiness=_ready,
        store_=store,
        console=console,
    )
    app = create_app(context, ROUTERS)
    transport = httpx.ASGITransport(app=app, client=("203.0.113.7", 5000))
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        yield AccountApi(client, store, console, clock)
    await store.close()


async def _ready() -> dict[str, bool]:
    return {"control_store": True}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}
