"""The scope of a data-subject request: what one request covers in one account."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Scope:
    """What one request covers in one account: ``keys`` (subject keys) or, when None, every row of the account."""

    request_id: str
    account_id: str
    keys: frozenset[str] | None

    @property
    def tenant(self) -> bool:
        return self.keys is None
