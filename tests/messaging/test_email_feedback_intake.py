"""Bounce and complaint reports reaching a running messaging service: the bounce mailbox over SMTP, raw reports
over HTTP and each provider's webhook, with valid and forged credentials. What they must do: suppress the
address (visible through the suppression API), publish ``Notification Bounced`` / ``Complained`` on the bus,
apply a repeated report once, and believe nothing that is not verified."""

from __future__ import annotations

import asyncio
import json
import smtplib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from sqlalchemy import select, update

from tapwire_core.control.messaging.models import OutboxRow
from tapwire_messaging.email_feedback.providers.sns import SnsUrlPolicy
from tapwire_messaging.email_feedback.runtime import SnsFetching
from tests.infra.clickhouse import WarehouseFactory
from tests.integration.processes import free_port
from tests.messaging.email_providers import (
    TOPIC,
    LocalSns,
    SendgridSigner,
    basic,
    local_sns,
    mailgun_post,
    sns_resolver,
)
from tests.messaging.email_reports import arf, dsn
from tests.messaging.feedback_checks import (
    BOUNCE_ADDRESS,
    USERS,
    feedback_events,
    reasons,
    suppression,
)
from tests.messaging.rig import HEADERS, Rig, add_profiles, messaging_rig, settings_for, wait_finished
from tests.messaging.servers import smtp_sink

pytestmark = pytest.mark.integration

INTAKE_TOKEN = "intake-token-0123456789"
POSTMARK_SECRET = "postmark-secret-0123456789"
MAILGUN_KEY = "key-mailgun-0123456789"


@asynccontextmanager
async def sent_campaign(
    tmp_path: Path,
    warehouse_factory: WarehouseFactory,
    *,
    sns: LocalSns | None = None,
    sendgrid: SendgridSigner | None = None,
    **settings: Any,
) -> AsyncIterator[tuple[Rig, dict[str, int]]]:
    """A rig whose email campaign went to every user; yields it with each user's outbox row id."""
    warehouse = await warehouse_factory("chdb")
    extra: dict[str, Any] = {
        "bounce_intake_token": INTAKE_TOKEN,
        "postmark_webhook_secret": POSTMARK_SECRET,
        "mailgun_signing_key": MAILGUN_KEY,
        "bounce_address": BOUNCE_ADDRESS,
        **settings,
    }
    fetching = None
    if sns is not None:
        extra["ses_topic_arns"] = TOPIC
        fetching = SnsFetching(
            resolver=sns_resolver, ssl_context=sns.client_context(), urls=SnsUrlPolicy(frozenset({sns.port}))
        )
    if sendgrid is not None:
        extra["sendgrid_webhook_public_key"] = sendgrid.public_key
    with smtp_sink() as sink:
        async with messaging_rig(
            tmp_path, warehouse, settings_for(tmp_path, sink.url, **extra), sns_fetching=fetching
        ) as rig:
            await add_profiles(warehouse, [(f"i:{u}", {"Email": f"{u}@example.com"}) for u in USERS])
            created = await rig.post(
                "/messaging/v1/campaigns",
                {
                    "name": "Spring",
                    "channel": "email",
                    "where": {},
                    "content": {"subject": "Hi", "body": "Sale"},
                },
            )
            assert created.status_code == 201, created.text
            await wait_finished(rig, created.json()["id"])
            async with rig.service.store.engine.connect() as connection:
                rows = await connection.execute(select(OutboxRow.user_key, OutboxRow.id))
                yield rig, {key[2:]: int(row_id) for key, row_id in rows}


def message_id(rig: Rig, row_id: int) -> str:
    return f"<k.{rig.service.email_feedback.tokens.token(row_id)}@shop.example>"


