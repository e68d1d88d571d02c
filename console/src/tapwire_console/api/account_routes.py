"""Account settings, credentials and the audit log."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, ConfigDict
from starlette.responses import Response

from tapwire_console import ingestion_health
from tapwire_console.api.dependencies import Console, audit
from tapwire_core.control.accounts.settings_schema import AccountSettingsPatch, effective
from tapwire_core.control.accounts.types import CredentialInfo, CredentialKind
from tapwire_core.control.console.types import iso
from tapwire_core.egress import policy_from_settings
from tapwire_core.egress.urls import UnsafeUrl, check_url
from tapwire_core.http.auth import Context, PasscodeAccount
from tapwire_core.http.body import BodyLimits, read_model
from tapwire_core.http.errors import ApiError, json_response

router = APIRouter(prefix="/account/v1")
# Bodies are read in the handler, after the credentials are checked (a pydantic ``Body()`` parameter would be
# read before the authenticating dependency runs).
_LIMITS = BodyLimits(max_bytes=64 * 1024, max_inflated=64 * 1024, max_values=2_000, max_depth=8)


@router.get("/settings")
async def get_settings(account: PasscodeAccount) -> Response:
    return json_response(
        {
            "status": "success",
            "account": {"id": account.id, "region": account.region},
            "settings": effective(account.settings),
        }
    )


@router.patch("/settings")
async def change_settings(
    request: Request,
    account: PasscodeAccount,
    context: Context,
    console: Console,
) -> Response:
    patch = await read_model(request, AccountSettingsPatch, _LIMITS)
    if patch.privacy_webhook_url is not None:
        # The same check as campaign webhooks: an obviously internal target is refused when saved; the privacy
        # worker's guarded client refuses the rest when it connects.
        try:
            check_url(patch.privacy_webhook_url, policy_from_settings(context.settings))
        except UnsafeUrl as exc:
            raise ApiError(422, f"privacy_webhook_url: {exc}") from exc
    changes = patch.changes()
    if not changes:
        raise ApiError(400, "name at least one setting to change")
    updated = await context.store.update_settings(account.id, changes)
    await audit(request, console, "settings.change", target="settings", detail={"changed": sorted(changes)})
    return json_response({"status": "success", "settings": effective(updated.settings)})


def _credential(info: CredentialInfo) -> dict[str, object]:
    return {
        "id": info.id,
        "kind": info.kind,
        "created_at": iso(info.created_at),
        "revoked_at": iso(info.revoked_at),
        "live": info.live,
    }


@router.get("/credentials")
async def list_credentials(account: PasscodeAccount, context: Context) -> Response:
    credentials = await context.store.list_credentials(account.id)
    return json_response({"status": "success", "credentials": [_credential(c) for c in credentials]})


class CredentialIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    kind: CredentialKind
    revoke_others: bool = False


@router.post("/credentials")
async def issue_credential(
    request: Request,
    account: PasscodeAccount,
    context: Context,
    console: Console,
) -> Response:
    """A new passcode or write key, its secret in this answer only. ``revoke_others`` retires the account's
    other live credentials of that kind (a rotation); a passcode rotation also ends passcode sign-ins."""
    credential_in = await read_model(request, CredentialIn, _LIMITS)
    issued = await context.store.add_credential(account.id, credential_in.kind)
    revoked: list[int] = []
    if credential_in.revoke_others:
        for info in await context.store.list_credentials(account.id):
            if info.kind == credential_in.kind and info.live and info.id != issued.id:
                await context.store.revoke_credential(info.id)
                revoked.append(info.id)
        if credential_in.kind == "passcode":
            await console.sessions.close_passcode_sessions(account.id)
    await audit(
        request,
        console,
        "credentials.rotate" if credential_in.revoke_others else "credentials.issue",
        target=f"{issued.kind} #{issued.id}",
        detail={"revoked": revoked},
    )
    return json_response(
        {
            "status": "success",
            "credential": {"id": issued.id, "kind": issued.kind, "secret": issued.secret},
            "revoked": revoked,
        },
        status=201,
    )


@router.delete("/credentials/{credential_id}")
async def revoke_credential(
    request: Request, credential_id: int, account: PasscodeAccount, context: Context, console: Console
) -> Response:
    credentials = await context.store.list_credentials(account.id)
    target = next((c for c in credentials if c.id == credential_id), None)
    if target is None:
        raise ApiError(404, f"no credential {credential_id} in this account")
    if not target.live:
        raise ApiError(409, f"credential {credential_id} is already revoked")
    if target.kind == "passcode" and sum(1 for c in credentials if c.kind == "passcode" and c.live) == 1:
        raise ApiError(409, "this is the account's only live passcode; issue a new one first")
    await context.store.revoke_credential(credential_id)
    if target.kind == "passcode":
        await console.sessions.close_passcode_sessions(account.id)
    await audit(request, console, "credentials.revoke", target=f"{target.kind} #{credential_id}")
    return json_response({"status": "success", "revoked": credential_id})


@router.get("/audit")
async def audit_log(
    *,
    account: PasscodeAccount,
    console: Console,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    before: Annotated[int | None, Query(ge=1)] = None,
    actor: Annotated[str | None, Query(max_length=254)] = None,
    action: Annotated[str | None, Query(max_length=120)] = None,
) -> Response:
    """Newest first; pass the answer's ``next_before`` as ``before`` for the next page."""
    entries = await console.audit.page(account.id, limit=limit, before_id=before, actor=actor, action=action)
    return json_response(
        {
            "status": "success",
            "entries": [e.to_json() for e in entries],
            "next_before": entries[-1].id if len(entries) == limit else None,
        }
    )


@router.get("/ingestion")
async def ingestion(account: PasscodeAccount, context: Context) -> Response:
    """The pipeline's health: loader lag (records and bus messages not yet in the warehouse), dead letters,
    records received and loaded since the loader process started."""
    health = await ingestion_health.read(
        context.settings.console_loader_url, loader_in_process=context.bus_ is not None
    )
    return json_response({"status": "success", "ingestion": health})


@router.get("/settings/campaign-defaults")
async def campaign_defaults(account: PasscodeAccount) -> Response:
    """What a new campaign starts with (quiet hours) and the account's frequency caps, for whoever may create
    campaigns: the rest of the settings stay an admin's."""
    settings = effective(account.settings)
    return json_response(
        {
            "status": "success",
            "quiet_hours": settings["quiet_hours"],
            "frequency_caps": settings["frequency_caps"],
        }
    )
