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

    kafka_bootstrap: str | None = None
    clickhouse_url: str | None = None
    clickhouse_cluster: str | None = None
    database_url: str | None = None

    public_url: str | None = None
    log_level: str = "INFO"

    # Topics; one set per deployment.
    events_topic: str = "tapwire.events"
    dead_letter_topic: str = "tapwire.events.dlq"
    topic_partitions: int = 12

    # Gateway limits.
    max_body_bytes: int = Field(default=10 * 1024 * 1024, description="compressed request body cap")
    max_inflated_bytes: int = Field(default=20 * 1024 * 1024, description="decompressed body cap")
    upload_concurrency: int = 15
    bus_timeout_s: float = 5.0
    retry_after_s: int = 5

    # Segment-spec ingestion (/v1/*): limits on decompressed bytes, and the identity graph's merge cap.
    segment_max_batch_bytes: int = Field(default=512 * 1024, description="decompressed /v1 request cap")
    segment_max_event_bytes: int = Field(default=32 * 1024, description="one message, JSON-encoded")
    segment_max_batch_events: int = 2500
    identity_max_per_profile: int = 100

    # Loader micro-batches.
    loader_batch_rows: int = 50_000
    loader_batch_seconds: float = 0.5
    loader_max_consecutive_invalid: int = 1000
    loader_group: str = "tapwire-loader"

    # Messaging providers and delivery.
    smtp_url: str | None = Field(default=None, description="smtp://[user:pass@]host:port[?starttls=true]")
    email_from: str | None = None
    fcm_url: str | None = None
    apns_url: str | None = None
    sms_url: str | None = None
    messaging_secret: str | None = Field(default=None, description="signs unsubscribe, open and click links")
    messaging_senders: int = 16
    messaging_claim_batch: int = 200
    messaging_lease_s: float = 30.0
    messaging_poll_s: float = 0.2

    # Query service: cursor signing (set the same secret on every query instance; unset = per process),
    # cursor lifetime, and how long a count waits before answering "partial" with a req_id to poll.
    query_cursor_secret: str | None = None
    query_cursor_ttl_s: int = 3600
    query_sync_wait_s: float = 10.0

    def resolved_public_url(self) -> str:
        return self.public_url or f"http://{self.host}:{self.port}"
