"""Privacy handlers for the messaging tables in the control database (models in
``tapwire_core.control.messaging``): the outbox (delivery records), consent entries, interactions and campaigns.

A subject is matched by user key and, where a table holds addresses, by the values of its ``e:`` / ``p:`` keys.

- ``outbox``: rows keep their idempotency key shape, status and times (campaign counts stay right) but the user key
  becomes a salted pseudonym (``x:<hash>``), so does a push row's device (a hash of its token), and the address,
  profile snapshot and provider detail are cleared; a message still pending becomes ``suppressed``.
- ``message_interactions``: deleted.
- ``message_consent``: ``subscribed`` entries are deleted; opt-outs (unsubscribes) are retained on purpose, as
  the objection list is (a suppression must outlive the profile or a re-import would message the person again),
  but rewritten under a keyed hash of their subject, which sends are checked against: no plaintext address or
  user key stays. ``verify`` requires no plaintext entry and reports the kept ones with that reason.
- ``campaigns``: an explicit-identities audience loses the subject's identifiers.

A tenant-level scope deletes every row of the account.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Sequence
from typing import Any

from sqlalchemy import ColumnElement, delete, false, or_, select, update
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from tapwire_core.control.messaging import consent
from tapwire_core.control.messaging.consent import hashed_subject
from tapwire_core.control.messaging.models import CampaignRow, ConsentRow, InteractionRow, OutboxRow
from tapwire_core.control.privacy.subject_keys import IDENTIFIER_SALT, deployment_secret, key_hash
from tapwire_core.envelope import IDENTITY_KIND_PREFIXES
from tapwire_core.privacy.scope import Scope
from tapwire_privacy.stores.base import StoreHandler, Verification, subjects_union
from tapwire_privacy.stores.control_deletes import deletion_note, make_deletes_physical
from tapwire_privacy.stores.row_batches import row_batches

PSEUDONYM_PREFIX = "x:"


def _values(keys: frozenset[str], prefix: str) -> list[str]:
    return sorted({key[len(prefix) :] for key in keys if key.startswith(prefix)})


def _emails(keys: frozenset[str]) -> list[str]:
    return sorted({value.strip().lower() for value in _values(keys, "e:")})


class _ControlHandler(StoreHandler):
    table: str
    """The control table this handler erases from (named by its model)."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def settle(self) -> None:
        """The deletes and rewrites just committed leave no earlier copy of a row in the database's files."""
        await make_deletes_physical(self._engine, [self.table])

    async def _count(self, scope: Scope) -> int:
        return sum([len(batch) async for batch in self.export(scope)])

    async def count(self, scopes: Sequence[Scope]) -> dict[str, int]:
        union = subjects_union(scopes)
        if union is not None and not await self._count(union):
            return {scope.request_id: 0 for scope in scopes}
        return {scope.request_id: await self._count(scope) for scope in scopes}

    async def verify(self, scopes: Sequence[Scope]) -> dict[str, Verification]:
        counts = await self.count(scopes)
        return {
            rid: Verification(n, False, f"{self.name} rows naming the subject; {deletion_note(self._engine)}")
            for rid, n in counts.items()
        }


