"""My profile: the personal data tapwire holds about the signed-in person — see, change, export, delete."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from tapwire_console.web.api_client import ApiResult
from tapwire_console.web.frame import (
    Change,
    ConsoleWeb,
    PageFailed,
    SignedIn,
    Viewer,
    Web,
    form_value,
    redirect,
    render,
)
from tapwire_console.web.security import SECURITY_HEADERS, clear_session_cookie, is_https, set_session_cookie

router = APIRouter()


async def _page(
    web: ConsoleWeb,
    viewer: Viewer,
    *,
    status: int = 200,
    failure: ApiResult | None = None,
    notice: str | None = None,
) -> Response:
    me = await viewer.api.get("/account/v1/me")
    if not me.ok:
        raise PageFailed(me)
    return render(web, "me.html", viewer=viewer, status=status, me=me.body, failure=failure, notice=notice)


@router.get("/console/me")
async def me_page(viewer: SignedIn, web: Web) -> Response:
    return await _page(web, viewer)


@router.post("/console/me")
async def change(request: Request, viewer: Change, web: Web) -> Response:
    form = await request.form()
    result = await viewer.api.patch(
        "/account/v1/me", {"name": form_value(form, "name"), "email": form_value(form, "email")}
    )
    if not result.ok:
        return await _page(web, viewer, status=result.status, failure=result)
    return await _page(web, viewer, notice="Saved.")


@router.post("/console/me/password")
async def password(request: Request, viewer: Change, web: Web) -> Response:
    form = await request.form()
    if str(form.get("new_password") or "") != str(form.get("new_password_again") or ""):
        return await _page(
            web,
            viewer,
            status=422,
            failure=ApiResult(422, {"message": "new_password_again: the two passwords differ"}),
        )
    result = await viewer.api.post(
        "/account/v1/me/password",
        {
            "current_password": str(form.get("current_password") or ""),
            "new_password": str(form.get("new_password") or ""),
        },
    )
    if not result.ok:
        return await _page(web, viewer, status=result.status, failure=result)
    response = redirect(request, "/console/me?changed=1")
    set_session_cookie(
        response,
        web.signer.sign_session(result.body["token"]),
        secure=is_https(request, web.settings.resolved_public_url()),
        max_age=web.settings.console_session_hours * 3600,
    )
    return response


@router.get("/console/me/export")
async def export(viewer: SignedIn) -> Response:
    result = await viewer.api.get("/account/v1/me/export")
    if not result.ok:
        raise PageFailed(result)
    import orjson

    return Response(
        orjson.dumps(result.body, option=orjson.OPT_INDENT_2),
        media_type="application/json",
        headers={**SECURITY_HEADERS, "Content-Disposition": 'attachment; filename="my-tapwire-data.json"'},
    )


@router.post("/console/me/delete")
async def delete(request: Request, viewer: Change, web: Web) -> Response:
    result = await viewer.api.delete("/account/v1/me")
    if not result.ok:
        return await _page(web, viewer, status=result.status, failure=result)
    response = redirect(request, "/console")
    clear_session_cookie(response, secure=is_https(request, web.settings.resolved_public_url()))
    return response
