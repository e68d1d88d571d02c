"""HTTP intake of email feedback (public, each verified its own way) and the suppression list API (passcode).

- ``POST /messaging/v1/email-feedback/mime``: one raw report (DSN or ARF) as an inbound relay received it,
  ``Authorization: Bearer <TAPWIRE_BOUNCE_INTAKE_TOKEN>``; ``X-Original-To`` may name the address it was
  sent to (the VERP address).
- ``POST /messaging/v1/email-feedback/{ses,sendgrid,postmark,mailgun}``: the providers' webhooks.
- ``GET`` / ``DELETE /messaging/v1/email-suppressions?address=``: whether an address is suppressed and its
  latest bounces and complaints; lift the suppression.

A provider whose credentials are not configured answers 404: the endpoint does not exist on this deployment.
Credentials sent in headers are checked before the body is read; signatures inside the body are checked after
reading it under a small cap, charged to the client's address. 200 means every report in the post is applied
(or was before, or names no message of this deployment); 503 with ``Retry-After`` asks the provider to retry.
"""

from __future__ import annotations

import hmac
from typing import Annotated, Any, Final

import httpx
import orjson
from fastapi import APIRouter, Depends, Query, Request
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.responses import Response

from tapwire_core.control.email_feedback import address_state, lift_suppression
from tapwire_core.http.auth import Context, PasscodeAccount
from tapwire_core.http.body import BodyLimits, body_ticket, decode_json, mark_authenticated, read_body
from tapwire_core.http.errors import ApiError, json_response
from tapwire_messaging.email_feedback.intake import IntakeResult, IntakeUnavailable
from tapwire_messaging.email_feedback.mailbox import MAX_MESSAGE_BYTES, notices_from_message
from tapwire_messaging.email_feedback.notices import Notice
from tapwire_messaging.email_feedback.providers.errors import WebhookRefused, WebhookUnavailable
from tapwire_messaging.email_feedback.providers.mailgun import mailgun_notices
from tapwire_messaging.email_feedback.providers.postmark import check_postmark_auth, postmark_notices
from tapwire_messaging.email_feedback.providers.sendgrid import sendgrid_notices
from tapwire_messaging.email_feedback.providers.ses import ses_notices
from tapwire_messaging.email_feedback.runtime import EmailFeedback
from tapwire_messaging.metrics import EMAIL_FEEDBACK_REFUSED

feedback_router = APIRouter()
suppressions_router = APIRouter()

_MIME: Final = BodyLimits(MAX_MESSAGE_BYTES, MAX_MESSAGE_BYTES, 1, 1, what="Report")
_SNS: Final = BodyLimits(512 * 1024, 512 * 1024, 10_000, 32, what="SNS message")
_SENDGRID: Final = BodyLimits(4 * 1024 * 1024, 4 * 1024 * 1024, 500_000, 16, what="SendGrid events")
_SMALL: Final = BodyLimits(256 * 1024, 256 * 1024, 20_000, 32, what="Webhook body")
# Postmark may include the bounced message's content ("Include bounce content").
_POSTMARK: Final = BodyLimits(1024 * 1024, 1024 * 1024, 20_000, 32, what="Postmark webhook body")
_RETRY_AFTER_S: Final = 30


def email_feedback(request: Request) -> EmailFeedback:
    service = getattr(request.app.state, "messaging", None)
    feedback: EmailFeedback | None = getattr(service, "email_feedback", None) if service is not None else None
    if feedback is None:
        raise ApiError(503, "messaging is not running in this process", retry_after=_RETRY_AFTER_S)
    return feedback


Feedback = Annotated[EmailFeedback, Depends(email_feedback)]


def _not_configured(provider: str) -> ApiError:
    return ApiError(404, f"{provider} feedback is not configured on this deployment")


def _refused(source: str, exc: WebhookRefused) -> ApiError:
    EMAIL_FEEDBACK_REFUSED.labels(source, exc.reason).inc()
    return ApiError(exc.status, str(exc))


async def _applied(feedback: EmailFeedback, notices: list[Notice]) -> Response:
    try:
        result: IntakeResult = await feedback.intake.apply(notices)
    except IntakeUnavailable:
        raise ApiError(
            503, "the report cannot be recorded now; retry later", retry_after=_RETRY_AFTER_S
        ) from None
    return json_response(
        {
            "status": "success",
            "applied": result.applied,
            "repeated": result.repeated,
            "unmatched": result.unmatched,
        }
    )


def _bearer(request: Request) -> str:
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    return value.strip() if scheme.lower() == "bearer" else ""


@feedback_router.post("/messaging/v1/email-feedback/mime")
async def raw_report(request: Request, feedback: Feedback) -> Response:
    if feedback.mime_token is None:
        raise _not_configured("Raw report")
    if not hmac.compare_digest(_bearer(request).encode(), feedback.mime_token.encode()):
        EMAIL_FEEDBACK_REFUSED.labels("mime", "credentials").inc()
        raise ApiError(401, "Authorization: Bearer <intake token> is missing or wrong")
    mark_authenticated(request, "email-feedback:mime")
    raw = await read_body(request, _MIME)
    if not raw.strip():
        raise ApiError(400, "Report is empty")
    recipients = [v for v in (request.headers.get("x-original-to"), request.headers.get("delivered-to")) if v]
    notices = notices_from_message(raw, tokens=feedback.tokens, envelope_recipients=recipients[:2])
    return await _applied(feedback, notices)


