"""Telling the data recipients of a subject's data (GDPR Art. 19) about an erasure or rectification.

Recipients of the subject's data are told in each sweep before any store is erased, so what names their records
(e.g. the SMS provider's message ids in the outbox) is still there; a recipient that fails holds the whole erase
step back and is retried like a store.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from tapwire_core.privacy.data_recipients import DataRecipient, Forwarded, ForwardImpossible
from tapwire_core.privacy.scope import Scope
from tapwire_privacy.worker.progress import RequestWork

log = logging.getLogger(__name__)


class Forwarding:
    def __init__(self, recipients: Sequence[DataRecipient]) -> None:
        self._recipients = recipients

    async def forward(self, work: RequestWork, action: Forwarded, fields: Mapping[str, Any] | None) -> None:
        """Tell every recipient that received something about the subject, once per sweep each.

        ``progress.recipients[<name>]`` records the outcome with the recipient's counts (summed over sweeps) and
        the sweep it was settled in: ``notified``, ``not notified`` (with the reason) or ``failed`` (with the error
        class). A failed forward fails the step like a store: the request backs off and, for an erasure, no store
        is erased before every recipient is settled, so what the recipient needs to be told (e.g. the SMS
        provider's message ids) is still there."""
        done: dict[str, Any] = work.progress.setdefault("recipients", {})
        sweep = int(work.progress.get("sweep", 0))
        scope = work.scope()
        for recipient in self._recipients:
            earlier = done.get(recipient.name)
            # A plain string is an outcome recorded before counts were kept.
            if isinstance(earlier, str):
                earlier = {"outcome": earlier, "sweep": 0}
            if (
                earlier is not None
                and earlier.get("outcome") != "failed"
                and earlier.get("sweep", 0) >= sweep
            ):
                continue
            try:
                if not await recipient.received(scope):
                    continue
                counts = dict(await recipient.forward(action, scope, fields) or {})
            except ForwardImpossible as exc:
                done[recipient.name] = {"outcome": "not notified", "reason": exc.reason, "sweep": sweep}
                work.actions.append(
                    ("recipient_not_notified", recipient.name, {"action": action, "reason": exc.reason})
                )
                continue
            except Exception as exc:
                log.warning(
                    "privacy forward to a recipient failed; will retry",
                    extra={"recipient": recipient.name, "request": work.id, "error": type(exc).__name__},
                )
                # An outcome settled in an earlier sweep stays; the error and attempts sit next to it.
                state = done[recipient.name] = dict(earlier or {"outcome": "failed"})
                work.fail(recipient.name, type(exc).__name__, state=state)
                return
            before = earlier if earlier is not None and earlier.get("outcome") == "notified" else {}
            total = {name: value + int(before.get(name, 0)) for name, value in counts.items()}
            done[recipient.name] = {"outcome": "notified", **total, "sweep": sweep}
            work.actions.append(("recipient_notified", recipient.name, {"action": action, **counts}))

    async def received(self, scope: Scope) -> list[dict[str, Any]]:
        """Every recipient that received something about ``scope``, with what (for an export's manifest)."""
        listed = []
        for recipient in self._recipients:
            received = await recipient.received(scope)
            if received:
                listed.append({"recipient": recipient.name, "received": received})
        return listed
