"""Identity closure: every identifier linked to a subject, collected before anything is acted on.

A subject starts as the keys a request names (``i:ann``, ``e:ann@example.com``). Each :class:`ClosureSource`
looks at one store and returns the keys it links to any key it is given: a warehouse row carrying ``e:ann@…``
also carries the user key and maybe an objectId; an alias row links an anonymous key to the identity that
absorbed it. Sources are asked again until nothing new turns up (a fixpoint), so a chain of links of any length
is followed, up to ``max_rounds`` and ``max_keys`` so a pathological graph cannot run away.

The identity graph (``tapwire_core.identity.linked_identifiers``) plugs in as one more source.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Protocol

from tapwire_core.control.privacy.subject_keys import is_subject_key

log = logging.getLogger(__name__)


class ClosureSource(Protocol):
    """One store's knowledge of which identifiers belong together."""

    name: str

    async def linked(self, account_id: str, keys: frozenset[str]) -> set[str]:
        """Keys linked to any of ``keys`` in this store (may include ``keys`` themselves). May raise the
        store's unavailability error; the caller retries the whole closure."""
        ...


class ClosureTooLarge(RuntimeError):
    """The linked set passed ``max_keys``: a sign of a bad merge, which a person should look at first."""


async def identity_closure(
    sources: Sequence[ClosureSource],
    account_id: str,
    keys: Sequence[str],
    *,
    max_rounds: int = 10,
    max_keys: int = 10_000,
) -> frozenset[str]:
    """The fixpoint of ``keys`` under every source's links. Only well-formed subject keys are kept."""
    known = frozenset(k for k in keys if is_subject_key(k))
    frontier = known
    for _ in range(max_rounds):
        found: set[str] = set()
        for source in sources:
            found |= {k for k in await source.linked(account_id, frontier) if is_subject_key(k)}
        new = frozenset(found - known)
        if not new:
            return known
        known |= new
        if len(known) > max_keys:
            raise ClosureTooLarge(f"more than {max_keys} identifiers are linked to this subject")
        frontier = new
    log.warning("identity closure stopped after %d rounds with links still unexplored", max_rounds)
    return known
