"""Property: whatever sequence of links, demerges and disassociations, the alias rows the graph hands out
(latest version per alias wins, as in ``user_aliases``) describe exactly the graph's current profiles."""

from __future__ import annotations

import asyncio
import itertools

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tapwire_core.control.store import ControlStore
from tapwire_core.identity import AliasRow, IdentityGraph, LinkRequest
from tapwire_core.identity.keys import canonical_rank
from tests.credentials import LOOKUP_DIGESTS

ACCOUNT = "ACC-PROP"
KEYS = ("i:u1", "i:u2", "i:u3", "a:x1", "a:x2", "a:x3", "e:m@example.com", "p:+14155550000", "o:g1")
CAP = 6

link = st.tuples(st.just("link"), st.lists(st.sampled_from(KEYS), min_size=2, max_size=3), st.booleans())
demerge = st.tuples(
    st.just("demerge"), st.lists(st.sampled_from(KEYS[:3]), min_size=1, max_size=2), st.just(False)
)
detach = st.tuples(
    st.just("disassociate"), st.lists(st.sampled_from(KEYS), min_size=1, max_size=1), st.just(False)
)
# Several links in one transaction, as one ingestion request makes them.
many = st.tuples(st.just("many"), st.lists(st.sampled_from(KEYS), min_size=4, max_size=6), st.booleans())
OPERATIONS = st.lists(st.one_of(link, link, many, demerge, detach), min_size=1, max_size=12)


@pytest.fixture(scope="module")
def store_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A SQLite control store with the account in place; each example opens it on its own event loop."""
    url = f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('graph-property') / 'control.db'}"

    async def prepare() -> None:
        async with ControlStore(url, lookup_digests=LOOKUP_DIGESTS) as control:
            await control.upsert_account(
                ACCOUNT,
                passcode="passcode-prop-0123456789",
                write_key="writekey-prop-0123456789",
                region="eu1",
            )

    asyncio.run(prepare())
    return url


_runs = itertools.count()


Operation = tuple[str, list[str], bool]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(operations=OPERATIONS)
def test_alias_rows_describe_the_graph(store_url: str, operations: list[Operation]) -> None:
    # Each example uses its own keys (a run prefix after the kind), so examples never see each other's nodes.
    run = f"r{next(_runs)}-"

    def scoped(key: str) -> str:
        return key[:2] + run + key[2:]

    async def scenario() -> None:
        async with ControlStore(store_url, lookup_digests=LOOKUP_DIGESTS) as store:
            await check(IdentityGraph(store.engine, max_identifiers_per_profile=CAP))

    async def check(graph: IdentityGraph) -> None:
        published = await apply(
            graph, [(kind, [scoped(k) for k in names], x) for kind, names, x in operations]
        )
        await assert_rows_describe_profiles(graph, published, [scoped(k) for k in KEYS])

    asyncio.run(scenario())


async def apply(graph: IdentityGraph, operations: list[Operation]) -> dict[str, AliasRow]:
    """Run the operations; the alias rows they handed out, latest version per alias (a version never goes back)."""
    published: dict[str, AliasRow] = {}
    for kind, keys, explicit in operations:
        for row in await operate(graph, kind, keys, explicit):
            current = published.get(row.alias_key)
            assert current is None or row.version >= current.version
            published[row.alias_key] = row
    return published


async def operate(graph: IdentityGraph, kind: str, keys: list[str], explicit: bool) -> list[AliasRow]:
    if kind == "link":
        return list((await graph.link(ACCOUNT, keys, reason="test", explicit=explicit)).rows)
    if kind == "many":
        pairs = [LinkRequest((a, b), "test", explicit) for a, b in itertools.pairwise(keys)]
        return [row for outcome in await graph.link_many(ACCOUNT, pairs) for row in outcome.rows]
    if kind == "demerge":
        return await graph.demerge(ACCOUNT, keys)
    return await graph.disassociate(ACCOUNT, keys[0])


async def assert_rows_describe_profiles(
    graph: IdentityGraph, published: dict[str, AliasRow], keys: list[str]
) -> None:
    """Every profile any of ``keys`` belongs to, checked once."""
    seen: set[str] = set()
    for key in keys:
        members = await graph.linked_identifiers(ACCOUNT, key)
        if not members or key in seen:
            continue
        seen.update(members)
        await assert_rows_describe_profile(graph, published, members)


async def assert_rows_describe_profile(
    graph: IdentityGraph, published: dict[str, AliasRow], members: list[str]
) -> None:
    """One canonical key, the strongest kind present, and every other member's latest row points at it."""
    assert len(members) <= CAP
    canonicals = {await graph.canonical_key(ACCOUNT, m) for m in members}
    assert len(canonicals) == 1, canonicals
    (profile_canonical,) = canonicals
    assert canonical_rank(profile_canonical) == min(canonical_rank(m) for m in members)
    assert profile_canonical in members
    for member in members:
        row = published.get(member)
        if member == profile_canonical:
            assert row is None or not row.active
        else:
            assert row is not None and row.active and row.canonical_key == profile_canonical