async def test_ses_notifications_through_sns_are_verified_then_suppress(
    tmp_path: Path, warehouse_factory: WarehouseFactory
) -> None:
    with local_sns() as sns:
        async with sent_campaign(tmp_path, warehouse_factory, sns=sns) as (rig, rows):

            async def post(body: dict[str, Any]) -> Any:
                return await rig.client.post("/messaging/v1/email-feedback/ses", json=body)

            confirm = await post(
                sns.envelope("You have chosen to subscribe", kind="SubscriptionConfirmation")
            )
            assert confirm.status_code == 200, confirm.text
            assert sns.confirmations == ["/confirm?Token=confirm-token"]

            bounce = {
                "notificationType": "Bounce",
                "bounce": {
                    "bounceType": "Permanent",
                    "bounceSubType": "General",
                    "feedbackId": "fb-1",
                    "timestamp": "2026-12-07T10:00:00.000Z",
                    "bouncedRecipients": [
                        {
                            "emailAddress": "ann@example.com",
                            "status": "5.1.1",
                            "diagnosticCode": "smtp; 550 5.1.1 <ann@example.com> unknown",
                        }
                    ],
                },
                "mail": {"messageId": "ses-1", "commonHeaders": {"messageId": message_id(rig, rows["ann"])}},
            }
            answer = await post(sns.envelope(json.dumps(bounce), message_id="n-1"))
            assert answer.status_code == 200, answer.text
            assert answer.json()["applied"] == 1
            complaint = {
                "eventType": "Complaint",
                "complaint": {
                    "feedbackId": "fb-2",
                    "complainedRecipients": [{"emailAddress": "bob@example.com"}],
                },
                "mail": {
                    "messageId": "ses-2",
                    "tags": {"tapwire": [rig.service.email_feedback.tokens.token(rows["bob"])]},
                },
            }
            assert (
                await post(sns.envelope(json.dumps(complaint), message_id="n-2", version="2"))
            ).status_code == 200
            # SNS delivers a message more than once at times: applied once.
            again = await post(sns.envelope(json.dumps(bounce), message_id="n-1"))
            assert again.json() == {"status": "success", "applied": 0, "repeated": 1, "unmatched": 0}

            forged_for_cat = (
                json.dumps(bounce)
                .replace("ann@example.com", "cat@example.com")
                .replace(message_id(rig, rows["ann"]), message_id(rig, rows["cat"]))
                .replace("fb-1", "fb-3")
            )
            other_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
            forged = sns.envelope(forged_for_cat, message_id="n-3", key=other_key)
            assert (await post(forged)).status_code == 401
            tampered = sns.envelope(json.dumps(bounce), message_id="n-4")
            tampered["Message"] = forged_for_cat
            assert (await post(tampered)).status_code == 401
            assert (
                await post(sns.envelope(forged_for_cat, topic="arn:aws:sns:eu-west-1:666:attacker"))
            ).status_code == 403
            elsewhere = sns.envelope(forged_for_cat, certificate_url="https://attacker.example/cert.pem")
            assert (await post(elsewhere)).status_code == 400
            stale = sns.envelope(forged_for_cat, timestamp="2020-01-01T00:00:00.000Z")
            assert (await post(stale)).status_code == 401

            assert await reasons(rig) == {"ann": "hard_bounce", "bob": "complaint"}
            assert sns.certificate_fetches == 1
            state = await suppression(rig, "ann")
            assert state["feedback"][0]["source"] == "ses"
            assert "ann@example.com" not in json.dumps(state)
            events = await feedback_events(rig)
            assert sorted((e.name, e.properties.get("bounce_type")) for e in events) == [
                ("Notification Bounced", "hard"),
                ("Notification Complained", None),
            ]
            bounced = next(e for e in events if e.name == "Notification Bounced")
            assert bounced.ids.identity == "ann"
            assert bounced.properties["campaign_id"] > 0 and bounced.properties["channel"] == "email"


