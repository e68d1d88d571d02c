"""The account administration API: settings, credentials, users and roles, sessions, the audit log."""

from __future__ import annotations

from typing import Any

import pytest

from tapwire_core.control.console.directory import ConsoleDirectory
from tapwire_core.control.console.session_cache import DEFAULT_TTL
from tests.console.conftest import OTHER_PASSCODE, PASSCODE, AccountApi, bearer

pytestmark = pytest.mark.integration


async def settings_of(account_api: AccountApi, account_id: str) -> dict[str, Any]:
    """The account's settings as stored."""
    account = await account_api.store.get_account(account_id)
    assert account is not None, account_id
    return dict(account.settings)


async def test_settings_round_trip_with_defaults_and_validation_naming_the_field(
    account_api: AccountApi,
) -> None:
    client, admin = account_api.client, account_api.admin
    initial = (await client.get("/account/v1/settings", headers=admin)).json()["settings"]
    assert initial["privacy_jurisdiction"] == "gdpr" and initial["client_ingestion"] is True

    changed = await client.patch(
        "/account/v1/settings",
        headers=admin,
        json={
            "cors_origins": ["https://shop.example/", "http://localhost:3000"],
            "privacy_jurisdiction": "ccpa",
            "frequency_caps": {"email": [{"limit": 3, "window_s": 86400}]},
            "quiet_hours": {"start": "22:00", "end": "08:00", "timezone": "Europe/Berlin"},
            "upload_concurrency": 4,
            "client_ingestion": False,
        },
    )
    assert changed.status_code == 200, changed.text
    stored = await settings_of(account_api, "ACC-1")
    assert stored["cors_origins"] == ["https://shop.example", "http://localhost:3000"]
    assert stored["frequency_caps"] == {"email": [{"limit": 3, "window_s": 86400}]}
    assert stored["upload_concurrency"] == 4 and stored["client_ingestion"] is False
    # Another account is untouched.
    assert "cors_origins" not in await settings_of(account_api, "ACC-2")

    restored = await client.patch("/account/v1/settings", headers=admin, json={"upload_concurrency": None})
    assert restored.json()["settings"]["upload_concurrency"] is None
    assert "upload_concurrency" not in await settings_of(account_api, "ACC-1")

    for body, field in [
        ({"privacy_webhook_url": "http://127.0.0.1:9000/hook"}, "privacy_webhook_url"),
        ({"privacy_webhook_url": "http://169.254.169.254/latest"}, "privacy_webhook_url"),
        ({"privacy_webhook_url": "ftp://example.com/x"}, "privacy_webhook_url"),
        ({"cors_origins": ["javascript:alert(1)"]}, "cors_origins"),
        ({"quiet_hours": {"start": "25:00", "end": "08:00"}}, "quiet_hours.start"),
        ({"frequency_caps": {"pigeon": [{"limit": 1, "window_s": 3600}]}}, "frequency_caps.pigeon"),
        ({"upload_concurrency": 0}, "upload_concurrency"),
        ({"no_such_setting": 1}, "no_such_setting"),
    ]:
        refused = await client.patch("/account/v1/settings", headers=admin, json=body)
        assert refused.status_code == 422, (body, refused.text)
        assert refused.json()["error"].startswith(field), refused.json()


async def test_credential_rotation_shows_the_secret_once_and_retires_the_old_one(
    account_api: AccountApi,
) -> None:
    client, admin = account_api.client, account_api.admin
    rotated = await client.post(
        "/account/v1/credentials", headers=admin, json={"kind": "passcode", "revoke_others": True}
    )
    assert rotated.status_code == 201, rotated.text
    secret = rotated.json()["credential"]["secret"]
    assert len(secret) >= 16 and rotated.json()["revoked"]
    # The old passcode stops working; the new one works; the listing never shows a secret.
    assert (await client.get("/account/v1/credentials", headers=admin)).status_code == 401
    new_admin = {"X-CleverTap-Account-Id": "ACC-1", "X-CleverTap-Passcode": secret}
    listing = await client.get("/account/v1/credentials", headers=new_admin)
    assert secret not in listing.text and PASSCODE not in listing.text
    live = [c for c in listing.json()["credentials"] if c["live"] and c["kind"] == "passcode"]
    assert [c["id"] for c in live] == [rotated.json()["credential"]["id"]]
    only = await client.delete(f"/account/v1/credentials/{live[0]['id']}", headers=new_admin)
    assert only.status_code == 409
    # A credential of another account is not found from this one.
    other = await account_api.store.list_credentials("ACC-2")
    assert (
        await client.delete(f"/account/v1/credentials/{other[0].id}", headers=new_admin)
    ).status_code == 404