class OutboxHandler(_ControlHandler):
    name = "control.outbox"
    table = OutboxRow.__tablename__

    def _match(self, scope: Scope) -> ColumnElement[bool]:
        condition = OutboxRow.account_id == scope.account_id
        if scope.keys is None:
            return condition
        addresses = [*_emails(scope.keys), *_values(scope.keys, "e:"), *_values(scope.keys, "p:")]
        return condition & or_(OutboxRow.user_key.in_(sorted(scope.keys)), OutboxRow.address.in_(addresses))

    async def export(self, scope: Scope) -> AsyncGenerator[list[dict[str, Any]], None]:
        query = select(OutboxRow).where(self._match(scope)).order_by(OutboxRow.id)
        async for rows in row_batches(self._engine, query):
            yield [
                {
                    "campaign_id": r.campaign_id,
                    "variant": r.variant,
                    "user_key": r.user_key,
                    "channel": r.channel,
                    "address": r.address,
                    "platform": r.platform,
                    "status": r.status,
                    "sent_ms": r.sent_ms,
                    "provider_id": r.provider_id,
                    "detail": r.detail,
                }
                for r in rows
            ]

    async def erase(self, scopes: Sequence[Scope]) -> None:
        async with AsyncSession(self._engine) as session, session.begin():
            salt = await deployment_secret(session, IDENTIFIER_SALT)
            for scope in scopes:
                if scope.keys is None:
                    await session.execute(delete(OutboxRow).where(self._match(scope)))
                    continue
                for row in await session.scalars(select(OutboxRow).where(self._match(scope))):
                    pseudonym = PSEUDONYM_PREFIX + key_hash(salt, scope.account_id, row.user_key)[:40]
                    await session.execute(
                        update(OutboxRow)
                        .where(OutboxRow.id == row.id)
                        .values(
                            user_key=pseudonym,
                            # The per-device key part is a hash of the push token; salted like the user key.
                            device=key_hash(salt, scope.account_id, row.device)[:32] if row.device else "",
                            address="",
                            context={},
                            detail=None,
                            # A message not sent yet is never sent: its address is gone.
                            status="suppressed" if row.status == "pending" else row.status,
                        )
                    )


class InteractionsHandler(_ControlHandler):
    name = "control.message_interactions"
    table = InteractionRow.__tablename__

    def _match(self, scope: Scope) -> ColumnElement[bool]:
        campaigns = select(CampaignRow.id).where(CampaignRow.account_id == scope.account_id)
        condition = InteractionRow.campaign_id.in_(campaigns)
        if scope.keys is None:
            return condition
        return condition & InteractionRow.user_key.in_(sorted(scope.keys))

    async def export(self, scope: Scope) -> AsyncGenerator[list[dict[str, Any]], None]:
        async for rows in row_batches(self._engine, select(InteractionRow).where(self._match(scope))):
            yield [
                {
                    "campaign_id": r.campaign_id,
                    "variant": r.variant,
                    "user_key": r.user_key,
                    "kind": r.kind,
                    "ts_ms": r.ts_ms,
                }
                for r in rows
            ]

    async def erase(self, scopes: Sequence[Scope]) -> None:
        async with AsyncSession(self._engine) as session, session.begin():
            for scope in scopes:
                await session.execute(delete(InteractionRow).where(self._match(scope)))


