"""Identity closure: every identifier linked to a subject, collected before anything is acted on.

A subject starts as the keys a request names (``i:ann``, ``e:ann@example.com``). Each :class:`ClosureSource`
looks at one store and returns *groups*: sets of keys that store ties together (a warehouse row carrying
``e:ann@…`` also carries its user key and maybe an objectId; an alias row ties an anonymous key to the identity
that absorbed it). A subject absorbs every group that shares a key with it, and the sources are asked again
about the new keys until nothing new turns up (a fixpoint), so a chain of links of any length is followed, up to
``max_rounds`` and ``max_keys`` so a pathological graph cannot run away.

Many subjects are closed together: each round asks every source once, about the union of all subjects' new
keys, and shares the answer out, so a batch of a thousand erasures costs a handful of queries per store.

The identity graph (``tapwire_core.identity.linked_identifiers``) plugs in as one more source: for each key,
the group ``{key} | linked_identifiers(account_id, key)``.
"""

from __future__ import annotations

import inspect
import logging
from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import Protocol

from tapwire_core.control.privacy.subject_keys import is_subject_key

log = logging.getLogger(__name__)


class ClosureSource(Protocol):
    """One store's knowledge of which identifiers belong together."""

    name: str

    async def groups(self, account_id: str, keys: frozenset[str]) -> list[frozenset[str]]:
        """Every set of keys this store ties together that contains any of ``keys``. May raise the store's
        unavailability error; the caller retries the whole closure."""
        ...


LinkedIdentifiers = Callable[[str, str], "Iterable[str] | Awaitable[Iterable[str]]"]


Candidates = Callable[[str, frozenset[str]], Awaitable[set[str]]]


class LinkedIdentifierSource:
    """A closure source over a per-identifier lookup such as the identity graph's
    ``linked_identifiers(account_id, identifier)`` (plain or async), which returns subject keys.

    ``candidates(account_id, keys)``, when given, answers in one question which of ``keys`` the store may link
    at all; the others are their own group without a lookup each (a batch of a thousand subjects the graph has
    never seen costs one query, not a thousand)."""

    def __init__(self, name: str, linked: LinkedIdentifiers, *, candidates: Candidates | None = None) -> None:
        self.name = name
        self._linked = linked
        self._candidates = candidates

    async def groups(self, account_id: str, keys: frozenset[str]) -> list[frozenset[str]]:
        found = []
        if self._candidates is not None:
            wanted = await self._candidates(account_id, keys)
            found = [frozenset({key}) for key in sorted(keys - wanted)]
            keys = keys & wanted
        for key in sorted(keys):
            result = self._linked(account_id, key)
            linked = await result if inspect.isawaitable(result) else result
            found.append(frozenset({key, *linked}))
        return found


class ClosureTooLarge(RuntimeError):
    """The linked set passed ``max_keys``: a sign of a bad merge, which a person should look at first."""


async def identity_closures(
    sources: Sequence[ClosureSource],
    account_id: str,
    subjects: Mapping[str, Sequence[str]],
    *,
    max_rounds: int = 10,
    max_keys: int = 10_000,
) -> dict[str, frozenset[str]]:
    """The fixpoint of each subject's keys (by request id) under every source's groups. Only well-formed
    subject keys are kept. Raises ClosureTooLarge when one subject's set passes ``max_keys``."""
    known = {rid: frozenset(k for k in keys if is_subject_key(k)) for rid, keys in subjects.items()}
    frontier = dict(known)
    for _ in range(max_rounds):
        asked = frozenset().union(*frontier.values()) if frontier else frozenset()
        if not asked:
            return known
        by_key: dict[str, list[frozenset[str]]] = defaultdict(list)
        for source in sources:
            for group in await source.groups(account_id, asked):
                valid = frozenset(k for k in group if is_subject_key(k))
                for key in valid:
                    by_key[key].append(valid)
        next_frontier: dict[str, frozenset[str]] = {}
        for rid, new_keys in frontier.items():
            found: set[str] = set()
            for key in new_keys:
                for group in by_key.get(key, ()):
                    found |= group
            added = frozenset(found - known[rid])
            if added:
                known[rid] |= added
                if len(known[rid]) > max_keys:
                    raise ClosureTooLarge(f"more than {max_keys} identifiers are linked to one subject")
                next_frontier[rid] = added
        frontier = next_frontier
    if frontier:
        log.warning("identity closure stopped after %d rounds with links still unexplored", max_rounds)
    return known


async def identity_closure(
    sources: Sequence[ClosureSource], account_id: str, keys: Sequence[str], **limits: int
) -> frozenset[str]:
    """The closure of one subject."""
    return (await identity_closures(sources, account_id, {"subject": keys}, **limits))["subject"]
