"""Process configuration, read from ``TAPWIRE_*`` environment variables."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

Mode = Literal["embedded", "distributed"]


class Settings(BaseSettings):
    """Every knob an operator can turn. Names and defaults follow the published interface."""

    model_config = SettingsConfigDict(env_prefix="TAPWIRE_", extra="ignore")

    host: str = "127.0.0.1"
    port: int = 8080
    data_dir: Path = Path("./.tapwire")
    accounts: str | None = None
    region: str = "eu1"
    credential_secret: str | None = Field(
        default=None,
        description="keys the lookup digests of passcodes and write keys; comma-separated, newest first "
        "(embedded: generated into the data directory)",
    )

    kafka_bootstrap: str | None = None
    clickhouse_url: str | None = None
    clickhouse_cluster: str | None = None
    database_url: str | None = None

    public_url: str | None = None
    trusted_proxies: str | None = Field(
        default=None,
        description="comma-separated CIDRs whose Forwarded / X-Forwarded-For headers name the client",
    )
    log_level: str = "INFO"
    http_keep_alive_s: float = Field(
        default=75.0,
        description="idle keep-alive connections are closed after this; keep it above the ingress's own "
        "upstream keep-alive timeout (ingress-nginx: 60 s), or a request it sends on a connection being "
        "closed gets a 502",
    )
    # Customer-supplied URLs (webhooks, privacy notices) reach public addresses only; these CIDRs and host
    # names are reachable too (internal receivers). See tapwire_core.egress.
    egress_allow: str | None = None

    # Topics; one set per deployment.
    events_topic: str = "tapwire.events"
    dead_letter_topic: str = "tapwire.events.dlq"
    topic_partitions: int = 12
    # What the Kafka topics keep (their retention.ms and segment.ms in the manifests, which tests hold equal): the
    # privacy worker reports an erasure complete once the last copy of the subject's records is past them.
    events_topic_retention_hours: float = Field(
        default=168.0, gt=0, description="the events topic's retention.ms on Kafka, in hours"
    )
    dead_letter_topic_retention_hours: float = Field(
        default=336.0, gt=0, description="the dead-letter topic's retention.ms on Kafka, in hours"
    )
    topic_segment_hours: float = Field(
        default=24.0,
        gt=0,
        description="the topics' segment.ms on Kafka, in hours: a record leaves with its segment, up to this much "
        "after its retention",
    )
    embedded_log_retention_hours: float = Field(
        default=168.0,
        gt=0,
        description="embedded mode: records older than this leave the log (every topic, dead letters included), "
        "whether or not they were consumed",
    )

    # Gateway limits.
    max_body_bytes: int = Field(default=10 * 1024 * 1024, description="compressed request body cap")
    max_inflated_bytes: int = Field(default=20 * 1024 * 1024, description="decompressed body cap")
    upload_concurrency: int = 15
    body_memory_bytes: int = Field(
        default=160 * 1024 * 1024,
        ge=1024 * 1024,
        description="request bodies a process holds at once (read, inflated, decoded); 429 past it",
    )
    bus_timeout_s: float = 5.0
    retry_after_s: int = 5

    # Segment-spec ingestion (/v1/*): limits on decompressed bytes, and the identity graph's merge cap.
    segment_max_batch_bytes: int = Field(default=512 * 1024, description="decompressed /v1 request cap")
    segment_max_event_bytes: int = Field(default=32 * 1024, description="one message, JSON-encoded")
    segment_max_batch_events: int = 2500
    identity_max_per_profile: int = 100

    # CleverTap's client SDKs (Web SDK GET /a, mobile SDKs POST /a1): caps, and rate limits per client address
    # and per account (per gateway process; an account's ``client_sdk_requests_per_s`` setting overrides).
    # Below the HTTP parser's own limit on a request line (about 64 KiB, answered with a plain-text 400), so
    # that a long Web SDK URL gets the JSON 413.
    sdk_max_query_bytes: int = Field(default=48 * 1024, description="Web SDK query string cap")
    sdk_max_payload_chars: int = Field(default=256 * 1024, description="decompressed Web SDK payload cap")
    sdk_max_body_bytes: int = Field(default=1024 * 1024, description="mobile SDK request body cap")
    sdk_requests_per_s_per_address: float = 20.0
    sdk_burst_per_address: float = 200.0
    sdk_requests_per_s_per_account: float = 10_000.0
    sdk_burst_per_account: float = 20_000.0

    # Loader micro-batches. 100,000 rows: 11 % more rows/s and 15 % less CPU than 50,000 side by side (fewer
    # inserts and profile rows per record); the loader holds two batches at a time (one being written).
    loader_batch_rows: int = 100_000
    loader_batch_seconds: float = 0.5
    loader_max_consecutive_invalid: int = 1000
    loader_group: str = "tapwire-loader"

    # Messaging providers and delivery.
    smtp_url: str | None = Field(default=None, description="smtp://[user:pass@]host:port[?starttls=true]")
    email_from: str | None = None
    fcm_url: str | None = None
    fcm_credentials_file: Path | None = Field(
        default=None, description="Google service-account key (JSON) FCM access tokens are minted from"
    )
    apns_url: str | None = None
    apns_key_file: Path | None = Field(default=None, description="the team's APNs signing key (.p8)")
    apns_key_id: str | None = None
    apns_team_id: str | None = None
    sms_url: str | None = None
    vapid_key_file: Path | None = Field(
        default=None,
        description="web push: the VAPID signing key (PEM, P-256); `tapwire web-push-key` makes one",
    )
    vapid_subject: str | None = Field(
        default=None, description="web push on: the contact push services may use, mailto: or https:"
    )
    messaging_secret: str | None = Field(default=None, description="signs unsubscribe, open and click links")
    messaging_link_ttl_days: float = Field(
        default=90.0, gt=0, description="open and click links stop working this long after the message"
    )
    messaging_senders: int = 16
    messaging_claim_batch: int = 200
    messaging_lease_s: float = 30.0
    messaging_poll_s: float = 0.2
    messaging_send_window: int | None = Field(
        default=None,
        ge=1,
        description="messages handed to providers whose outcome is not yet recorded (default: 4 x senders)",
    )
    # Behaviour-triggered campaigns: the event stream's consumer group, how stale its list of live triggers may
    # get, and how long an abandonment check waits past its window for the evaluator to read late events.
    trigger_group: str = "tapwire-triggers"
    trigger_refresh_s: float = Field(default=0.5, gt=0)
    trigger_grace_s: float = Field(default=2.0, ge=0)

    # Email feedback: bounces and complaints (see docs/messaging.md). The VERP return path and the bounce
    # mailbox, the HTTP intake of raw reports, each provider's webhook credentials, the soft-bounce rule.
    bounce_address: str | None = Field(
        default=None, description="envelope sender base, e.g. bounces@bounce.example: bounces+<token>@…"
    )
    bounce_smtp_port: int | None = Field(
        default=None, ge=1, le=65535, description="the bounce mailbox's SMTP listener (unset: none)"
    )
    bounce_smtp_host: str | None = Field(default=None, description="its address (default: TAPWIRE_HOST)")
    bounce_intake_token: str | None = Field(
        default=None, description="Bearer token of POST /messaging/v1/email-feedback/mime (unset: off)"
    )
    email_provider: Literal["smtp", "ses", "sendgrid", "postmark", "mailgun"] = Field(
        default="smtp",
        description="the service behind TAPWIRE_SMTP_URL: which metadata header names messages",
    )
    ses_topic_arns: str | None = Field(default=None, description="SNS topics whose SES notifications count")
    sendgrid_webhook_public_key: str | None = None
    postmark_webhook_secret: str | None = None
    mailgun_signing_key: str | None = None
    email_soft_bounce_limit: int = Field(default=5, ge=1, description="soft bounces that suppress an address")
    email_soft_bounce_window_days: float = Field(default=30.0, gt=0, description="…counted over this window")

    # Query service: cursor signing (set the same secret on every query instance; unset = per process),
    # cursor lifetime, and how long a count waits before answering "partial" with a req_id to poll.
    query_cursor_secret: str | None = None
    query_cursor_ttl_s: int = 3600
    query_sync_wait_s: float = 10.0
    # What one statement of the query service may cost in ClickHouse (or chDB); past a limit the request
    # gets a 422 naming it. Also read-only (readonly=2) whatever the account it connects as may do.
    query_max_execution_s: int = Field(default=60, ge=1, description="wall time of one statement")
    query_max_memory_bytes: int = Field(default=4 * 1024**3, ge=1, description="memory of one statement")
    query_max_rows_to_read: int = Field(default=1_000_000_000, ge=1, description="rows read by one statement")
    # Anonymised aggregates (shared beyond the customer): the minimum group size, the accounts an industry figure
    # needs, how long a released aggregate is remembered against differencing, and how many may be released in
    # that window (every later one is compared with each of them).
    aggregate_min_users: int = Field(
        default=10, ge=2, description="k: distinct users every released figure of an aggregate needs"
    )
    aggregate_min_accounts: int = Field(
        default=5, ge=2, description="accounts every released figure of an industry aggregate needs"
    )
    aggregate_window_days: int = Field(
        default=90, ge=1, description="how long a released aggregate is compared with later ones"
    )
    aggregate_max_releases: int = Field(
        default=100,
        ge=1,
        le=1000,
        description="aggregates released per account (or industry-wide) per window",
    )
    operator_accounts: str | None = Field(
        default=None,
        description="comma-separated account ids whose passcode is an operator credential (industry aggregates)",
    )

    # Privacy worker.
    privacy_poll_s: float = Field(default=1.0, description="how often the privacy worker looks for due work")
    privacy_batch_size: int = Field(
        default=1000, description="erasure requests served by one warehouse mutation"
    )
    privacy_sweep_delay_s: float = Field(
        default=15.0,
        description="wait between erasure and the second sweep (longer than the suppression reload)",
    )
    privacy_suppression_refresh_s: float = Field(
        default=75.0, description="how often the gateway and loader reload the suppression list"
    )
    privacy_suppression_days: int = Field(
        default=30,
        description="how long an erased subject stays suppressed; at least the raw topic's retention",
    )
    privacy_export_retention_days: float = Field(
        default=7.0, description="export archives are erased after this"
    )
    privacy_export_dir: Path | None = Field(
        default=None, description="default: $TAPWIRE_DATA_DIR/privacy-exports"
    )
    privacy_record_retention_days: int = Field(
        default=730, description="request records and audit trail: 24 months"
    )
    privacy_max_attempts: int = Field(
        default=30,
        ge=1,
        description="failed passes (a store or step erroring) after which a request stops retrying (status failed)",
    )
    privacy_max_abandoned_passes: int = Field(
        default=3,
        ge=1,
        description="passes in a row that never ended (the worker died, e.g. killed for memory) after which a "
        "request stops being retried (status failed), so it cannot take down worker after worker",
    )
    privacy_intake_per_minute: int = Field(
        default=10,
        description="direct end-user requests accepted per minute per account and per client address",
    )

    # Console: sessions, cookie signing, and where its pages find the other services in distributed mode (in
    # embedded mode every API is in the same process and these URLs are not used).
    console_secret: str | None = Field(
        default=None, description="signs console cookies; default: generated once under TAPWIRE_DATA_DIR"
    )
    console_idle_minutes: int = Field(default=30, ge=1, description="a console session ends after this idle")
    console_session_hours: int = Field(
        default=12, ge=1, description="and at the latest this long after sign-in"
    )
    console_query_url: str | None = None
    console_messaging_url: str | None = None
    console_privacy_url: str | None = None
    console_loader_url: str | None = Field(
        default=None, description="the loader's /metrics, for ingestion health"
    )

    def resolved_export_dir(self) -> Path:
        return self.privacy_export_dir or self.data_dir / "privacy-exports"

    def resolved_send_window(self) -> int:
        """The most messages a messaging process has handed to providers without having recorded their outcome:
        also the most that a crash can make a provider receive a second time (under the same idempotency key)."""
        return self.messaging_send_window or 4 * max(1, self.messaging_senders)

    def resolved_public_url(self) -> str:
        return self.public_url or f"http://{self.host}:{self.port}"
