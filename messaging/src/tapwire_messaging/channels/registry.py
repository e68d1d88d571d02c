"""Building the configured providers from settings: one adapter per channel, None where unconfigured."""

from __future__ import annotations

from dataclasses import dataclass

from tapwire_core.egress import policy_from_settings
from tapwire_core.settings import Settings
from tapwire_messaging.channels.apns_token import ApnsProviderToken
from tapwire_messaging.channels.base import ChannelAdapter, ChannelName
from tapwire_messaging.channels.fcm_token import FcmAccessToken
from tapwire_messaging.channels.push import ApnsAdapter, FcmAdapter, PushRouter
from tapwire_messaging.channels.sms import TwilioSmsAdapter
from tapwire_messaging.channels.smtp import SmtpAdapter, SmtpConfig
from tapwire_messaging.channels.webhook import WebhookAdapter
from tapwire_messaging.channels.webpush import VapidKey, WebPushAdapter


@dataclass
class Providers:
    """The adapters of one process. ``get`` returns None for a channel with no provider configured."""

    email: ChannelAdapter | None = None
    push: ChannelAdapter | None = None
    sms: ChannelAdapter | None = None
    webhook: ChannelAdapter | None = None
    inapp: ChannelAdapter | None = None
    inbox: ChannelAdapter | None = None

    def get(self, channel: ChannelName) -> ChannelAdapter | None:
        adapter: ChannelAdapter | None = getattr(self, channel)
        return adapter

    async def start(self) -> None:
        for adapter in self._all():
            await adapter.start()

    async def close(self) -> None:
        for adapter in self._all():
            await adapter.close()

    def _all(self) -> list[ChannelAdapter]:
        adapters = (self.email, self.push, self.sms, self.webhook, self.inapp, self.inbox)
        # One adapter object may serve two channels (in-app and inbox share the SDK message store).
        return list({id(a): a for a in adapters if a is not None}.values())


def build_providers(settings: Settings) -> Providers:
    """Adapters for every provider the settings name. Raises ValueError naming a malformed setting."""
    email = None
    if settings.smtp_url:
        if not settings.email_from:
            raise ValueError("TAPWIRE_EMAIL_FROM is required with TAPWIRE_SMTP_URL")
        email = SmtpAdapter(
            SmtpConfig.from_url(settings.smtp_url, pool_size=settings.messaging_senders),
            sender=settings.email_from,
            provider=settings.email_provider,
        )
    fcm = _fcm(settings) if settings.fcm_url else None
    apns = _apns(settings) if settings.apns_url else None
    webpush = _webpush(settings) if settings.vapid_subject else None
    return Providers(
        email=email,
        push=PushRouter(fcm, apns, webpush) if fcm or apns or webpush else None,
        sms=TwilioSmsAdapter(settings.sms_url) if settings.sms_url else None,
        webhook=WebhookAdapter(egress=policy_from_settings(settings)),
    )


def _fcm(settings: Settings) -> FcmAdapter:
    assert settings.fcm_url is not None
    if settings.fcm_credentials_file is None:
        raise ValueError("TAPWIRE_FCM_URL needs TAPWIRE_FCM_CREDENTIALS_FILE (a service-account key)")
    credentials, project_id = FcmAccessToken.from_file(settings.fcm_credentials_file)
    return FcmAdapter(settings.fcm_url, credentials=credentials, project_id=project_id)


def _webpush(settings: Settings) -> WebPushAdapter:
    assert settings.vapid_subject is not None
    if settings.vapid_key_file is None:
        raise ValueError(
            "TAPWIRE_VAPID_SUBJECT needs TAPWIRE_VAPID_KEY_FILE (make one: tapwire web-push-key --create)"
        )
    vapid = VapidKey.from_file(settings.vapid_key_file, subject=settings.vapid_subject)
    return WebPushAdapter(vapid, egress=policy_from_settings(settings))


def _apns(settings: Settings) -> ApnsAdapter:
    assert settings.apns_url is not None
    if settings.apns_key_file is None:
        raise ValueError("TAPWIRE_APNS_URL needs TAPWIRE_APNS_KEY_FILE (the team's .p8 signing key)")
    token = ApnsProviderToken.from_file(
        settings.apns_key_file, key_id=settings.apns_key_id or "", team_id=settings.apns_team_id or ""
    )
    return ApnsAdapter(settings.apns_url, token=token)
