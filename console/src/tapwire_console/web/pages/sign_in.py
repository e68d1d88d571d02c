"""Signing in (the account's passcode on first start, or a console user's email and password), out, and
accepting an invitation."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import Response

from tapwire_console.web.frame import Change, ConsoleWeb, Web, client_host, form_value, redirect, render
from tapwire_console.web.security import (
    PRESESSION_COOKIE,
    clear_session_cookie,
    is_https,
    new_presession,
    same_origin,
    set_session_cookie,
)

router = APIRouter()


def sign_in_page(
    request: Request,
    web: ConsoleWeb,
    *,
    mode: str | None = None,
    error: str | None = None,
    status: int = 200,
    **values: Any,
) -> Response:
    """The sign-in form with a fresh pre-session CSRF binding."""
    nonce = new_presession()
    chosen = mode or request.query_params.get("with", "passcode")
    response = render(
        web,
        "sign_in.html",
        status=status,
        mode="email" if chosen == "email" else "passcode",
        error=error,
        csrf=web.signer.csrf_for(nonce),
        next_url=_safe_next(request.query_params.get("next")),
        values={"account_id": request.query_params.get("account", "")} | values,
    )
    secure = is_https(request, web.settings.resolved_public_url())
    response.set_cookie(
        PRESESSION_COOKIE, nonce, httponly=True, samesite="strict", secure=secure, max_age=3600
    )
    return response


def _safe_next(value: str | None) -> str:
    """Only a path on this site: never an absolute or scheme-relative URL (no open redirect)."""
    if value and value.startswith("/") and not value.startswith(("//", "/\\")):
        return value
    return "/console"


@router.post("/console/sign-in")
async def sign_in(request: Request, web: Web) -> Response:
    form = await request.form()
    mode = "email" if form_value(form, "mode") == "email" else "passcode"
    account_id = form_value(form, "account_id")
    if not same_origin(request) or not web.signer.csrf_valid(
        request.cookies.get(PRESESSION_COOKIE), form_value(form, "csrf_token")
    ):
        return sign_in_page(
            request, web, mode=mode, error="The form expired; please sign in again.", status=403
        )
    body: dict[str, str] = {"account_id": account_id}
    if mode == "email":
        body |= {"email": form_value(form, "email"), "password": str(form.get("password") or "")}
    else:
        body["passcode"] = str(form.get("passcode") or "")
    api = web.gateway.client(token=None, client_host=client_host(request))
    result = await api.post("/account/v1/sessions", body)
    if not result.ok:
        status = result.status if result.status in (401, 403, 422, 429) else 503
        message = result.error if result.status != 422 else "Fill in every field."
        return sign_in_page(
            request,
            web,
            mode=mode,
            error=message,
            status=status,
            account_id=account_id,
            email=body.get("email", ""),
        )
    secure = is_https(request, web.settings.resolved_public_url())
    response = redirect(request, _safe_next(form_value(form, "next")))
    set_session_cookie(
        response,
        web.signer.sign_session(result.body["token"]),
        secure=secure,
        max_age=web.settings.console_session_hours * 3600,
    )
    response.delete_cookie(PRESESSION_COOKIE)
    return response


@router.post("/console/sign-out")
async def sign_out(request: Request, viewer: Change, web: Web) -> Response:
    await viewer.api.delete("/account/v1/sessions/current")
    response = redirect(request, "/console")
    clear_session_cookie(response, secure=is_https(request, web.settings.resolved_public_url()))
    return response


@router.get("/console/invitation/{token}")
async def invitation(request: Request, token: str, web: Web) -> Response:
    api = web.gateway.client(token=None, client_host=client_host(request))
    found = await api.get(f"/account/v1/invitations/{token}")
    nonce = new_presession()
    response = render(
        web,
        "invitation.html",
        status=200 if found.ok else 404,
        invitation=found.body if found.ok else None,
        error=None if found.ok else found.error,
        token=token,
        csrf=web.signer.csrf_for(nonce),
    )
    response.set_cookie(PRESESSION_COOKIE, nonce, httponly=True, samesite="strict", max_age=3600)
    return response


@router.post("/console/invitation/{token}")
async def accept_invitation(request: Request, token: str, web: Web) -> Response:
    form = await request.form()
    api = web.gateway.client(token=None, client_host=client_host(request))
    found = await api.get(f"/account/v1/invitations/{token}")
    csrf_ok = same_origin(request) and web.signer.csrf_valid(
        request.cookies.get(PRESESSION_COOKIE), form_value(form, "csrf_token")
    )
    password, again = str(form.get("password") or ""), str(form.get("password_again") or "")
    error: str | None = None
    if not csrf_ok:
        error = "The form expired; please try again."
    elif password != again:
        error = "password_again: the two passwords differ"
    else:
        accepted = await api.post(
            "/account/v1/invitations/accept",
            {"token": token, "password": password, "name": form_value(form, "name") or None},
        )
        if accepted.ok:
            return redirect(request, f"/console?with=email&account={accepted.body['account_id']}")
        error = accepted.error
    nonce = new_presession()
    response = render(
        web,
        "invitation.html",
        status=422,
        invitation=found.body if found.ok else None,
        error=error,
        token=token,
        csrf=web.signer.csrf_for(nonce),
    )
    response.set_cookie(PRESESSION_COOKIE, nonce, httponly=True, samesite="strict", max_age=3600)
    return response
