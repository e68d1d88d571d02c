"""The email feedback parts of one messaging process, built from settings, started and closed together."""

from __future__ import annotations

import ssl
from collections.abc import Callable
from dataclasses import dataclass, field

import httpx
from sqlalchemy.ext.asyncio import AsyncEngine

from tapwire_core.control.email_feedback import SoftBouncePolicy
from tapwire_core.egress import EgressPolicy, Resolver, guarded_client, system_resolver
from tapwire_core.settings import Settings
from tapwire_messaging.email_feedback.intake import FeedbackIntake, Suppressed
from tapwire_messaging.email_feedback.listener import BounceListener, BounceMailbox
from tapwire_messaging.email_feedback.providers.mailgun import MailgunVerifier
from tapwire_messaging.email_feedback.providers.sendgrid import SendgridVerifier
from tapwire_messaging.email_feedback.providers.sns import (
    MAX_CERT_BYTES,
    CertificateCache,
    SnsUrlPolicy,
    SnsVerifier,
    guarded_fetch,
)
from tapwire_messaging.email_feedback.return_path import ReturnPathTokens
from tapwire_messaging.feedback import FeedbackPublisher


@dataclass(frozen=True)
class SnsFetching:
    """How SNS URLs are reached: the guarded client's resolver and trust store, and explicit ports allowed.
    The defaults are production's; a test points them at its own HTTPS server."""

    resolver: Resolver = system_resolver
    ssl_context: ssl.SSLContext | None = None
    urls: SnsUrlPolicy = field(default_factory=SnsUrlPolicy)


class EmailFeedback:
    """Return-path tokens, the intake, each configured provider's verifier and the bounce mailbox."""

    def __init__(
        self,
        settings: Settings,
        *,
        engine: AsyncEngine,
        publisher: FeedbackPublisher,
        secret: bytes,
        egress: EgressPolicy,
        now_ms: Callable[[], int],
        on_suppressed: Suppressed | None = None,
        sns_fetching: SnsFetching | None = None,
    ) -> None:
        """Raises ValueError naming a malformed setting."""
        sns_fetching = sns_fetching or SnsFetching()
        self.settings = settings
        self.tokens = ReturnPathTokens(secret)
        self.intake = FeedbackIntake(
            engine=engine,
            publisher=publisher,
            policy=SoftBouncePolicy(
                limit=settings.email_soft_bounce_limit,
                window_ms=int(settings.email_soft_bounce_window_days * 86_400_000),
            ),
            now_ms=now_ms,
            on_suppressed=on_suppressed,
        )
        self.bounce_address = _bounce_address(settings.bounce_address)
        self.mime_token = settings.bounce_intake_token or None
        self.postmark_secret = settings.postmark_webhook_secret or None
        self.sendgrid = (
            SendgridVerifier(settings.sendgrid_webhook_public_key)
            if settings.sendgrid_webhook_public_key
            else None
        )
        self.mailgun = MailgunVerifier(settings.mailgun_signing_key) if settings.mailgun_signing_key else None
        self._client: httpx.AsyncClient | None = None
        self.sns: SnsVerifier | None = None
        topics = frozenset(t for t in (settings.ses_topic_arns or "").replace(",", " ").split() if t)
        if topics:
            self._client = guarded_client(
                egress,
                resolver=sns_fetching.resolver,
                ssl_context=sns_fetching.ssl_context,
                max_response_bytes=MAX_CERT_BYTES,
                timeout_s=5.0,
                deadline_s=10.0,
            )
            self.sns = SnsVerifier(
                topics=topics,
                certificates=CertificateCache(guarded_fetch(self._client)),
                urls=sns_fetching.urls,
            )
        self.listener: BounceListener | None = None
        if settings.bounce_smtp_port is not None:
            if self.bounce_address is None:
                raise ValueError(
                    "TAPWIRE_BOUNCE_SMTP_PORT needs TAPWIRE_BOUNCE_ADDRESS (the address it takes)"
                )
            self.listener = BounceListener(
                BounceMailbox(bounce_address=self.bounce_address, tokens=self.tokens, intake=self.intake),
                host=settings.bounce_smtp_host or settings.host,
                port=settings.bounce_smtp_port,
                hostname=self.bounce_address.rpartition("@")[2],
            )

    @property
    def client(self) -> httpx.AsyncClient | None:
        """The guarded client SNS certificates and subscription confirmations go through."""
        return self._client

    def token(self, row_id: int) -> str:
        return self.tokens.token(row_id)

    def return_path(self, row_id: int) -> str | None:
        """The VERP envelope sender of the message of outbox row ``row_id``; None without a bounce address."""
        if self.bounce_address is None:
            return None
        return self.tokens.verp_address(self.bounce_address, row_id)

    async def start(self) -> None:
        if self.listener is not None:
            await self.listener.start()

    async def close(self) -> None:
        if self.listener is not None:
            await self.listener.close()
        if self._client is not None:
            await self._client.aclose()


def _bounce_address(value: str | None) -> str | None:
    if not value:
        return None
    address = value.strip()
    local, at, domain = address.rpartition("@")
    if not at or not local or not domain or "+" in local or any(c in address for c in " <>\r\n\t\"'"):
        raise ValueError(
            f"TAPWIRE_BOUNCE_ADDRESS must be a plain address without '+', e.g. bounces@bounce.example; got {value!r}"
        )
    return address
