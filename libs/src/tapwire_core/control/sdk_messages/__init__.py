"""In-app and inbox messages waiting for users' CleverTap SDKs (see ``models``)."""

from tapwire_core.control.sdk_messages.index import WaitingSdkMessages
from tapwire_core.control.sdk_messages.models import SdkMessageRow
from tapwire_core.control.sdk_messages.store import (
    INTERACTIONS,
    SDK_CHANNELS,
    Attribution,
    Change,
    PendingMessage,
    QueuedMessage,
    SdkChannel,
    attribute,
    changes_since,
    enqueue,
    purge,
    take,
    withdraw,
)

__all__ = [
    "INTERACTIONS",
    "SDK_CHANNELS",
    "Attribution",
    "Change",
    "PendingMessage",
    "QueuedMessage",
    "SdkChannel",
    "SdkMessageRow",
    "WaitingSdkMessages",
    "attribute",
    "changes_since",
    "enqueue",
    "purge",
    "take",
    "withdraw",
]