class ConsentHandler(_ControlHandler):
    """Subscriptions are deleted; opt-outs (unsubscribes) outlive the erasure, as they must, but
    as keyed hashes of their subject (``consent.hashed_subject``), which sends are still checked against: no
    plaintext address or user key of the subject is kept."""

    name = "control.message_consent"
    table = ConsentRow.__tablename__
    reason = "an opt-out must outlive the data, or a re-import would message the person again"

    def _match(self, scope: Scope) -> ColumnElement[bool]:
        """The scope's entries with a plaintext subject (every entry of the account for a tenant scope)."""
        condition = ConsentRow.account_id == scope.account_id
        if scope.keys is None:
            return condition
        return condition & or_(
            (ConsentRow.subject_kind == "user") & ConsentRow.subject.in_(sorted(scope.keys)),
            (ConsentRow.subject_kind == "email") & ConsentRow.subject.in_(_emails(scope.keys)),
            (ConsentRow.subject_kind == "phone") & ConsentRow.subject.in_(_values(scope.keys, "p:")),
        )

    @staticmethod
    def _hashed_subjects(salt: bytes, scope: Scope) -> list[tuple[str, str]]:
        """The (kind, subject) an erasure keeps the subject's opt-outs under."""
        keys = scope.keys or frozenset()
        return [
            *(hashed_subject(salt, scope.account_id, "user", key) for key in sorted(keys)),
            *(hashed_subject(salt, scope.account_id, "email", email) for email in _emails(keys)),
            *(hashed_subject(salt, scope.account_id, "phone", phone) for phone in _values(keys, "p:")),
        ]

    def _hashed_match(self, salt: bytes, scope: Scope) -> ColumnElement[bool]:
        """The subject's entries an erasure kept, under their hashed subjects."""
        return (ConsentRow.account_id == scope.account_id) & or_(
            false(),
            *(
                (ConsentRow.subject_kind == kind) & (ConsentRow.subject == subject)
                for kind, subject in self._hashed_subjects(salt, scope)
            ),
        )

    async def _rows(self, scope: Scope) -> list[ConsentRow]:
        async with AsyncSession(self._engine) as session:
            return list(await session.scalars(select(ConsentRow).where(self._match(scope))))

    async def _kept(self, scopes: Sequence[Scope]) -> dict[str, int]:
        """Per request, the subject's opt-outs kept under hashed subjects (none for a tenant scope: those all
        go); one query per account, however many requests."""
        kept = {scope.request_id: 0 for scope in scopes}
        async with AsyncSession(self._engine) as session, session.begin():
            salt = await deployment_secret(session, IDENTIFIER_SALT)
            for account_id in {scope.account_id for scope in scopes if scope.keys is not None}:
                owners: dict[tuple[str, str], list[str]] = {}
                for scope in scopes:
                    if scope.account_id == account_id and scope.keys is not None:
                        for hashed in self._hashed_subjects(salt, scope):
                            owners.setdefault(hashed, []).append(scope.request_id)
                found = await session.execute(
                    select(ConsentRow.subject_kind, ConsentRow.subject).where(
                        ConsentRow.account_id == account_id,
                        ConsentRow.subject.in_(sorted({value for _, value in owners})),
                    )
                )
                for kind, subject in found.all():
                    for request_id in owners.get((kind, subject), ()):
                        kept[request_id] += 1
        return kept

    async def export(self, scope: Scope) -> AsyncGenerator[list[dict[str, Any]], None]:
        async for rows in row_batches(self._engine, select(ConsentRow).where(self._match(scope))):
            yield [
                {
                    "kind": r.subject_kind,
                    "subject": r.subject,
                    "channel": r.channel,
                    "state": r.state,
                    "source": r.source,
                    "updated_ms": r.updated_ms,
                }
                for r in rows
            ]
        if scope.keys is None:
            return
        async with AsyncSession(self._engine) as session, session.begin():
            salt = await deployment_secret(session, IDENTIFIER_SALT)
        query = select(ConsentRow).where(self._hashed_match(salt, scope))
        async for rows in row_batches(self._engine, query):
            yield [
                {
                    "kind": r.subject_kind.removesuffix(consent.HASHED),
                    "subject": "kept as a keyed hash after an erasure",
                    "channel": r.channel,
                    "state": r.state,
                    "source": r.source,
                    "updated_ms": r.updated_ms,
                }
                for r in rows
            ]

    async def count(self, scopes: Sequence[Scope]) -> dict[str, int]:
        """Entries an erasure acts on: every plaintext entry of the subject (subscriptions are deleted, opt-outs
        rewritten under hashed subjects); every entry of the account for a tenant scope."""
        union = subjects_union(scopes)
        if union is not None and not await self._rows(union):
            return {scope.request_id: 0 for scope in scopes}
        return {scope.request_id: len(await self._rows(scope)) for scope in scopes}

    async def erase(self, scopes: Sequence[Scope]) -> None:
        async with AsyncSession(self._engine) as session, session.begin():
            salt = await deployment_secret(session, IDENTIFIER_SALT)
            for scope in scopes:
                if scope.keys is None:
                    await session.execute(delete(ConsentRow).where(self._match(scope)))
                    continue
                for row in list(await session.scalars(select(ConsentRow).where(self._match(scope)))):
                    await session.delete(row)
                    await session.flush()
                    if row.state != "subscribed":
                        await self._keep_hashed(session, salt, row)

    @staticmethod
    async def _keep_hashed(session: AsyncSession, salt: bytes, row: ConsentRow) -> None:
        """Keep ``row``'s opt-out under its hashed subject; of two entries for one hashed subject and channel the
        later one wins, as it does between plaintext entries."""
        kind: consent.SubjectKind = row.subject_kind  # type: ignore[assignment]
        hashed_kind, hashed = hashed_subject(salt, row.account_id, kind, row.subject)
        kept = await session.get(ConsentRow, (row.account_id, hashed_kind, hashed, row.channel))
        if kept is None:
            session.add(
                ConsentRow(
                    account_id=row.account_id,
                    subject_kind=hashed_kind,
                    subject=hashed,
                    channel=row.channel,
                    state=row.state,
                    source=row.source,
                    updated_ms=row.updated_ms,
                )
            )
        elif kept.updated_ms <= row.updated_ms:
            kept.state, kept.source, kept.updated_ms = row.state, row.source, row.updated_ms
        await session.flush()

    async def verify(self, scopes: Sequence[Scope]) -> dict[str, Verification]:
        verdicts = {}
        union = subjects_union(scopes)
        held = union is None or bool(await self._rows(union))
        kept_of = await self._kept(scopes)
        for scope in scopes:
            residue = len(await self._rows(scope)) if held else 0
            kept = kept_of[scope.request_id]
            verdicts[scope.request_id] = Verification(
                residue=residue,
                pending=False,
                checked=f"no entry naming the subject in plaintext; {kept} opt-out entries retained by design "
                f"as keyed hashes: {self.reason}; {deletion_note(self._engine)}",
            )
        return verdicts


