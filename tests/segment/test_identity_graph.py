"""The identity graph on both control-plane databases: merges, the rules that refuse them, demerge, erasure."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tapwire_core.control.store import ControlStore
from tapwire_core.identity import AliasRow, IdentityGraph
from tests.credentials import LOOKUP_DIGESTS

ACCOUNT = "ACC-GRAPH"


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.integration)])
def graph_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path / 'control.db'}"
    url: str = request.getfixturevalue("fresh_postgres_url")
    return url


@pytest.fixture
async def graph(graph_url: str) -> AsyncIterator[IdentityGraph]:
    store = ControlStore(graph_url, lookup_digests=LOOKUP_DIGESTS)
    await store.start()
    try:
        for account in (ACCOUNT, "ACC-OTHER"):
            await store.upsert_account(
                account,
                passcode=f"passcode-{account}-0123456789",
                write_key=f"writekey-{account}-0123456789",
                region="eu1",
            )
        yield IdentityGraph(store.engine, max_identifiers_per_profile=5)
    finally:
        await store.close()


def active(rows: tuple[AliasRow, ...] | list[AliasRow]) -> dict[str, str]:
    return {r.alias_key: r.canonical_key for r in rows if r.active}


async def test_identify_merges_anonymous_into_user(graph: IdentityGraph) -> None:
    outcome = await graph.link(ACCOUNT, ["a:anon-1", "i:user-1"], reason="identify")
    assert outcome.merged and outcome.refused is None
    assert active(outcome.rows) == {"a:anon-1": "i:user-1"}
    # The same link again changes nothing and hands back the same state (a client retrying).
    again = await graph.link(ACCOUNT, ["i:user-1", "a:anon-1"], reason="track")
    assert not again.merged and again.rows == outcome.rows
    assert await graph.linked_identifiers(ACCOUNT, "anon-1") == ["a:anon-1", "i:user-1"]
    assert await graph.linked_identifiers(ACCOUNT, "i:user-1") == ["a:anon-1", "i:user-1"]
    assert await graph.linked_identifiers("ACC-OTHER", "i:user-1") == []


async def test_anonymous_profile_moves_whole_into_identified_one(graph: IdentityGraph) -> None:
    await graph.link(ACCOUNT, ["a:anon-1", "e:ann@example.com"], reason="identify")
    assert await graph.canonical_key(ACCOUNT, "e:ann@example.com") == "a:anon-1"
    outcome = await graph.link(ACCOUNT, ["i:ann", "a:anon-1"], reason="identify")
    assert active(outcome.rows) == {"a:anon-1": "i:ann", "e:ann@example.com": "i:ann"}
    versions = {r.alias_key: r.version for r in outcome.rows}
    assert versions["e:ann@example.com"] > 0


async def test_two_identified_profiles_merge_only_explicitly(graph: IdentityGraph) -> None:
    await graph.link(ACCOUNT, ["i:ann", "a:phone-app"], reason="identify")
    await graph.link(ACCOUNT, ["i:bob", "e:shared@example.com"], reason="identify")
    refused = await graph.link(ACCOUNT, ["i:ann", "e:shared@example.com"], reason="clevertap")
    assert refused.refused is not None and "identity" in refused.refused
    assert await graph.linked_identifiers(ACCOUNT, "i:ann") == ["a:phone-app", "i:ann"]
    explicit = await graph.link(ACCOUNT, ["i:bob", "i:ann"], reason="alias", explicit=True)
    assert explicit.merged
    # Among two identities the one created first stays canonical.
    assert active(explicit.rows) == {
        "a:phone-app": "i:ann",
        "i:bob": "i:ann",
        "e:shared@example.com": "i:ann",
    }


async def test_profile_size_cap_refuses_runaway_merges(graph: IdentityGraph) -> None:
    for n in range(4):
        await graph.link(ACCOUNT, ["i:big", f"a:device-{n}"], reason="track")
    assert len(await graph.linked_identifiers(ACCOUNT, "i:big")) == 5
    outcome = await graph.link(ACCOUNT, ["i:big", "a:device-99"], reason="track")
    assert outcome.refused is not None and "limit 5" in outcome.refused
    assert await graph.linked_identifiers(ACCOUNT, "a:device-99") == ["a:device-99"]


async def test_demerge_splits_identities_and_keeps_their_own_devices(graph: IdentityGraph) -> None:
    await graph.link(ACCOUNT, ["i:ann", "a:ann-laptop"], reason="identify")
    await graph.link(ACCOUNT, ["i:bob", "a:bob-phone"], reason="identify")
    await graph.link(ACCOUNT, ["i:bob", "i:ann"], reason="alias", explicit=True)
    changed = await graph.demerge(ACCOUNT, ["i:bob"])
    assert await graph.linked_identifiers(ACCOUNT, "i:bob") == ["a:bob-phone", "i:bob"]
    assert await graph.linked_identifiers(ACCOUNT, "i:ann") == ["a:ann-laptop", "i:ann"]
    by_alias = {r.alias_key: r for r in changed}
    assert by_alias["i:bob"].active is False
    assert by_alias["a:bob-phone"] == AliasRow("a:bob-phone", "i:bob", by_alias["a:bob-phone"].version, True)
    assert "a:ann-laptop" not in by_alias  # unchanged rows are not rewritten


async def test_disassociate_detaches_a_phone(graph: IdentityGraph) -> None:
    await graph.link(ACCOUNT, ["i:cy", "p:+14155551234", "e:cy@example.com"], reason="clevertap")
    changed = await graph.disassociate(ACCOUNT, "p:+14155551234")
    assert [(r.alias_key, r.active) for r in changed] == [("p:+14155551234", False)]
    assert await graph.linked_identifiers(ACCOUNT, "i:cy") == ["e:cy@example.com", "i:cy"]
    assert await graph.linked_identifiers(ACCOUNT, "+14155551234") == ["p:+14155551234"]
    # A later upload may give the number to someone else.
    assert (await graph.link(ACCOUNT, ["i:dee", "p:+14155551234"], reason="clevertap")).merged


async def test_forget_erases_identifiers_and_splits_what_hung_on_them(graph: IdentityGraph) -> None:
    await graph.link(ACCOUNT, ["i:eve", "a:eve-1"], reason="identify")
    await graph.link(ACCOUNT, ["a:eve-1", "e:eve@example.com"], reason="identify")
    changed = await graph.forget(ACCOUNT, ["a:eve-1"])
    assert await graph.linked_identifiers(ACCOUNT, "a:eve-1") == []
    assert await graph.linked_identifiers(ACCOUNT, "i:eve") == ["i:eve"]
    assert {(r.alias_key, r.active) for r in changed} == {("a:eve-1", False), ("e:eve@example.com", False)}


async def test_recently_linked_memory_expires() -> None:
    now = [0.0]

    class _Engine:
        class dialect:  # mimics AsyncEngine.dialect.name
            name = "sqlite"

    graph = IdentityGraph(_Engine(), cache_ttl_s=10, clock=lambda: now[0])  # type: ignore[arg-type]
    assert not graph.recently_linked("A", ["i:x", "a:y"])
    graph.remember_linked("A", ["a:y", "i:x"])
    assert graph.recently_linked("A", ["i:x", "a:y"])
    assert not graph.recently_linked("B", ["i:x", "a:y"])
    now[0] = 11
    assert not graph.recently_linked("A", ["i:x", "a:y"])
