"""Provider adapters: one class per provider behind :class:`ChannelAdapter`, built from settings."""

from tapwire_messaging.channels.base import (
    ChannelAdapter,
    ChannelName,
    OutboundMessage,
    SendOutcome,
    SendResult,
)
from tapwire_messaging.channels.registry import Providers, build_providers

__all__ = [
    "ChannelAdapter",
    "ChannelName",
    "OutboundMessage",
    "Providers",
    "SendOutcome",
    "SendResult",
    "build_providers",
]
