"""Console users: invitations, passwords, roles. Every method takes the account id and never crosses accounts."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import cast

from sqlalchemy import delete, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from tapwire_core.control.console.models import ConsoleSessionRow, ConsoleUserRow
from tapwire_core.control.console.passwords import (
    check_policy,
    hash_password,
    new_token,
    token_digest,
    verify_password,
)
from tapwire_core.control.console.roles import Role
from tapwire_core.control.console.session_cache import SessionCache
from tapwire_core.control.console.types import (
    ConsoleUser,
    Invitation,
    InvitationInvalidError,
    PasswordRejectedError,
    UserExistsError,
    UserNotFoundError,
    aware,
)

Clock = Callable[[], dt.datetime]
INVITATION_LIFETIME = dt.timedelta(days=3)


def normalise_email(email: str) -> str:
    return email.strip().lower()


def to_user(row: ConsoleUserRow) -> ConsoleUser:
    return ConsoleUser(
        id=row.id,
        account_id=row.account_id,
        email=row.email,
        name=row.name,
        role=cast(Role, row.role),
        status="active" if row.password_hash is not None else "invited",
        created_at=aware(row.created_at),
        password_changed_at=None if row.password_changed_at is None else aware(row.password_changed_at),
    )


class UserStore:
    """The ``console_users`` table. Raises the errors of ``console.types``; SQLAlchemyError when unreachable."""

    def __init__(
        self, engine: Callable[[], AsyncEngine], clock: Clock, *, sessions: SessionCache | None = None
    ) -> None:
        self._engine = engine
        self._clock = clock
        # Where this process keeps sessions it resolved: a change here that ends or alters a user's sessions
        # is forgotten there at once.
        self._sessions = sessions if sessions is not None else SessionCache(clock)

    async def list(self, account_id: str) -> list[ConsoleUser]:
        async with AsyncSession(self._engine()) as session:
            rows = await session.scalars(
                select(ConsoleUserRow)
                .where(ConsoleUserRow.account_id == account_id)
                .order_by(ConsoleUserRow.id)
            )
            return [to_user(row) for row in rows]

    async def get(self, account_id: str, user_id: int) -> ConsoleUser:
        row = await self._row(account_id, user_id)
        return to_user(row)

    async def invite(self, account_id: str, *, email: str, name: str, role: Role) -> Invitation:
        """A new user without a password and the token that lets them choose one. Raises UserExistsError."""
        token = new_token("twi")
        expires = self._clock() + INVITATION_LIFETIME
        row = ConsoleUserRow(
            id=0,
            account_id=account_id,
            email=normalise_email(email),
            name=name.strip(),
            role=role,
            password_hash=None,
            invite_digest=token_digest(token),
            invite_expires_at=expires,
            created_at=self._clock(),
        )
        try:
            async with self._engine().begin() as connection:
                result = await connection.execute(
                    insert(ConsoleUserRow).values(
                        account_id=row.account_id,
                        email=row.email,
                        name=row.name,
                        role=row.role,
                        password_hash=None,
                        invite_digest=row.invite_digest,
                        invite_expires_at=expires,
                        created_at=row.created_at,
                    )
                )
                inserted = result.inserted_primary_key
                assert inserted is not None
                row.id = int(inserted[0])
        except IntegrityError as exc:
            raise UserExistsError(f"email: {row.email} already has access to this account") from exc
        return Invitation(user=to_user(row), token=token, expires_at=expires)

    async def reset(self, account_id: str, user_id: int) -> Invitation:
        """An admin's reset: the password is cleared, every session of the user closed, a new invitation issued."""
        token = new_token("twi")
        expires = self._clock() + INVITATION_LIFETIME
        async with self._engine().begin() as connection:
            changed = await connection.execute(
                update(ConsoleUserRow)
                .where(ConsoleUserRow.account_id == account_id, ConsoleUserRow.id == user_id)
                .values(password_hash=None, invite_digest=token_digest(token), invite_expires_at=expires)
            )
            if not changed.rowcount:
                raise UserNotFoundError(str(user_id))
            await connection.execute(delete(ConsoleSessionRow).where(ConsoleSessionRow.user_id == user_id))
        self._sessions.forget_user(user_id)
        return Invitation(user=await self.get(account_id, user_id), token=token, expires_at=expires)

    async def invitation(self, token: str) -> ConsoleUser:
        """The user a live invitation token belongs to. Raises InvitationInvalidError."""
        async with AsyncSession(self._engine()) as session:
            row = await session.scalar(
                select(ConsoleUserRow).where(ConsoleUserRow.invite_digest == token_digest(token))
            )
        if row is None:
            raise InvitationInvalidError("this invitation is not valid; ask an admin for a new one")
        if row.invite_expires_at is None or aware(row.invite_expires_at) <= self._clock():
            raise InvitationInvalidError("this invitation has expired; ask an admin for a new one")
        return to_user(row)

    async def accept(self, token: str, *, password: str, name: str | None = None) -> ConsoleUser:
        """Set the password of an invited user; the token is spent. Raises InvitationInvalidError,
        PasswordRejectedError."""
        user = await self.invitation(token)
        check_policy(password, email=user.email)
        encoded = await hash_password(password)
        values: dict[str, object] = {
            "password_hash": encoded,
            "invite_digest": None,
            "invite_expires_at": None,
            "password_changed_at": self._clock(),
        }
        if name is not None and name.strip():
            values["name"] = name.strip()[:200]
        async with self._engine().begin() as connection:
            changed = await connection.execute(
                update(ConsoleUserRow)
                .where(ConsoleUserRow.id == user.id, ConsoleUserRow.invite_digest == token_digest(token))
                .values(**values)
            )
        if not changed.rowcount:
            raise InvitationInvalidError("this invitation was used already")
        return await self.get(user.account_id, user.id)

    async def update(
        self,
        account_id: str,
        user_id: int,
        *,
        role: Role | None = None,
        name: str | None = None,
        email: str | None = None,
    ) -> ConsoleUser:
        """Change a user's role, name or email. A new role applies to their open sessions at once."""
        values: dict[str, object] = {}
        if role is not None:
            values["role"] = role
        if name is not None:
            values["name"] = name.strip()[:200]
        if email is not None:
            values["email"] = normalise_email(email)
        if values:
            try:
                async with self._engine().begin() as connection:
                    changed = await connection.execute(
                        update(ConsoleUserRow)
                        .where(ConsoleUserRow.account_id == account_id, ConsoleUserRow.id == user_id)
                        .values(**values)
                    )
                    if not changed.rowcount:
                        raise UserNotFoundError(str(user_id))
                    if role is not None:
                        await connection.execute(
                            update(ConsoleSessionRow)
                            .where(ConsoleSessionRow.user_id == user_id)
                            .values(role=role)
                        )
            except IntegrityError as exc:
                raise UserExistsError(
                    f"email: {values.get('email')} already has access to this account"
                ) from exc
            self._sessions.forget_user(user_id)
        return await self.get(account_id, user_id)

    async def delete(self, account_id: str, user_id: int) -> None:
        """Remove the user and their sessions. Raises UserNotFoundError."""
        async with self._engine().begin() as connection:
            await connection.execute(delete(ConsoleSessionRow).where(ConsoleSessionRow.user_id == user_id))
            removed = await connection.execute(
                delete(ConsoleUserRow).where(
                    ConsoleUserRow.account_id == account_id, ConsoleUserRow.id == user_id
                )
            )
        self._sessions.forget_user(user_id)
        if not removed.rowcount:
            raise UserNotFoundError(str(user_id))

    async def verify(self, account_id: str, *, email: str, password: str) -> ConsoleUser | None:
        """The active user with this email and password, else None. Costs one scrypt either way."""
        async with AsyncSession(self._engine()) as session:
            row = await session.scalar(
                select(ConsoleUserRow).where(
                    ConsoleUserRow.account_id == account_id,
                    ConsoleUserRow.email == normalise_email(email),
                )
            )
        if not await verify_password(password, None if row is None else row.password_hash):
            return None
        assert row is not None
        return to_user(row)

    async def change_password(self, account_id: str, user_id: int, *, current: str, new: str) -> ConsoleUser:
        """Replace the password after checking the current one; every session of the user is closed (the
        caller opens a fresh one). Raises PasswordRejectedError."""
        row = await self._row(account_id, user_id)
        if not await verify_password(current, row.password_hash):
            raise PasswordRejectedError("current_password: not your current password")
        check_policy(new, email=row.email)
        if new == current:
            raise PasswordRejectedError("new_password: choose a password you have not been using")
        encoded = await hash_password(new)
        async with self._engine().begin() as connection:
            await connection.execute(
                update(ConsoleUserRow)
                .where(ConsoleUserRow.id == user_id)
                .values(password_hash=encoded, password_changed_at=self._clock())
            )
            await connection.execute(delete(ConsoleSessionRow).where(ConsoleSessionRow.user_id == user_id))
        self._sessions.forget_user(user_id)
        return await self.get(account_id, user_id)

    async def _row(self, account_id: str, user_id: int) -> ConsoleUserRow:
        async with AsyncSession(self._engine()) as session:
            row = await session.scalar(
                select(ConsoleUserRow).where(
                    ConsoleUserRow.account_id == account_id, ConsoleUserRow.id == user_id
                )
            )
        if row is None:
            raise UserNotFoundError(str(user_id))
        return row
