"""Plain values the console domain hands to callers, and its errors."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from tapwire_core.control.console.roles import Role

UserStatus = Literal["invited", "active"]


@dataclass(frozen=True)
class ConsoleUser:
    """A console user as the API shows it: never the password hash nor the invitation token."""

    id: int
    account_id: str
    email: str
    name: str
    role: Role
    status: UserStatus
    created_at: datetime
    password_changed_at: datetime | None

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "email": self.email,
            "name": self.name,
            "role": self.role,
            "status": self.status,
            "created_at": iso(self.created_at),
            "password_changed_at": iso(self.password_changed_at),
        }


@dataclass(frozen=True)
class Invitation:
    """A one-time token that lets ``user`` choose a password; known only at the moment it is issued."""

    user: ConsoleUser
    token: str = field(repr=False)
    expires_at: datetime


@dataclass(frozen=True)
class ConsoleSession:
    """A signed-in browser. ``user`` is None for a session opened with the account's passcode."""

    id: str
    account_id: str
    role: Role
    user: ConsoleUser | None
    created_at: datetime
    expires_at: datetime

    @property
    def actor(self) -> str:
        return self.user.email if self.user is not None else "passcode"

    @property
    def user_id(self) -> int | None:
        return None if self.user is None else self.user.id


@dataclass(frozen=True)
class OpenedSession:
    """A session just opened, with its token: the only moment the token is known to the store."""

    session: ConsoleSession
    token: str = field(repr=False)


@dataclass(frozen=True)
class AuditEntry:
    id: int
    account_id: str
    at: datetime
    actor: str
    role: str
    action: str
    target: str
    outcome: str
    client: str
    detail: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "at": iso(self.at),
            "actor": self.actor,
            "role": self.role,
            "action": self.action,
            "target": self.target,
            "outcome": self.outcome,
            "client": self.client,
            "detail": self.detail,
        }


class ConsoleError(Exception):
    """Base of the console domain's errors; each maps to one HTTP status in the routes."""


class UserExistsError(ConsoleError):
    """The account already has a user with this email."""


class UserNotFoundError(ConsoleError):
    """No such user in this account."""


class InvitationInvalidError(ConsoleError):
    """The invitation token is unknown, used or expired."""


class PasswordRejectedError(ConsoleError):
    """The password breaks the policy, or the current password given to change it is wrong."""


def aware(moment: datetime) -> datetime:
    """SQLite keeps no zone; every timestamp the store writes is UTC."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def iso(moment: datetime | None) -> str | None:
    return None if moment is None else aware(moment).isoformat().replace("+00:00", "Z")
