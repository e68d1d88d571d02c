"""In-app and inbox messages waiting for users' CleverTap SDKs (see ``models``)."""

from tapwire_core.control.sdk_messages.index import KeyFilter, WaitingSdkMessages
from tapwire_core.control.sdk_messages.models import SdkMessageKeyRow, SdkMessageRow
from tapwire_core.control.sdk_messages.store import (
    INTERACTIONS,
    MAX_PER_ANSWER,
    SDK_CHANNELS,
    Attribution,
    PendingMessage,
    QueuedMessage,
    SdkChannel,
    attribute,
    enqueue,
    purge,
    take,
    waiting_keys_since,
    withdraw,
)

__all__ = [
    "INTERACTIONS",
    "MAX_PER_ANSWER",
    "SDK_CHANNELS",
    "Attribution",
    "KeyFilter",
    "PendingMessage",
    "QueuedMessage",
    "SdkChannel",
    "SdkMessageKeyRow",
    "SdkMessageRow",
    "WaitingSdkMessages",
    "attribute",
    "enqueue",
    "purge",
    "take",
    "waiting_keys_since",
    "withdraw",
]
