"""The account settings a customer may change, their names, types, defaults and limits.

Settings live in ``accounts.settings`` (a JSON document) under the names below, which the services read:
``cors_origins`` and ``client_ingestion`` (gateway), ``privacy_jurisdiction`` and ``privacy_webhook_url``
(privacy worker), ``frequency_caps`` and ``quiet_hours`` (messaging), ``upload_concurrency`` (gateway),
``industry_benchmarks`` (query: ``false`` keeps the account's users out of industry aggregates).
``AccountSettingsPatch`` validates a change before it is stored; every message starts with the setting's name,
so a form can show it next to its field.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, field_validator

Jurisdiction = Literal["gdpr", "ccpa"]
CapChannel = Literal["all", "email", "push", "sms", "webhook", "inapp", "inbox"]

MAX_ORIGINS = 50
_ORIGIN = re.compile(r"^https?://[A-Za-z0-9.-]+(:\d{1,5})?$")
_HHMM = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$")

DEFAULTS: Mapping[str, Any] = {
    "cors_origins": None,
    "client_ingestion": True,
    "privacy_jurisdiction": "gdpr",
    "privacy_webhook_url": None,
    "frequency_caps": {},
    "quiet_hours": None,
    "upload_concurrency": None,
    "industry_benchmarks": True,
}


class FrequencyCap(BaseModel):
    model_config = ConfigDict(extra="forbid")

    limit: int = Field(ge=1, le=1000)
    window_s: int = Field(ge=60, le=90 * 86400)


class QuietHoursDefault(BaseModel):
    """The quiet hours a new campaign starts with: ``start``-``end`` in the recipient's zone, else ``timezone``."""

    model_config = ConfigDict(extra="forbid")

    start: str
    end: str
    timezone: str = "UTC"
    drop: bool = False

    @field_validator("start", "end")
    @classmethod
    def _time(cls, value: str) -> str:
        if not _HHMM.match(value):
            raise ValueError("must be HH:MM (24-hour)")
        return value

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {value!r}") from exc
        return value


def _origin(value: str) -> str:
    trimmed = value.strip().rstrip("/")
    if trimmed != "*" and not _ORIGIN.match(trimmed):
        raise ValueError(f"{value!r} is not an origin like https://shop.example")
    return trimmed


class AccountSettingsPatch(BaseModel):
    """A change to the account's settings: only the keys given change; ``null`` restores the default."""

    model_config = ConfigDict(extra="forbid")

    cors_origins: Annotated[list[str], Field(max_length=MAX_ORIGINS)] | None = None
    client_ingestion: bool | None = None
    privacy_jurisdiction: Jurisdiction | None = None
    privacy_webhook_url: Annotated[str, Field(max_length=2000)] | None = None
    frequency_caps: dict[CapChannel, Annotated[list[FrequencyCap], Field(max_length=10)]] | None = None
    quiet_hours: QuietHoursDefault | None = None
    upload_concurrency: Annotated[int, Field(ge=1, le=1000)] | None = None
    industry_benchmarks: bool | None = None

    @field_validator("cors_origins")
    @classmethod
    def _origins(cls, value: list[str] | None) -> list[str] | None:
        return None if value is None else [_origin(v) for v in value]

    @field_validator("privacy_webhook_url")
    @classmethod
    def _webhook(cls, value: str | None) -> str | None:
        """Checked against the deployment's egress policy by the route, which knows it (``check_url``)."""
        return None if value is None or not value.strip() else value.strip()

    def changes(self) -> dict[str, Any]:
        """The keys the request named, as stored (None removes the key, restoring its default)."""
        given = self.model_dump(mode="json", exclude_unset=True)
        return {
            key: (None if value in (None, [], {}) and key != "cors_origins" else value)
            for key, value in given.items()
        }


def effective(settings: Mapping[str, Any]) -> dict[str, Any]:
    """Every known setting with the stored value or its default (``upload_concurrency`` None: the deployment's)."""
    return {key: settings.get(key, default) for key, default in DEFAULTS.items()}
