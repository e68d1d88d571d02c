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
    """``limit`` bytes for every body in flight in the process; one owner (an account, or a client address before
    authentication) holds at most ``owner_share`` of it, so one tenant's large or hostile bodies leave room for the
    others."""

    def __init__(self, limit: int, *, owner_share: float = 0.5, retry_after_s: int = 1) -> None:
        if limit < 1 or not 0 < owner_share <= 1:
            raise ValueError("a body budget needs limit >= 1 and 0 < owner_share <= 1")
        self.limit = limit
        self.owner_limit = max(1, int(limit * owner_share))
        self._retry_after_s = retry_after_s
        self.in_flight = 0
        self._by_owner: dict[str, int] = {}

    def ticket(self) -> BodyTicket:
        return BodyTicket(self)

    def held_by(self, owner: str) -> int:
        return self._by_owner.get(owner, 0)

    def _take(self, owner: str, nbytes: int) -> None:
        held = self._by_owner.get(owner, 0)
        if self.in_flight + nbytes > self.limit or held + nbytes > self.owner_limit:
            raise ApiError(
                429, "Too many request bytes in flight; retry later", retry_after=self._retry_after_s
            )
        self.in_flight += nbytes
        self._by_owner[owner] = held + nbytes

    def _give_back(self, owner: str, nbytes: int) -> None:
        self.in_flight -= nbytes
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

    def charge(self, nbytes: int, owner: str | None = None) -> None:
        """Hold ``nbytes`` more for this request; ApiError 429 (nothing held) when the budget cannot give them.
        ``owner`` names who pays on the first charge; later charges go to the same owner."""
        if nbytes <= 0:
            return
        if self.owner is None:
            self.owner = owner or "anonymous"
        self.budget._take(self.owner, nbytes)
        self.held += nbytes

    def refund(self, nbytes: int) -> None:
        """Give back bytes the request no longer holds (e.g. the compressed body once inflated)."""
        nbytes = min(nbytes, self.held)
        if nbytes > 0 and self.owner is not None:
            self.budget._give_back(self.owner, nbytes)
            self.held -= nbytes

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