async def test_roles_are_enforced_by_the_api(account_api: AccountApi) -> None:
    client = account_api.client
    marketer = await account_api.sign_in_user("mia@example.com", "marketer")
    privacy = await account_api.sign_in_user("pia@example.com", "privacy")
    admin = await account_api.sign_in_user("ada@example.com", "admin")

    assert (await client.get("/account/v1/settings", headers=bearer(marketer))).status_code == 403
    assert (
        await client.patch("/account/v1/settings", headers=bearer(marketer), json={"client_ingestion": False})
    ).status_code == 403
    assert (await client.get("/account/v1/users", headers=bearer(marketer))).status_code == 403
    assert (
        await client.post("/account/v1/credentials", headers=bearer(privacy), json={"kind": "write_key"})
    ).status_code == 403
    assert (await client.get("/account/v1/audit", headers=bearer(privacy))).status_code == 200
    assert (await client.get("/account/v1/audit", headers=bearer(marketer))).status_code == 403
    assert (await client.get("/account/v1/me", headers=bearer(marketer))).json()["role"] == "marketer"
    assert (await client.get("/account/v1/settings", headers=bearer(admin))).status_code == 200
    assert (await client.get("/account/v1/settings", headers=bearer("tws_forged"))).status_code == 401

    # Promoting the marketer applies to their open session at once.
    users = (await client.get("/account/v1/users", headers=bearer(admin))).json()["users"]
    mia = next(u for u in users if u["email"] == "mia@example.com")
    promoted = await client.patch(
        f"/account/v1/users/{mia['id']}", headers=bearer(admin), json={"role": "admin"}
    )
    assert promoted.status_code == 200
    assert (await client.get("/account/v1/settings", headers=bearer(marketer))).status_code == 200


async def test_invitation_is_emailed_or_returned_once_and_accepted_with_a_password(
    account_api: AccountApi,
) -> None:
    client, admin = account_api.client, account_api.admin
    invited = await client.post(
        "/account/v1/users",
        headers=admin,
        json={"email": "Ann@Example.com", "name": "Ann", "role": "analyst"},
    )
    assert invited.status_code == 201, invited.text
    body = invited.json()
    assert body["user"]["status"] == "invited" and body["user"]["email"] == "ann@example.com"
    # No relay configured here: the link comes back for the admin to pass on.
    assert body["invitation"]["sent"] is False and "TAPWIRE_SMTP_URL" in body["invitation"]["reason"]
    token = body["invitation"]["url"].rsplit("/", 1)[1]
    assert (await client.get(f"/account/v1/invitations/{token}")).json()["email"] == "ann@example.com"
    duplicate = await client.post(
        "/account/v1/users",
        headers=admin,
        json={"email": "ann@example.com", "name": "Ann", "role": "analyst"},
    )
    assert duplicate.status_code == 409

    weak = await client.post("/account/v1/invitations/accept", json={"token": token, "password": "short"})
    assert weak.status_code == 422 and weak.json()["error"].startswith("password")
    accepted = await client.post(
        "/account/v1/invitations/accept", json={"token": token, "password": "a long enough passphrase"}
    )
    assert accepted.status_code == 200
    again = await client.post(
        "/account/v1/invitations/accept", json={"token": token, "password": "another long passphrase"}
    )
    assert again.status_code == 404
    signed = await client.post(
        "/account/v1/sessions",
        json={"account_id": "ACC-1", "email": "ann@example.com", "password": "a long enough passphrase"},
    )
    assert signed.status_code == 201 and signed.json()["role"] == "analyst"


async def test_sign_in_locks_out_after_repeated_failures(account_api: AccountApi) -> None:
    client = account_api.client
    await account_api.sign_in_user("lou@example.com", "analyst", password="the right password")
    wrong = {"account_id": "ACC-1", "email": "lou@example.com", "password": "the wrong password"}
    for _ in range(5):
        assert (await client.post("/account/v1/sessions", json=wrong)).status_code == 401
    right = {**wrong, "password": "the right password"}
    locked = await client.post("/account/v1/sessions", json=right)
    assert locked.status_code == 429 and int(locked.headers["Retry-After"]) > 0
    account_api.clock.advance(minutes=16)
    assert (await client.post("/account/v1/sessions", json=right)).status_code == 201
    # A wrong passcode for the first-start admin is counted the same way.
    bad_passcode = {"account_id": "ACC-1", "passcode": OTHER_PASSCODE}
    assert (await client.post("/account/v1/sessions", json=bad_passcode)).status_code == 401


async def test_passcode_signs_in_as_admin_and_rotation_ends_those_sessions(account_api: AccountApi) -> None:
    client = account_api.client
    opened = await client.post("/account/v1/sessions", json={"account_id": "ACC-1", "passcode": PASSCODE})
    assert opened.status_code == 201 and opened.json()["role"] == "admin"
    token = opened.json()["token"]
    me = (await client.get("/account/v1/me", headers=bearer(token))).json()
    assert me["signed_in_with"] == "passcode" and me["user"] is None
    assert (await client.get("/account/v1/me/export", headers=bearer(token))).status_code == 409
    await client.post(
        "/account/v1/credentials", headers=bearer(token), json={"kind": "passcode", "revoke_others": True}
    )
    assert (await client.get("/account/v1/me", headers=bearer(token))).status_code == 401


