"""Which cells of an aggregate may be released: the minimum group size, applied to distinct users.

Pure functions over figures the warehouse computed (``statements``), so the rule is tested on its own.

The rule. A cell (the total, a group, "other") is released only when it holds at least ``k`` distinct users and,
for an industry aggregate, users of at least ``min_accounts`` accounts. Groups below that are suppressed and
their users pooled into "other". When "other" would hold some users but fewer than ``k`` (or too few accounts),
it is not simply dropped: the total minus the released groups would then give its size away (and with one
suppressed group, that group's size). So the smallest released groups are suppressed as well, one at a time,
until "other" is empty or releasable; in the end "other" may be every user (then it equals the total). When the
total itself fails the rule, nothing is released. The answer says how many groups were suppressed, never their
sizes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Candidate:
    """A group that passes the rule on its own: its label, distinct users and contributing accounts."""

    label: str
    users: int
    accounts: int = 1


@dataclass(frozen=True)
class Threshold:
    """``k`` distinct users and ``min_accounts`` accounts (1 for one account's aggregate)."""

    k: int
    min_accounts: int = 1

    def passes(self, users: int, accounts: int) -> bool:
        return users >= self.k and accounts >= self.min_accounts


@dataclass(frozen=True)
class Decision:
    """What is released: the total (None: nothing at all), the groups (largest first), "other" (None: no
    users outside the released groups), and how many groups were suppressed."""

    total: int | None
    groups: tuple[Candidate, ...]
    other: int | None
    suppressed_groups: int

    @property
    def released(self) -> bool:
        return self.total is not None


def ascending(candidates: Sequence[Candidate]) -> list[Candidate]:
    """``candidates`` smallest first (ties by label): the order secondary suppression takes them in, and the
    ranks (1-based) ``statements.rank_histogram`` counts users by."""
    return sorted(candidates, key=lambda c: (c.users, c.label))


def decide(
    ranked: Sequence[Candidate],
    histogram: Mapping[tuple[str, int], int],
    *,
    groups: int,
    threshold: Threshold,
) -> Decision:
    """Apply the rule. ``ranked``: the candidate groups in ``ascending`` order. ``histogram``: distinct users
    per (account, rank), where a user's rank is the smallest rank among the groups they fall in (0 for a group
    that is not a candidate), so the users of the ``j`` smallest candidates plus every suppressed group are those
    of rank at most ``j``. ``groups``: how many groups there are in all (0 without a grouping)."""
    total_users = sum(histogram.values())
    total_accounts = len({account for account, _ in histogram})
    if not threshold.passes(total_users, total_accounts):
        return Decision(None, (), None, groups)
    if groups == 0:
        return Decision(total_users, (), None, 0)
    for cut in range(len(ranked) + 1):
        users, accounts = _pooled(histogram, cut)
        if users == 0 or threshold.passes(users, accounts):
            kept = tuple(reversed(ranked[cut:]))
            return Decision(total_users, kept, users or None, groups - len(kept))
    raise AssertionError("unreachable: at the last cut every user is pooled and the total passes")


def _pooled(histogram: Mapping[tuple[str, int], int], cut: int) -> tuple[int, int]:
    """Users and accounts of rank at most ``cut``: what "other" holds when the ``cut`` smallest candidates are
    suppressed too."""
    users = 0
    accounts: set[str] = set()
    for (account, rank), count in histogram.items():
        if rank <= cut and count:
            users += count
            accounts.add(account)
    return users, len(accounts)
