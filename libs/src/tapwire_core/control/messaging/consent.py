"""The consent (suppression) API: who may receive which channel. Messaging reads it before every send.

Writers: the messaging service (``POST /1/subscribe``, one-click unsubscribes) and the privacy worker
(objections). A change is visible to the next claim of the sender, i.e. the next message.

- :func:`set_consent` records ``unsubscribed`` / ``subscribed`` / ``opted_out`` for a user key, an email address
  or a phone number on one channel (``email``, ``sms``, ``push``, ``whatsapp``, ``webhook``) or on ``all``.
  ``unsubscribed`` stops promotional messages (campaigns); ``opted_out``, an explicit opt-out of the channel,
  stops transactional messages too, and only a later ``subscribed`` lifts it (an unsubscribe never weakens it).
- :func:`record_objection` / :func:`lift_objection`: a privacy objection blocks every marketing message to a
  user key until lifted, whatever subscription changes come in between. Objections have one store, the privacy
  worker's ``marketing_objections`` list (salted hashes; ``tapwire_core.control.marketing_objections``): these
  functions write it, and :func:`blocked` reads it, so an objection made through ``POST /privacy/v1/requests``
  holds from the next message on with nothing to keep in sync. (``objected`` consent rows written by earlier
  versions are still honoured.)
- :func:`blocked` answers, for many recipients of a promotional or a transactional message at once, which of
  them must not be sent to. An email address on the email suppression list (it hard-bounced, complained or
  soft-bounced too often: ``tapwire_core.control.email_feedback``) is refused for email, whatever the message.
  Objections and unsubscribes refuse promotional messages only (docs/messaging.md, "Transactional and
  promotional messages", says why).

Subjects: ``user`` (a user key such as ``i:ann``), ``email`` (lower-cased address), ``phone`` (E.164),
``token`` (a push token the provider reported as unregistered; never used again). A token longer than the
subject column (a web push endpoint can be) is kept as a hash of itself.

An erased person's opt-outs must outlive the erasure (or a re-import would message them again) without keeping
their address: the privacy worker rewrites them as *hashed* entries (:func:`hashed_subject`: kind ``email#``,
``phone#``, ``user#`` or ``token#`` and a keyed hash of the subject under the deployment's identifier salt), and
:func:`blocked` and :func:`dead_tokens` check every recipient against both forms.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final, Literal, cast

from sqlalchemy import and_, case, delete, or_, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from tapwire_core.control import marketing_objections as objections
from tapwire_core.control.email_feedback import SuppressionReason, suppressed_addresses
from tapwire_core.control.messaging.models import ConsentRow
from tapwire_core.control.privacy.subject_keys import IDENTIFIER_SALT, deployment_secret, key_hash

log = logging.getLogger(__name__)

SubjectKind = Literal["user", "email", "phone", "token"]
ConsentState = Literal["unsubscribed", "subscribed", "objected", "opted_out"]
OPT_OUT_STATES: tuple[ConsentState, ...] = ("unsubscribed", "objected", "opted_out")
"""States that refuse promotional messages; of them only ``opted_out`` refuses transactional ones too."""
ALL_CHANNELS = "all"
TRANSACTIONAL_SUPPRESSIONS: frozenset[SuppressionReason] = frozenset({"hard_bounce", "complaint"})
"""Email suppressions that stop transactional messages too (a soft-bounce suppression stops promotions only)."""


# Below the column's 320 characters, so a hashed form ("h:" and 64 hex digits) can never equal a kept one.
MAX_TOKEN_SUBJECT = 255


HASHED: Final = "#"
"""Suffix of a hashed entry's kind (``email#``): its subject is :func:`hashed_subject`'s hash."""

_KEY_PREFIXES: Final[dict[str, str]] = {"user": "", "email": "e:", "phone": "p:", "token": "t:"}


def normalise_subject(kind: SubjectKind, subject: str) -> str:
    if kind == "email":
        return subject.strip().lower()
    value = subject.strip()
    if kind == "token" and len(value) > MAX_TOKEN_SUBJECT:
        return "h:" + hashlib.blake2b(value.encode(), digest_size=32).hexdigest()
    return value


def hashed_subject(salt: bytes, account_id: str, kind: SubjectKind, subject: str) -> tuple[str, str]:
    """The (kind, subject) an entry for ``subject`` is kept under once its subject is erased: a keyed hash of
    the subject in subject-key form (``e:<address>``, ``p:<number>``, the user key, ``t:<token>``)."""
    key = _KEY_PREFIXES[kind] + normalise_subject(kind, subject)
    return kind + HASHED, key_hash(salt, account_id, key)


async def set_consent(
    engine: AsyncEngine,
    *,
    account_id: str,
    kind: SubjectKind,
    subject: str,
    channel: str,
    state: ConsentState,
    source: str,
    now_ms: int,
) -> None:
    """Upsert one consent entry; the latest write for (subject, channel) wins, except that an unsubscribe
    leaves an explicit opt-out (``opted_out``, which also stops transactional messages) in place."""
    values = {
        "account_id": account_id,
        "subject_kind": kind,
        "subject": normalise_subject(kind, subject),
        "channel": channel,
        "state": state,
        "source": source,
        "updated_ms": now_ms,
    }
    insert = pg_insert if engine.dialect.name == "postgresql" else sqlite_insert
    statement = insert(ConsentRow).values(**values)
    kept_state = (
        case((ConsentRow.__table__.c.state == "opted_out", "opted_out"), else_=state)
        if state == "unsubscribed"
        else state
    )
    statement = statement.on_conflict_do_update(
        index_elements=["account_id", "subject_kind", "subject", "channel"],
        set_={"state": kept_state, "source": source, "updated_ms": now_ms},
    )
    async with engine.begin() as connection:
        await connection.execute(statement)


async def record_objection(
    engine: AsyncEngine, *, account_id: str, user_key: str, source: str, now_ms: int
) -> None:
    """Block all marketing to ``user_key`` (privacy objection) from the next message on. Written to the one
    objection list; ``source`` is not kept there (the list holds only salted hashes), only logged."""
    async with AsyncSession(engine) as session, session.begin():
        added = await objections.record_objection(
            session,
            account_id=account_id,
            keys=[user_key],
            request_id=None,
            at=datetime.fromtimestamp(now_ms / 1000, UTC),
        )
    log.info("marketing objection recorded", extra={"account_id": account_id, "source": source, "new": added})


async def lift_objection(engine: AsyncEngine, *, account_id: str, user_key: str) -> None:
    async with AsyncSession(engine) as session, session.begin():
        await objections.lift_objection(session, account_id=account_id, keys=[user_key])
        await session.execute(
            delete(ConsentRow).where(
                ConsentRow.account_id == account_id,
                ConsentRow.subject_kind == "user",
                ConsentRow.subject == user_key,
                ConsentRow.channel == ALL_CHANNELS,
                ConsentRow.state == "objected",
            )
        )


@dataclass(frozen=True, slots=True)
class Recipient:
    user_key: str
    channel: str
    email: str | None = None
    phone: str | None = None


async def blocked(
    engine: AsyncEngine, *, account_id: str, recipients: Sequence[Recipient], transactional: bool = False
) -> set[int]:
    """Indexes of ``recipients`` that must not receive a message now.

    For every message: an email address on the suppression list blocks email, and an explicit opt-out
    (``opted_out``) of the recipient's channel or of ``all``, by the user or the address, blocks it until a
    later resubscribe. For promotional messages (``transactional`` false) also: an objection (on the objection
    list, under the user key or the recipient's address as an ``e:`` / ``p:`` subject key) blocks every channel,
    and otherwise the most recent entry among the user's, the address's and ``all`` entries for the recipient's
    channel decides; no entry means subscribed.
    """
    if not recipients:
        return set()
    subjects_of = [_subjects(recipient) for recipient in recipients]
    # A transaction of its own: the first look may create the deployment's identifier salt, which must stick.
    async with AsyncSession(engine) as session, session.begin():
        salt = await deployment_secret(session, IDENTIFIER_SALT)
        objected: set[str] = (
            set()
            if transactional
            else await objections.objected_keys(
                session, account_id=account_id, keys={k for r in recipients for k in _subject_keys(r)}
            )
        )
    # Every subject in plain form, and the hashed form an erasure keeps its opt-outs under (back to the plain).
    plain = {subject for subjects in subjects_of for subject in subjects}
    forms: dict[tuple[str, str], tuple[str, str]] = {subject: subject for subject in plain}
    forms.update({hashed_subject(salt, account_id, kind, value): (kind, value) for kind, value in plain})
    by_kind: dict[str, set[str]] = {}
    for kind, value in forms:
        by_kind.setdefault(kind, set()).add(value)
    conditions = [
        and_(ConsentRow.subject_kind == kind, ConsentRow.subject.in_(sorted(values)))
        for kind, values in by_kind.items()
    ]
    async with engine.connect() as connection:
        rows = (
            await connection.execute(
                select(
                    ConsentRow.subject_kind,
                    ConsentRow.subject,
                    ConsentRow.channel,
                    ConsentRow.state,
                    ConsentRow.updated_ms,
                ).where(ConsentRow.account_id == account_id, or_(*conditions))
            )
        ).all()
    bounced = await _bounced(engine, account_id, recipients, transactional=transactional)
    entries: dict[tuple[str, str], list[tuple[str, str, int]]] = {}
    for kind, subject, channel, state, updated in rows:
        entries.setdefault(forms.get((kind, subject), (kind, subject)), []).append(
            (channel, state, int(updated))
        )
    refused: set[int] = set()
    for index, (recipient, subjects) in enumerate(zip(recipients, subjects_of, strict=True)):
        if (
            (recipient.channel == "email" and recipient.email and recipient.email in bounced)
            or objected & set(_subject_keys(recipient))
            or _refused(
                recipient.channel,
                [e for s in subjects for e in entries.get(s, ())],
                transactional=transactional,
            )
        ):
            refused.add(index)
    return refused


def _subjects(recipient: Recipient) -> list[tuple[SubjectKind, str]]:
    """The consent subjects (kind, normalised value) that decide for this recipient."""
    subjects: list[tuple[SubjectKind, str]] = [("user", recipient.user_key)]
    if recipient.email:
        subjects.append(("email", normalise_subject("email", recipient.email)))
    if recipient.phone:
        subjects.append(("phone", normalise_subject("phone", recipient.phone)))
    return subjects


def _subject_keys(recipient: Recipient) -> list[str]:
    """The subject keys the privacy worker may have listed this recipient under."""
    keys = [recipient.user_key]
    if recipient.email:
        keys += [f"e:{recipient.email.strip()}", f"e:{normalise_subject('email', recipient.email)}"]
    if recipient.phone:
        keys.append(f"p:{recipient.phone.strip()}")
    return keys


async def _bounced(
    engine: AsyncEngine, account_id: str, recipients: Sequence[Recipient], *, transactional: bool
) -> set[str]:
    """The email addresses among the email recipients on the suppression list (for a transactional message,
    those suppressed by a hard bounce or a complaint: a run of soft bounces says the mailbox was full, not that
    a receipt must not be tried)."""
    addresses = {r.email for r in recipients if r.channel == "email" and r.email}
    if not addresses:
        return set()
    async with AsyncSession(engine) as session, session.begin():
        found = await suppressed_addresses(session, account_id=account_id, addresses=addresses)
    return {a for a, reason in found.items() if not transactional or reason in TRANSACTIONAL_SUPPRESSIONS}


def _refused(channel: str, entries: Sequence[tuple[str, str, int]], *, transactional: bool) -> bool:
    relevant = [
        (updated, state)
        for entry_channel, state, updated in entries
        if entry_channel in (channel, ALL_CHANNELS)
    ]
    opted_out = max((updated for updated, state in relevant if state == "opted_out"), default=None)
    resubscribed = max((updated for updated, state in relevant if state == "subscribed"), default=None)
    if opted_out is not None and (resubscribed is None or opted_out >= resubscribed):
        return True
    if transactional:
        return False
    if any(state == "objected" for _, state, _ in entries):
        return True
    latest: tuple[int, str] | None = None
    for updated, state in relevant:
        if latest is None or updated >= latest[0]:
            latest = (updated, state)
    return latest is not None and latest[1] == "unsubscribed"


async def dead_tokens(engine: AsyncEngine, *, account_id: str, tokens: Sequence[str]) -> set[str]:
    """The push tokens among ``tokens`` that a provider reported as unregistered."""
    if not tokens:
        return set()
    by_subject: dict[str, set[str]] = {}
    for token in tokens:
        by_subject.setdefault(normalise_subject("token", token), set()).add(token)
    async with AsyncSession(engine) as session, session.begin():
        salt = await deployment_secret(session, IDENTIFIER_SALT)
    hashed = {hashed_subject(salt, account_id, "token", token)[1]: token for token in tokens}
    async with engine.connect() as connection:
        rows = await connection.execute(
            select(ConsentRow.subject_kind, ConsentRow.subject).where(
                ConsentRow.account_id == account_id,
                or_(
                    and_(ConsentRow.subject_kind == "token", ConsentRow.subject.in_(list(by_subject))),
                    and_(ConsentRow.subject_kind == "token" + HASHED, ConsentRow.subject.in_(list(hashed))),
                ),
            )
        )
        found: set[str] = set()
        for kind, subject in rows.all():
            found |= by_subject.get(str(subject), set()) if kind == "token" else {hashed[subject]}
        return found


@dataclass(frozen=True, slots=True)
class ConsentChange:
    account_id: str
    kind: str
    subject: str
    channel: str
    state: str
    updated_ms: int


async def opt_outs_since(engine: AsyncEngine, *, since_ms: int) -> list[ConsentChange]:
    """Unsubscribes, objections and opt-outs written at or after ``since_ms`` (senders poll this to catch them
    for messages they already claimed)."""
    async with engine.connect() as connection:
        rows = await connection.execute(
            select(
                ConsentRow.account_id,
                ConsentRow.subject_kind,
                ConsentRow.subject,
                ConsentRow.channel,
                ConsentRow.state,
                ConsentRow.updated_ms,
            ).where(ConsentRow.updated_ms >= since_ms, ConsentRow.state.in_(OPT_OUT_STATES))
        )
        return [ConsentChange(*row) for row in rows.all()]


@dataclass(frozen=True)
class ConsentEntry:
    kind: SubjectKind
    subject: str
    channel: str
    state: ConsentState
    source: str
    updated_ms: int


async def entries_for(
    engine: AsyncEngine, *, account_id: str, subjects: Sequence[tuple[SubjectKind, str]]
) -> list[ConsentEntry]:
    """Every consent entry recorded for these subjects (a person's user key, email, phone), newest first."""
    wanted = [(kind, normalise_subject(kind, subject)) for kind, subject in subjects if subject.strip()]
    if not wanted:
        return []
    async with AsyncSession(engine) as session:
        rows = await session.scalars(
            select(ConsentRow)
            .where(
                ConsentRow.account_id == account_id,
                or_(*(and_(ConsentRow.subject_kind == k, ConsentRow.subject == s) for k, s in wanted)),
            )
            .order_by(ConsentRow.updated_ms.desc())
        )
        return [
            ConsentEntry(
                cast(SubjectKind, r.subject_kind),
                r.subject,
                r.channel,
                cast(ConsentState, r.state),
                r.source,
                r.updated_ms,
            )
            for r in rows
        ]