async def test_sendgrid_events_count_only_with_a_valid_signature(
    tmp_path: Path, warehouse_factory: WarehouseFactory
) -> None:
    signer = SendgridSigner()
    async with sent_campaign(tmp_path, warehouse_factory, sendgrid=signer) as (rig, rows):
        tokens = rig.service.email_feedback.tokens
        events = [
            {
                "email": "ann@example.com",
                "event": "bounce",
                "type": "bounce",
                "status": "5.1.1",
                "reason": "550 5.1.1 unknown user",
                "sg_event_id": "e1",
                "smtp-id": message_id(rig, rows["ann"]),
                "timestamp": 1_800_000_000,
            },
            {
                "email": "bob@example.com",
                "event": "spamreport",
                "sg_event_id": "e2",
                "tapwire": tokens.token(rows["bob"]),
            },
            {
                "email": "cat@example.com",
                "event": "bounce",
                "type": "blocked",
                "status": "5.7.1",
                "sg_event_id": "e3",
                "tapwire": tokens.token(rows["cat"]),
            },
            {
                "email": "dan@example.com",
                "event": "delivered",
                "sg_event_id": "e4",
                "tapwire": tokens.token(rows["dan"]),
            },
            {"email": "dan@example.com", "event": "open", "sg_event_id": "e5"},
        ]
        body = json.dumps(events).encode()
        url = "/messaging/v1/email-feedback/sendgrid"
        forged = SendgridSigner().headers(body)
        assert (await rig.client.post(url, content=body, headers=forged)).status_code == 401
        tampered = body.replace(b"ann@", b"eve@")
        assert (await rig.client.post(url, content=tampered, headers=signer.headers(body))).status_code == 401
        stale = signer.headers(body, timestamp=1_000_000_000)
        assert (await rig.client.post(url, content=body, headers=stale)).status_code == 401
        assert (await rig.client.post(url, content=body)).status_code == 401
        assert await reasons(rig) == {}

        answer = await rig.client.post(url, content=body, headers=signer.headers(body))
        assert answer.status_code == 200, answer.text
        assert answer.json()["applied"] == 4
        # cat's message was blocked (content or reputation): recorded, the address stays usable.
        assert await reasons(rig) == {"ann": "hard_bounce", "bob": "complaint"}
        assert (await suppression(rig, "cat"))["feedback"][0]["kind"] == "block"
        names = sorted(e.name for e in await feedback_events(rig))
        assert names == [
            "Notification Bounced",
            "Notification Bounced",
            "Notification Complained",
            "Notification Delivered",
        ]


async def test_postmark_needs_its_secret_as_basic_password_or_bearer_token(
    tmp_path: Path, warehouse_factory: WarehouseFactory
) -> None:
    async with sent_campaign(tmp_path, warehouse_factory) as (rig, rows):
        tokens = rig.service.email_feedback.tokens
        url = "/messaging/v1/email-feedback/postmark"
        bounce = {
            "RecordType": "Bounce",
            "Type": "HardBounce",
            "ID": 42,
            "Email": "ann@example.com",
            "Details": "smtp;550 5.1.1 The email account that you tried to reach does not exist",
            "Metadata": {"tapwire": tokens.token(rows["ann"])},
            "BouncedAt": "2026-12-07T10:00:00Z",
        }
        complaint = {
            "RecordType": "SpamComplaint",
            "Type": "SpamComplaint",
            "ID": 43,
            "Email": "bob@example.com",
            "Metadata": {"tapwire": tokens.token(rows["bob"])},
        }
        for wrong in (basic("postmark", "guess"), "Bearer guess", "", basic("postmark", "")):
            answer = await rig.client.post(
                url, json=bounce, headers={"Authorization": wrong} if wrong else {}
            )
            assert answer.status_code == 401
        assert await reasons(rig) == {}
        ok = await rig.client.post(
            url, json=bounce, headers={"Authorization": basic("hooks", POSTMARK_SECRET)}
        )
        assert ok.status_code == 200 and ok.json()["applied"] == 1
        ok = await rig.client.post(
            url, json=complaint, headers={"Authorization": f"Bearer {POSTMARK_SECRET}"}
        )
        assert ok.status_code == 200 and ok.json()["applied"] == 1
        assert await reasons(rig) == {"ann": "hard_bounce", "bob": "complaint"}


