"""From accepted records to identity-graph links and the ``user_aliases`` envelopes they produce.

Both ingestion paths use it: a Segment identify/track naming a userId and an anonymousId, an alias call, or a
CleverTap record naming an identity together with an objectId, email or phone links those identifiers. The
resulting alias envelopes are published together with the records, so one 200 covers both; a link whose
publish failed is not remembered and is made (idempotently) again on the client's retry.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from fastapi import Request
from sqlalchemy.exc import SQLAlchemyError
from starlette.applications import Starlette

from tapwire_core import metrics
from tapwire_core.envelope import Envelope
from tapwire_core.http.context import ServiceContext
from tapwire_core.http.errors import ApiError
from tapwire_core.identity import AliasRow, IdentityGraph, LinkRequest, alias_envelopes
from tapwire_core.identity.keys import keys_of

log = logging.getLogger(__name__)

# A previousId may be an anonymous id or an earlier user id: the linker picks the node the graph knows.
PREVIOUS_ID_PREFIX = "?:"

_MERGES = metrics.RECORDS.labels("identity", "merged", "")
_REFUSED = metrics.RECORDS.labels("identity", "refused", "")


@dataclass(frozen=True, slots=True)
class Link:
    """Identifiers one record says belong to one person. ``explicit`` for an alias call."""

    keys: tuple[str, ...]
    explicit: bool
    reason: str


@dataclass(slots=True)
class PendingLinks:
    """Alias envelopes to publish, and the links to remember once they are durable."""

    envelopes: list[Envelope] = field(default_factory=list)
    made: list[tuple[str, ...]] = field(default_factory=list)


def links_from_envelopes(envelopes: Iterable[Envelope], reason: str) -> list[Link]:
    """Implicit links of records naming more than one identifier (a CleverTap login or profile upload)."""
    links = []
    for envelope in envelopes:
        keys = keys_of(envelope.ids)
        if len(keys) > 1:
            links.append(Link(tuple(keys), explicit=False, reason=reason))
    return links


def identity_graph(request: Request) -> IdentityGraph:
    """The process's graph, created on first use over the control store's engine."""
    return app_identity_graph(request.app)


def app_identity_graph(app: Starlette) -> IdentityGraph:
    """``identity_graph`` for code that holds the app rather than a request."""
    state = app.state
    graph: IdentityGraph | None = getattr(state, "identity_graph", None)
    if graph is None:
        context: ServiceContext = state.context
        graph = IdentityGraph(
            context.store.engine, max_identifiers_per_profile=context.settings.identity_max_per_profile
        )
        state.identity_graph = graph
    return graph


async def resolve_links(
    graph: IdentityGraph, account_id: str, links: Sequence[Link], *, received_ms: int, retry_after_s: int
) -> PendingLinks:
    """Apply ``links`` to the graph. Raises ApiError 503 when the control store is unreachable."""
    pending = PendingLinks()
    seen: set[tuple[tuple[str, ...], bool]] = set()
    requests: list[LinkRequest] = []
    named: set[str] = set()  # keys of this request's earlier links, which the graph will know by then
    try:
        for link in links:
            if (link.keys, link.explicit) in seen:
                continue
            seen.add((link.keys, link.explicit))
            keys = await _resolved_keys(graph, account_id, link.keys, earlier=named)
            named.update(keys)
            if not graph.recently_linked(account_id, keys):
                requests.append(LinkRequest(tuple(keys), link.reason, link.explicit))
        outcomes = await graph.link_many(account_id, requests) if requests else []
    except (SQLAlchemyError, OSError) as exc:
        log.warning("identity graph unavailable", extra={"error": str(exc)})
        raise ApiError(
            503, "Identity resolution is temporarily unavailable; retry later", retry_after=retry_after_s
        ) from exc
    # Links into one profile each hand back its whole state: publish every (alias, version) once.
    rows: dict[tuple[str, int], AliasRow] = {}
    for request, outcome in zip(requests, outcomes, strict=True):
        if outcome.refused is not None:
            _REFUSED.inc()
            continue
        if outcome.merged:
            _MERGES.inc()
        rows.update(((row.alias_key, row.version), row) for row in outcome.rows)
        pending.made.append(request.keys)
    pending.envelopes = alias_envelopes(account_id, rows.values(), received_ms=received_ms)
    return pending


def confirm_links(graph: IdentityGraph, account_id: str, pending: PendingLinks) -> None:
    for keys in pending.made:
        graph.remember_linked(account_id, keys)


@dataclass(slots=True)
class RequestLinks:
    """The identity side of one request: alias envelopes to publish, then ``confirm()`` once durable."""

    envelopes: list[Envelope]
    _graph: IdentityGraph | None = None
    _pending: PendingLinks | None = None
    _account_id: str = ""

    def confirm(self) -> None:
        if self._graph is not None and self._pending is not None:
            confirm_links(self._graph, self._account_id, self._pending)


async def link_request(
    request: Request, account_id: str, links: Sequence[Link], *, received_ms: int, retry_after_s: int
) -> RequestLinks:
    """Apply a request's links (touching the graph only when there are any). Raises ApiError 503.

    A link naming an erased (suppressed) subject is dropped: a late record must not bring the subject's
    identifiers back into the graph.
    """
    context: ServiceContext = request.app.state.context
    check = context.suppressions
    if check is not None:
        links = [link for link in links if not check.any_suppressed(account_id, link.keys)]
    if not links:
        return RequestLinks([])
    graph = identity_graph(request)
    pending = await resolve_links(
        graph, account_id, links, received_ms=received_ms, retry_after_s=retry_after_s
    )
    return RequestLinks(pending.envelopes, graph, pending, account_id)


async def _resolved_keys(
    graph: IdentityGraph, account_id: str, keys: tuple[str, ...], *, earlier: set[str]
) -> list[str]:
    resolved = []
    for key in keys:
        if key.startswith(PREVIOUS_ID_PREFIX):
            value = key[len(PREVIOUS_ID_PREFIX) :]
            as_user = "i:" + value
            known = as_user in earlier or as_user in await graph.existing(account_id, [as_user])
            resolved.append(as_user if known else "a:" + value)
        else:
            resolved.append(key)
    return resolved
