"""Per-process state of the client-SDK endpoints, created on first use and kept on the app."""

from __future__ import annotations

from dataclasses import dataclass

from starlette.applications import Starlette

from tapwire_core.control.sdk_messages import WaitingSdkMessages
from tapwire_core.control.tracking_opt_outs import TrackingOptOutList
from tapwire_core.http.context import AccountView, ServiceContext
from tapwire_ingest.clevertap_sdk.accounts import AccountsById, Lookup
from tapwire_ingest.clevertap_sdk.rate_limits import TokenBuckets


@dataclass
class SdkState:
    accounts: AccountsById
    per_address: TokenBuckets
    per_account: TokenBuckets
    opt_outs: TrackingOptOutList
    sdk_messages: WaitingSdkMessages
    """In-app and inbox messages waiting for users' SDKs (``clevertap_sdk.sdk_messages``)."""


def sdk_state(app: Starlette) -> SdkState:
    state: SdkState | None = getattr(app.state, "client_sdk", None)
    if state is None:
        context: ServiceContext = app.state.context
        settings = context.settings
        accounts = AccountsById(_lookup(context))
        if context.store_ is not None:
            context.store_.add_credentials_listener(accounts.invalidate)
        state = SdkState(
            accounts=accounts,
            opt_outs=TrackingOptOutList(
                context.store.engine, refresh_s=settings.privacy_suppression_refresh_s
            ),
            sdk_messages=WaitingSdkMessages(context.store.engine),
            per_address=TokenBuckets(
                rate=settings.sdk_requests_per_s_per_address, burst=settings.sdk_burst_per_address
            ),
            per_account=TokenBuckets(
                rate=settings.sdk_requests_per_s_per_account, burst=settings.sdk_burst_per_account
            ),
        )
        app.state.client_sdk = state
    return state


def _lookup(context: ServiceContext) -> Lookup:
    async def by_id(account_id: str) -> AccountView | None:
        return await context.store.get_account(account_id)

    return by_id