async def test_mailgun_events_need_a_fresh_signature_used_once(
    tmp_path: Path, warehouse_factory: WarehouseFactory
) -> None:
    async with sent_campaign(tmp_path, warehouse_factory) as (rig, rows):
        url = "/messaging/v1/email-feedback/mailgun"
        failed = {
            "event": "failed",
            "severity": "permanent",
            "reason": "bounce",
            "id": "mg-1",
            "recipient": "ann@example.com",
            "timestamp": 1_800_000_000.5,
            "delivery-status": {"code": 550, "message": "5.1.1 no such user ann@example.com"},
            "message": {"headers": {"message-id": message_id(rig, rows["ann"]).strip("<>")}},
        }
        temporary = {**failed, "severity": "temporary", "id": "mg-2"}
        assert (
            await rig.client.post(url, content=mailgun_post("wrong-key", failed, token="t1"))
        ).status_code == 401
        stale = mailgun_post(MAILGUN_KEY, failed, token="t2", timestamp=1_000_000_000)
        assert (await rig.client.post(url, content=stale)).status_code == 401
        assert (await rig.client.post(url, content=mailgun_post(MAILGUN_KEY, temporary, token="t3"))).json()[
            "applied"
        ] == 0
        assert await reasons(rig) == {}
        signed = mailgun_post(MAILGUN_KEY, failed, token="t4")
        answer = await rig.client.post(url, content=signed)
        assert answer.status_code == 200 and answer.json()["applied"] == 1
        assert (await rig.client.post(url, content=signed)).status_code == 401  # the same signature again
        assert await reasons(rig) == {"ann": "hard_bounce"}
        assert (await suppression(rig, "ann"))["feedback"][0]["status"] == "5.1.1"


async def test_raw_reports_over_http_need_the_intake_token(
    tmp_path: Path, warehouse_factory: WarehouseFactory
) -> None:
    async with sent_campaign(tmp_path, warehouse_factory) as (rig, rows):
        url = "/messaging/v1/email-feedback/mime"
        verp = rig.service.email_feedback.return_path(rows["ann"])
        assert verp is not None
        report = dsn(to=verp, recipient="ann@example.com", message_id="<elsewhere@x>")
        headers = {"Content-Type": "message/rfc822", "X-Original-To": verp}
        for wrong in ("Bearer nope", f"Basic {INTAKE_TOKEN}"):
            answer = await rig.client.post(url, content=report, headers={**headers, "Authorization": wrong})
            assert answer.status_code == 401
        headers["Authorization"] = f"Bearer {INTAKE_TOKEN}"
        assert (await rig.client.post(url, content=report, headers=headers)).json()["applied"] == 1
        assert (await rig.client.post(url, content=report, headers=headers)).json()["repeated"] == 1
        complaint = arf(
            to=BOUNCE_ADDRESS, recipient="bob@example.com", message_id=message_id(rig, rows["bob"])
        )
        answer = await rig.client.post(
            url, content=complaint, headers={"Authorization": f"Bearer {INTAKE_TOKEN}"}
        )
        assert answer.json()["applied"] == 1
        forged = arf(
            to=BOUNCE_ADDRESS,
            recipient="cat@example.com",
            message_id="<k.tw1-000000000000@shop.example>",
            report_id="<arf-2@x>",
        )
        answer = await rig.client.post(
            url, content=forged, headers={"Authorization": f"Bearer {INTAKE_TOKEN}"}
        )
        assert answer.json() == {"status": "success", "applied": 0, "repeated": 0, "unmatched": 1}
        assert await reasons(rig) == {"ann": "hard_bounce", "bob": "complaint"}


