"""The closure step: each request's keys loaded from its working set, and closed over every closure source.

A subject request starts from the identifiers it names; the first pass of each sweep closes them over every
store's links (``tapwire_privacy.closure``) and remembers the closed set in the working set. Requests of one
account are closed together, so a batch costs a handful of queries per source.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

from tapwire_privacy.closure import ClosureSource, identity_closures
from tapwire_privacy.repository.working_sets import WorkingSets
from tapwire_privacy.worker.progress import RequestWork


async def close_identities(
    works: Sequence[RequestWork], *, working_sets: WorkingSets, sources: Sequence[ClosureSource]
) -> None:
    """Load each request's keys; close the identities of those in the closure phase, all at once. A tenant-wide
    request has no keys (``keys`` None). A missing working set, or a source that fails, fails the request."""
    to_close: dict[str, tuple[RequestWork, list[str]]] = {}
    subjects = await working_sets.get_many([w.id for w in works if w.view.scope == "subject"])
    for work in works:
        if work.view.scope == "tenant":
            work.keys = None
            if work.phase == "closure":
                work.phase = "suppress"
            continue
        subject = subjects.get(work.id)
        if subject is None:
            work.fail("closure", "the request's working set is missing")
        elif work.phase == "closure" or subject.closure is None:
            # A second sweep keeps every key found before: rows that carried them may be gone by now.
            to_close[work.id] = (work, [*subject.identifiers, *(subject.closure or ())])
        else:
            work.keys = frozenset(subject.closure)
    if not to_close:
        return
    by_account: dict[str, dict[str, list[str]]] = defaultdict(dict)
    for rid, (work, keys) in to_close.items():
        by_account[work.view.account_id][rid] = keys
    for account_id, named in by_account.items():
        try:
            closed = await identity_closures(sources, account_id, named)
        except Exception as exc:
            for rid in named:
                to_close[rid][0].fail("closure", type(exc).__name__)
            continue
        for rid, closure in closed.items():
            work = to_close[rid][0]
            work.keys = closure
            work.closure_changed = True
            work.actions.append(("closure", None, {"identifiers": len(closure)}))
            work.phase = "suppress"