@feedback_router.post("/messaging/v1/email-feedback/ses")
async def ses_notification(request: Request, feedback: Feedback) -> Response:
    if feedback.sns is None:
        raise _not_configured("SES")
    body = await read_body(request, _SNS, public=True)
    message = decode_json(body, _SNS, ticket=body_ticket(request))
    if not isinstance(message, dict):
        raise ApiError(400, "not an SNS message")
    try:
        await feedback.sns.verify(message)
    except WebhookRefused as exc:
        raise _refused("ses", exc) from None
    except WebhookUnavailable:
        raise ApiError(503, "the SNS certificate cannot be fetched now", retry_after=_RETRY_AFTER_S) from None
    kind = message["Type"]
    if kind == "SubscriptionConfirmation":
        return await _confirm_subscription(feedback, str(message.get("SubscribeURL", "")))
    if kind != "Notification":
        return json_response({"status": "success", "applied": 0, "repeated": 0, "unmatched": 0})
    try:
        notification = orjson.loads(str(message.get("Message", "")))
    except orjson.JSONDecodeError:
        raise ApiError(400, "the SNS Message is not an SES notification") from None
    if not isinstance(notification, dict):
        raise ApiError(400, "the SNS Message is not an SES notification")
    return await _applied(feedback, ses_notices(notification, tokens=feedback.tokens))


async def _confirm_subscription(feedback: EmailFeedback, url: str) -> Response:
    """Confirm a subscription of a listed topic by visiting its SubscribeURL (an SNS URL, through the guarded
    client); that is how SNS starts delivering."""
    assert feedback.sns is not None and feedback.client is not None
    try:
        feedback.sns.urls.check(url, what="subscription")
    except WebhookRefused as exc:
        raise _refused("ses", exc) from None
    try:
        response = await feedback.client.get(url)
        await response.aread()
    except httpx.HTTPError:
        raise ApiError(
            503, "the subscription could not be confirmed now", retry_after=_RETRY_AFTER_S
        ) from None
    if response.status_code != 200:
        raise ApiError(502, f"SNS answered {response.status_code} to the subscription confirmation")
    return json_response({"status": "success", "confirmed": True})


@feedback_router.post("/messaging/v1/email-feedback/sendgrid")
async def sendgrid_events(request: Request, feedback: Feedback) -> Response:
    if feedback.sendgrid is None:
        raise _not_configured("SendGrid")
    try:
        signature, timestamp = feedback.sendgrid.check_headers(request.headers)
    except WebhookRefused as exc:
        raise _refused("sendgrid", exc) from None
    body = await read_body(request, _SENDGRID, public=True)
    try:
        feedback.sendgrid.verify(signature, timestamp, body)
    except WebhookRefused as exc:
        raise _refused("sendgrid", exc) from None
    events = decode_json(body, _SENDGRID, ticket=body_ticket(request))
    return await _applied(feedback, sendgrid_notices(events, tokens=feedback.tokens))


@feedback_router.post("/messaging/v1/email-feedback/postmark")
async def postmark_event(request: Request, feedback: Feedback) -> Response:
    if feedback.postmark_secret is None:
        raise _not_configured("Postmark")
    try:
        check_postmark_auth(request.headers.get("authorization"), feedback.postmark_secret)
    except WebhookRefused as exc:
        raise _refused("postmark", exc) from None
    mark_authenticated(request, "email-feedback:postmark")
    body = await read_body(request, _POSTMARK)
    payload = decode_json(body, _POSTMARK, ticket=body_ticket(request))
    return await _applied(feedback, postmark_notices(payload, tokens=feedback.tokens))


@feedback_router.post("/messaging/v1/email-feedback/mailgun")
async def mailgun_event(request: Request, feedback: Feedback) -> Response:
    if feedback.mailgun is None:
        raise _not_configured("Mailgun")
    body = await read_body(request, _SMALL, public=True)
    payload = decode_json(body, _SMALL, ticket=body_ticket(request))
    try:
        data = feedback.mailgun.verify(payload)
    except WebhookRefused as exc:
        raise _refused("mailgun", exc) from None
    return await _applied(feedback, mailgun_notices(data, tokens=feedback.tokens))


# The suppression list, per account.


@suppressions_router.get("/messaging/v1/email-suppressions")
async def suppression_state(
    account: PasscodeAccount,
    context: Context,
    address: Annotated[str, Query(min_length=3, max_length=320)],
) -> Response:
    """Whether ``address`` is suppressed for email (and why), with its latest bounces and complaints."""
    async with AsyncSession(context.store.engine) as session, session.begin():
        suppression, history = await address_state(session, account_id=account.id, address=address)
    body: dict[str, Any] = {
        "status": "success",
        "suppressed": suppression is not None,
        "suppression": None
        if suppression is None
        else {"reason": suppression.reason, "source": suppression.source, "since_ms": suppression.created_ms},
        "feedback": [
            {
                "kind": item.kind,
                "source": item.source,
                "category": item.category,
                "status": item.status,
                "detail": item.detail,
                "campaign_id": item.campaign_id,
                "ts_ms": item.ts_ms,
            }
            for item in history
        ],
    }
    return json_response(body)


@suppressions_router.delete("/messaging/v1/email-suppressions")
async def suppression_lift(
    account: PasscodeAccount,
    context: Context,
    address: Annotated[str, Query(min_length=3, max_length=320)],
) -> Response:
    """Take ``address`` off the suppression list (after the person fixed their mailbox, or a report proved
    wrong). Its soft bounces so far stop counting."""
    async with AsyncSession(context.store.engine) as session, session.begin():
        lifted = await lift_suppression(session, account_id=account.id, addresses=[address])
    return json_response({"status": "success", "lifted": lifted > 0})