async def test_soft_bounces_suppress_after_the_limit_and_an_operator_lifts_it(
    tmp_path: Path, warehouse_factory: WarehouseFactory
) -> None:
    async with sent_campaign(tmp_path, warehouse_factory, email_soft_bounce_limit=2) as (rig, rows):
        url = "/messaging/v1/email-feedback/mime"
        headers = {"Authorization": f"Bearer {INTAKE_TOKEN}"}
        mid = message_id(rig, rows["ann"])
        for n in (1, 2):
            report = dsn(
                to=BOUNCE_ADDRESS,
                recipient="ann@example.com",
                message_id=mid,
                status="4.2.2",
                diagnostic="smtp; 452 4.2.2 mailbox full",
                report_id=f"<soft-{n}@mx>",
            )
            assert (await rig.client.post(url, content=report, headers=headers)).json()["applied"] == 1
            assert await reasons(rig) == ({} if n == 1 else {"ann": "soft_bounces"})
        lifted = await rig.client.delete(
            "/messaging/v1/email-suppressions", params={"address": "ANN@example.com"}, headers=HEADERS
        )
        assert lifted.json() == {"status": "success", "lifted": True}
        assert await reasons(rig) == {}
        # Soft bounces before the lift no longer count: one more is one, not three.
        report = dsn(
            to=BOUNCE_ADDRESS,
            recipient="ann@example.com",
            message_id=mid,
            status="4.2.2",
            report_id="<soft-3@mx>",
        )
        await rig.client.post(url, content=report, headers=headers)
        assert await reasons(rig) == {}


async def test_the_bounce_mailbox_takes_reports_for_its_addresses_over_smtp(
    tmp_path: Path, warehouse_factory: WarehouseFactory
) -> None:
    port = free_port()
    async with sent_campaign(
        tmp_path, warehouse_factory, bounce_smtp_port=port, bounce_smtp_host="127.0.0.1"
    ) as (rig, rows):
        verp = rig.service.email_feedback.return_path(rows["ann"])
        assert verp is not None
        local, _, domain = verp.partition("@")
        forged_verp = f"{local[:-1]}{'0' if local[-1] != '0' else '1'}@{domain}"

        def deliver() -> dict[str, tuple[int, bytes]]:
            with smtplib.SMTP("127.0.0.1", port, timeout=30) as client:
                client.ehlo("mx.example")
                refused = {}
                for rcpt in ("postmaster@bounce.shop.example", "ann@example.com", forged_verp):
                    client.mail("<>")
                    refused[rcpt] = client.rcpt(rcpt)
                    client.rset()
                client.sendmail("", [verp], dsn(to=verp, recipient="ann@example.com", message_id="<x@y>"))
                client.sendmail(
                    "",
                    [BOUNCE_ADDRESS],
                    arf(
                        to=BOUNCE_ADDRESS,
                        recipient="bob@example.com",
                        message_id=message_id(rig, rows["bob"]),
                    ),
                )
                return refused

        refused = await asyncio.to_thread(deliver)
        assert {rcpt: code for rcpt, (code, _) in refused.items()} == dict.fromkeys(refused, 550)
        assert await reasons(rig) == {"ann": "hard_bounce", "bob": "complaint"}
        assert sorted(e.name for e in await feedback_events(rig)) == [
            "Notification Bounced",
            "Notification Complained",
        ]


async def test_a_report_about_an_erased_recipients_message_changes_nothing(
    tmp_path: Path, warehouse_factory: WarehouseFactory
) -> None:
    async with sent_campaign(tmp_path, warehouse_factory) as (rig, rows):
        # What the privacy worker leaves of an erased user's delivery record: a pseudonym, no address.
        async with rig.service.store.engine.begin() as connection:
            await connection.execute(
                update(OutboxRow).where(OutboxRow.id == rows["ann"]).values(user_key="x:0f3a", address="")
            )
        report = dsn(to=BOUNCE_ADDRESS, recipient="ann@example.com", message_id=message_id(rig, rows["ann"]))
        answer = await rig.client.post(
            "/messaging/v1/email-feedback/mime",
            content=report,
            headers={"Authorization": f"Bearer {INTAKE_TOKEN}"},
        )
        assert answer.json() == {"status": "success", "applied": 0, "repeated": 0, "unmatched": 1}
        assert await reasons(rig) == {}
        assert (await suppression(rig, "ann"))["feedback"] == []
