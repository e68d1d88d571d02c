"""Handing in-app and inbox messages to the user's SDK on its next request, and attributing what it reports.

**Handing out.** ``waiting_for`` runs after a request's records are stored: the process's filter of waiting
messages (``tapwire_core.control.sdk_messages.WaitingSdkMessages``, a Bloom filter) says with a hash whether a
message may wait for the request's device or the person it logs in; only then is the database asked. The
messages are taken in one statement (``take``: a message goes to one request, whichever gateway serves it) and
``Notification Delivered`` is published for each before the answer carries them. A retry of that same request
(its answer lost, so the SDK sends it again) gets them again from this process, and no other request does. A
failure of the message store never fails the request: its records are stored, and the messages wait.

**Attribution.** The SDKs raise ``Notification Viewed`` and ``Notification Clicked`` with the message's
``wzrk_id`` (``<campaign>_<message>``). ``attributed`` gives such an event the ``campaign_id``, ``variant`` and
``channel`` of the message it names, as messaging's own events carry them (so segments and reports treat them
alike), and records the user's first view or click for the campaign's figures. Events naming no message of the
account are stored as sent.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable, Sequence

import msgspec
from sqlalchemy.exc import SQLAlchemyError

from tapwire_core.control.sdk_messages import INTERACTIONS, MAX_PER_ANSWER, PendingMessage, attribute, take
from tapwire_core.envelope import Envelope
from tapwire_core.http.context import ServiceContext
from tapwire_core.message_events import message_event
from tapwire_ingest.clevertap_sdk.state import SdkState
from tapwire_ingest.http.upload import publish

log = logging.getLogger(__name__)

DELIVERED = "Notification Delivered"


async def waiting_for(
    context: ServiceContext,
    state: SdkState,
    *,
    account_id: str,
    keys: Sequence[str],
    request: Callable[[], str],
) -> list[PendingMessage]:
    """The messages to hand to this request: waiting for any of ``keys`` (the device key first), or taken by
    this same request before. ``request`` names the request (called only when something may be waiting).
    Raises ApiError 503 when the delivery events cannot be made durable (the SDK retries the request)."""
    index = state.sdk_messages
    if index.stale():
        await index.fresh()
    may_wait = index.may_wait(account_id, keys)
    retried = index.recent_request(account_id, keys[0])
    if not may_wait and retried is None:
        return []
    request_id = request()
    if not may_wait and retried != request_id:
        return []
    now_ms = time.time_ns() // 1_000_000
    try:
        taken = await take(
            context.store.engine, account_id=account_id, keys=keys, request=request_id, now_ms=now_ms
        )
    except (SQLAlchemyError, OSError) as exc:
        log.warning("SDK messages not handed out: the store is unavailable", extra={"error": str(exc)})
        return []
    # A full answer may leave more waiting: the keys stay worth asking about on the next request.
    if len(taken) < MAX_PER_ANSWER:
        index.checked(account_id, keys, request_id, took=bool(taken))
    else:
        index.remember_request(account_id, keys[0], request_id)
    if taken:
        await publish(context, [_delivered(account_id, m, now_ms) for m in taken])
    return taken


def request_digest(*parts: object) -> str:
    """A request's name for ``take``: the same for a retry of one request (same parts), distinct otherwise."""
    digest = hashlib.blake2b(digest_size=16)
    for part in parts:
        digest.update(str(part).encode("utf-8", "surrogatepass"))
        digest.update(b"\x00")
    return digest.hexdigest()


async def attributed(context: ServiceContext, account_id: str, envelopes: list[Envelope]) -> list[Envelope]:
    """``envelopes`` with the SDK's viewed and clicked events of tapwire's messages attributed (see the
    module). Costs one name check per record when there are none."""
    for envelope in envelopes:
        if envelope.name in INTERACTIONS:
            break
    else:
        return envelopes
    return [await _attributed(context, account_id, envelope) for envelope in envelopes]


async def _attributed(context: ServiceContext, account_id: str, envelope: Envelope) -> Envelope:
    wzrk_id = envelope.properties.get("wzrk_id")
    interaction = INTERACTIONS.get(envelope.name)
    if envelope.kind != "event" or interaction is None or type(wzrk_id) is not str:
        return envelope
    try:
        found = await attribute(
            context.store.engine,
            account_id=account_id,
            wzrk_id=wzrk_id,
            interaction=interaction,
            ts_ms=envelope.received_ts,
        )
    except (SQLAlchemyError, OSError) as exc:
        log.warning("SDK notification event not attributed", extra={"error": str(exc)})
        return envelope
    if found is None:
        return envelope
    properties = {
        **envelope.properties,
        "campaign_id": found.campaign_id,
        "variant": found.variant,
        "channel": found.channel,
    }
    return msgspec.structs.replace(envelope, properties=properties)


def _delivered(account_id: str, message: PendingMessage, now_ms: int) -> Envelope:
    return message_event(
        account_id=account_id,
        user_key=message.user_key,
        name=DELIVERED,
        campaign_id=message.campaign_id,
        variant=message.variant,
        channel=message.channel,
        ts_ms=now_ms,
        extra={"wzrk_id": message.wzrk_id},
    )