async def test_sessions_end_when_idle_and_password_change_signs_out_everywhere(
    account_api: AccountApi,
) -> None:
    client = account_api.client
    first = await account_api.sign_in_user("eve@example.com", "analyst", password="first password 123")
    second = (
        await client.post(
            "/account/v1/sessions",
            json={"account_id": "ACC-1", "email": "eve@example.com", "password": "first password 123"},
        )
    ).json()["token"]
    changed = await client.post(
        "/account/v1/me/password",
        headers=bearer(first),
        json={"current_password": "first password 123", "new_password": "second password 456"},
    )
    assert changed.status_code == 200, changed.text
    fresh = changed.json()["token"]
    for old in (first, second):
        assert (await client.get("/account/v1/me", headers=bearer(old))).status_code == 401
    assert (await client.get("/account/v1/me", headers=bearer(fresh))).status_code == 200
    account_api.clock.advance(minutes=31)
    assert (await client.get("/account/v1/me", headers=bearer(fresh))).status_code == 401


async def test_my_data_export_and_deletion_and_the_audit_trail(account_api: AccountApi) -> None:
    client = account_api.client
    token = await account_api.sign_in_user("sam@example.com", "analyst")
    await client.patch("/account/v1/me", headers=bearer(token), json={"name": "Samantha"})
    exported = (await client.get("/account/v1/me/export", headers=bearer(token))).json()
    assert exported["user"]["name"] == "Samantha"
    assert {"session.open", "me.change"} <= {a["action"] for a in exported["actions"]}

    assert (await client.delete("/account/v1/me", headers=bearer(token))).status_code == 200
    assert (await client.get("/account/v1/me", headers=bearer(token))).status_code == 401
    audit = (await client.get("/account/v1/audit", headers=account_api.admin)).json()["entries"]
    assert audit and all("sam@example.com" not in entry["actor"] for entry in audit)
    assert any(e["action"] == "me.delete" for e in audit)


async def test_unknown_routes_default_to_admin_only() -> None:
    from tapwire_core.control.console.roles import allows, capability_for

    assert capability_for("POST", "/some/new/route") == "unlisted"
    assert not allows("marketer", capability_for("POST", "/some/new/route"))
    assert allows("admin", capability_for("POST", "/some/new/route"))
    assert allows("analyst", capability_for("POST", "/1/counts/profiles.json"))
    assert not allows("analyst", capability_for("POST", "/1/targets/create.json"))
    assert not allows("marketer", capability_for("POST", "/privacy/v1/requests"))


async def test_campaign_defaults_reach_marketers_but_not_the_rest_of_the_settings(
    account_api: AccountApi,
) -> None:
    client = account_api.client
    await client.patch(
        "/account/v1/settings",
        headers=account_api.admin,
        json={"quiet_hours": {"start": "21:00", "end": "07:30"}, "privacy_jurisdiction": "ccpa"},
    )
    marketer = await account_api.sign_in_user("max@example.com", "marketer")
    defaults = await client.get("/account/v1/settings/campaign-defaults", headers=bearer(marketer))
    assert defaults.status_code == 200
    assert (
        defaults.json()["quiet_hours"]["start"] == "21:00" and "privacy_jurisdiction" not in defaults.json()
    )
    privacy = await account_api.sign_in_user("pat@example.com", "privacy")
    assert (
        await client.get("/account/v1/settings/campaign-defaults", headers=bearer(privacy))
    ).status_code == 403


async def test_a_session_ended_or_changed_by_another_process_reaches_this_one_within_seconds(
    account_api: AccountApi,
) -> None:
    """Each process keeps the sessions it resolved for a few seconds, so a page's several API calls cost one
    control-store read. What another process (another service, the accounts CLI) does to a session applies
    here once that time has passed; in the process that did it, at once (the tests above)."""
    client = account_api.client
    ended = await account_api.sign_in_user("ida@example.com", "analyst")
    demoted = await account_api.sign_in_user("abe@example.com", "admin")
    assert (await client.get("/account/v1/me", headers=bearer(ended))).status_code == 200
    assert (await client.get("/account/v1/settings", headers=bearer(demoted))).status_code == 200

    elsewhere = ConsoleDirectory(account_api.store, clock=account_api.clock)
    await elsewhere.sessions.close(ended)
    abe = next(u for u in await elsewhere.users.list("ACC-1") if u.email == "abe@example.com")
    await elsewhere.users.update("ACC-1", abe.id, role="analyst")

    # Within the cache's lifetime this process still answers from what it read.
    assert (await client.get("/account/v1/me", headers=bearer(ended))).status_code == 200
    account_api.clock.advance(seconds=DEFAULT_TTL.total_seconds())
    assert (await client.get("/account/v1/me", headers=bearer(ended))).status_code == 401
    assert (await client.get("/account/v1/settings", headers=bearer(demoted))).status_code == 403
