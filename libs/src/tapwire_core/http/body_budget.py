"""How much memory a process spends on request bodies at once, and how much of it one account may hold.

Every request gets a ticket (``BodyBudgetMiddleware``); the body reader charges it as bytes arrive, as they inflate
and before they are decoded (the decoded estimate: ``decoded_estimate``). A charge past the process's budget, or
past one owner's share of it, is refused with 429 and ``Retry-After``: the client retries later instead of the
process growing until it is killed. The ticket's charges are returned when the response has been sent.
Single-threaded asyncio state: charge and release never await, so no lock is needed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

from starlette.types import ASGIApp, Receive, Scope, Send

from tapwire_core.http.errors import ApiError

SCOPE_KEY: Final = "tapwire.body_ticket"

# Python objects per JSON value and per JSON byte, the largest seen over the shapes a hostile body can take
# (measured with tracemalloc on orjson output: unique keys ~240 B per value, nested empty objects ~40 B per byte).
DECODED_BYTES_PER_VALUE: Final = 240
DECODED_BYTES_PER_TEXT_BYTE: Final = 41


def decoded_estimate(text_bytes: int, values: int) -> int:
    """An upper bound of the memory ``values`` JSON values in ``text_bytes`` of text take once decoded."""
    return min(values * DECODED_BYTES_PER_VALUE, text_bytes * DECODED_BYTES_PER_TEXT_BYTE)


class BodyBudget:
    """``limit`` bytes for every body in flight in the process. One owner (an account, or a client address before
    authentication) holds at most ``owner_share`` of the shared part. A ``reserve`` (a quarter of ``limit``) is
    kept for each owner's first ``floor`` bytes: however many tenants fill the shared part with large or hostile
    bodies, the ordinary requests of a tenant that holds little still get in."""

    def __init__(
        self, limit: int, *, owner_share: float = 0.5, floor: int = 4 * 1024 * 1024, retry_after_s: int = 1
    ) -> None:
        if limit < 8 or not 0 < owner_share <= 1:
            raise ValueError("a body budget needs limit >= 8 and 0 < owner_share <= 1")
        self.limit = limit
        self.reserve = limit // 4
        self.shared = limit - self.reserve
        self.owner_limit = max(1, int(self.shared * owner_share))
        self.floor = min(floor, self.reserve)
        self._retry_after_s = retry_after_s
        self.in_flight = 0
        self.reserved = 0
        self._by_owner: dict[str, int] = {}
        self._reserved_by_owner: dict[str, int] = {}

    def ticket(self) -> BodyTicket:
        return BodyTicket(self)

    def held_by(self, owner: str) -> int:
        return self._by_owner.get(owner, 0)

    def _take(self, owner: str, nbytes: int, *, small: bool) -> bool:
        """Take ``nbytes`` for ``owner``; True when they came from the reserve. ``small``: the request has held
        no more than ``floor`` so far, so it may use the reserve."""
        held = self._by_owner.get(owner, 0)
        owner_reserved = self._reserved_by_owner.get(owner, 0)
        if small and owner_reserved + nbytes <= self.floor and self.reserved + nbytes <= self.reserve:
            self.reserved += nbytes
            self._reserved_by_owner[owner] = owner_reserved + nbytes
            from_reserve = True
        elif self.in_flight - self.reserved + nbytes <= self.shared and held + nbytes <= self.owner_limit:
            from_reserve = False
        else:
            raise ApiError(
                429, "Too many request bytes in flight; retry later", retry_after=self._retry_after_s
            )
        self.in_flight += nbytes
        self._by_owner[owner] = held + nbytes
        return from_reserve

    def _give_back(self, owner: str, nbytes: int, *, from_reserve: int) -> None:
        self.in_flight -= nbytes
        if from_reserve:
            self.reserved -= from_reserve
            left = self._reserved_by_owner[owner] - from_reserve
            if left:
                self._reserved_by_owner[owner] = left
            else:
                del self._reserved_by_owner[owner]
        remaining = self._by_owner[owner] - nbytes
        if remaining:
            self._by_owner[owner] = remaining
        else:
            del self._by_owner[owner]


@dataclass
class BodyTicket:
    """One request's share of the budget. The first charge names its owner; the rest go to the same owner."""

    budget: BodyBudget
    owner: str | None = None
    held: int = field(default=0)
    from_reserve: int = field(default=0)

    def charge(self, nbytes: int, owner: str | None = None) -> None:
        """Hold ``nbytes`` more for this request; ApiError 429 (nothing held) when the budget cannot give them.
        ``owner`` names who pays on the first charge; later charges go to the same owner."""
        if nbytes <= 0:
            return
        if self.owner is None:
            self.owner = owner or "anonymous"
        small = self.held == self.from_reserve  # this request has taken nothing from the shared part yet
        if self.budget._take(self.owner, nbytes, small=small):
            self.from_reserve += nbytes
        self.held += nbytes

    def refund(self, nbytes: int) -> None:
        """Give back bytes the request no longer holds (e.g. the compressed body once inflated); shared bytes
        first, the reserve's last."""
        nbytes = min(nbytes, self.held)
        if nbytes > 0 and self.owner is not None:
            shared = self.held - self.from_reserve
            reserve_part = max(0, nbytes - shared)
            self.budget._give_back(self.owner, nbytes, from_reserve=reserve_part)
            self.held -= nbytes
            self.from_reserve -= reserve_part

    def release(self) -> None:
        self.refund(self.held)


class BodyBudgetMiddleware:
    """Gives each HTTP request a ticket under ``scope[SCOPE_KEY]`` and releases it once the response is sent."""

    def __init__(self, app: ASGIApp, budget: BodyBudget) -> None:
        self.app = app
        self.budget = budget

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        ticket = self.budget.ticket()
        scope[SCOPE_KEY] = ticket
        try:
            await self.app(scope, receive, send)
        finally:
            ticket.release()
