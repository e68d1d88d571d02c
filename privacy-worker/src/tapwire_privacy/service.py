"""What the privacy routes call: submitting requests with their deadlines, objections taking effect at once."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast

from tapwire_core.clock import Clock
from tapwire_core.http.context import AccountView
from tapwire_core.settings import Settings
from tapwire_privacy import metrics
from tapwire_privacy.deadlines import JURISDICTIONS, Jurisdiction
from tapwire_privacy.offboarding import OFFBOARDING, REVOKE, is_offboarding
from tapwire_privacy.rate_limit import SlidingWindowLimit
from tapwire_privacy.records import OPEN_STATUSES, Channel, RequestType, RequestView, ScopeKind, Status, iso
from tapwire_privacy.repository import PrivacyRepository

JURISDICTION_SETTING = "privacy_jurisdiction"


def jurisdiction_of(account: AccountView) -> Jurisdiction:
    """The account's regime (setting ``privacy_jurisdiction``); GDPR unless set to a known other."""
    value = account.settings.get(JURISDICTION_SETTING, "gdpr")
    return cast(Jurisdiction, value) if value in JURISDICTIONS else "gdpr"


@dataclass
class PrivacyService:
    """The privacy domain's entry point for HTTP handlers (held on ``app.state.privacy``)."""

    repository: PrivacyRepository
    settings: Settings
    clock: Clock
    intake_limit: SlidingWindowLimit

    async def submit(
        self,
        *,
        account: AccountView,
        type: RequestType,
        scope: ScopeKind,
        channel: Channel,
        keys: Sequence[str],
        payload: dict[str, Any] | None = None,
        status: Status = "pending",
    ) -> RequestView:
        """Record a request. An objection the customer submits is listed at once for the named identifiers
        (so marketing stops before the worker has even looked), and extended to linked ones by the worker."""
        view = await self.repository.requests.create(
            account_id=account.id,
            type=type,
            scope=scope,
            channel=channel,
            jurisdiction=jurisdiction_of(account),
            keys=keys,
            payload=payload,
            status=status,
        )
        metrics.REQUESTS.labels(type, channel).inc()
        if type == "objection" and status == "pending" and keys:
            await self.repository.objections.add(account_id=account.id, request_id=view.id, keys=keys)
        return view

    async def start_offboarding(self, *, account: AccountView, channel: Channel = "api") -> RequestView:
        """Start deleting the whole account (an offboarding: access revoked, everything exported, then deleted in
        every store), or return the one already under way: asking twice starts one job."""
        for view in await self.repository.requests.of_account(account_id=account.id):
            if is_offboarding(view) and view.status in OPEN_STATUSES:
                return view
        view = await self.repository.requests.create(
            account_id=account.id,
            type="erasure",
            scope="tenant",
            channel=channel,
            jurisdiction=jurisdiction_of(account),
            keys=[],
            progress={"phase": REVOKE, OFFBOARDING: {"started_at": iso(self.clock())}},
        )
        metrics.REQUESTS.labels("offboarding", channel).inc()
        return view

    async def submit_erasures(
        self, *, account: AccountView, channel: Channel, subjects: Sequence[Sequence[str]]
    ) -> list[RequestView]:
        """Record one subject erasure per entry of ``subjects`` together (one transaction), so they fall due at
        once and the worker serves them with one mutation per table."""
        views = await self.repository.requests.create_many(
            account_id=account.id,
            type="erasure",
            scope="subject",
            channel=channel,
            jurisdiction=jurisdiction_of(account),
            subjects=subjects,
        )
        metrics.REQUESTS.labels("erasure", channel).inc(len(views))
        return views