class CampaignsHandler(_ControlHandler):
    """Campaign rows hold identifiers only in an explicit-identities audience."""

    name = "control.campaigns"
    table = CampaignRow.__tablename__

    @staticmethod
    def _named(row: CampaignRow, keys: frozenset[str]) -> list[tuple[str, str]]:
        identities = row.audience.get("identities") if isinstance(row.audience, dict) else None
        if not isinstance(identities, dict):
            return []
        return [
            (kind, value)
            for kind, values in identities.items()
            if isinstance(values, list)
            for value in values
            if isinstance(value, str) and IDENTITY_KIND_PREFIXES.get(kind, "?:") + value.strip() in keys
        ]

    async def export(self, scope: Scope) -> AsyncGenerator[list[dict[str, Any]], None]:
        query = select(CampaignRow).where(CampaignRow.account_id == scope.account_id)
        async for rows in row_batches(self._engine, query):
            if scope.keys is None:
                yield [{"campaign_id": r.id, "name": r.name, "audience": r.audience} for r in rows]
                continue
            keys = scope.keys
            yield [
                {
                    "campaign_id": r.id,
                    "name": r.name,
                    "named_in_audience": [f"{k}:{v}" for k, v in named],
                }
                for r in rows
                if (named := self._named(r, keys))
            ]

    async def erase(self, scopes: Sequence[Scope]) -> None:
        async with AsyncSession(self._engine) as session, session.begin():
            for scope in scopes:
                mine = CampaignRow.account_id == scope.account_id
                if scope.keys is None:
                    campaigns = select(CampaignRow.id).where(mine)
                    await session.execute(
                        delete(InteractionRow).where(InteractionRow.campaign_id.in_(campaigns))
                    )
                    await session.execute(delete(OutboxRow).where(OutboxRow.campaign_id.in_(campaigns)))
                    await session.execute(delete(CampaignRow).where(mine))
                    continue
                for row in await session.scalars(select(CampaignRow).where(mine)):
                    named = set(self._named(row, scope.keys))
                    if not named:
                        continue
                    identities = {
                        kind: [v for v in values if (kind, v) not in named]
                        for kind, values in row.audience["identities"].items()
                    }
                    await session.execute(
                        update(CampaignRow)
                        .where(CampaignRow.id == row.id)
                        .values(audience={**row.audience, "identities": identities})
                    )
