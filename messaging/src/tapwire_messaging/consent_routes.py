"""``GET /messaging/v1/consent``: one person's subscription state, as the console's profile page shows it."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from starlette.responses import Response

from tapwire_core.control.messaging import consent
from tapwire_core.http.auth import Context, PasscodeAccount
from tapwire_core.http.errors import ApiError, json_response

router = APIRouter()


@router.get("/messaging/v1/consent")
async def consent_of(
    *,
    account: PasscodeAccount,
    context: Context,
    user_key: Annotated[str | None, Query(max_length=500)] = None,
    email: Annotated[str | None, Query(max_length=320)] = None,
    phone: Annotated[str | None, Query(max_length=32)] = None,
) -> Response:
    """Entries for the person's user key, email address and phone number (any given), newest first: channel
    (or ``all``), ``subscribed`` / ``unsubscribed`` / ``objected``, where it came from and when."""
    named: tuple[tuple[consent.SubjectKind, str | None], ...] = (
        ("user", user_key),
        ("email", email),
        ("phone", phone),
    )
    subjects = [(kind, value) for kind, value in named if value]
    if not subjects:
        raise ApiError(400, "name the person by user_key, email or phone")
    entries = await consent.entries_for(context.store.engine, account_id=account.id, subjects=subjects)
    return json_response(
        {
            "status": "success",
            "consent": [
                {
                    "subject_kind": e.kind,
                    "subject": e.subject,
                    "channel": e.channel,
                    "state": e.state,
                    "source": e.source,
                    "updated_ms": e.updated_ms,
                }
                for e in entries
            ],
        }
    )
