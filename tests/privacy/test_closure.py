"""Identity closure over in-memory sources: chains, batches of subjects kept apart, limits."""

from __future__ import annotations

import pytest

from tapwire_privacy.closure import (
    ClosureTooLarge,
    LinkedIdentifierSource,
    identity_closure,
    identity_closures,
)


class Links:
    """A source over fixed groups; counts how often it is asked."""

    name = "links"

    def __init__(self, *groups: set[str]) -> None:
        self._groups = [frozenset(g) for g in groups]
        self.asked: list[frozenset[str]] = []

    async def groups(self, account_id: str, keys: frozenset[str]) -> list[frozenset[str]]:
        self.asked.append(keys)
        return [g for g in self._groups if g & keys]


async def test_chains_of_any_length_are_followed() -> None:
    source = Links(
        {"i:ann", "e:ann@x"}, {"e:ann@x", "o:dev-1"}, {"o:dev-1", "a:anon-1"}, {"i:bob", "e:bob@x"}
    )
    assert await identity_closure([source], "A", ["i:ann"]) == {"i:ann", "e:ann@x", "o:dev-1", "a:anon-1"}


async def test_a_batch_is_one_question_per_round_and_subjects_stay_apart() -> None:
    source = Links({"i:ann", "e:ann@x"}, {"i:bob", "a:anon-b"}, {"a:anon-b", "p:+1"})
    closed = await identity_closures([source], "A", {"r1": ["i:ann"], "r2": ["i:bob"], "r3": ["i:cyd"]})
    assert closed == {
        "r1": {"i:ann", "e:ann@x"},
        "r2": {"i:bob", "a:anon-b", "p:+1"},
        "r3": {"i:cyd"},
    }
    assert len(source.asked) == 3  # two rounds finding keys, one confirming nothing new
    assert source.asked[0] == {"i:ann", "i:bob", "i:cyd"}


async def test_malformed_keys_are_ignored() -> None:
    source = Links({"i:ann", "bogus", "x:y", "e:"})
    assert await identity_closure([source], "A", ["i:ann", "nonsense"]) == {"i:ann"}


async def test_a_runaway_merge_is_refused() -> None:
    source = Links({"i:ann", *(f"o:dev-{i}" for i in range(20))})
    with pytest.raises(ClosureTooLarge):
        await identity_closure([source], "A", ["i:ann"], max_keys=10)


async def test_a_per_identifier_lookup_plugs_in_sync_or_async() -> None:
    graph = {"i:ann": {"a:anon-1"}, "a:anon-1": {"i:ann", "o:dev-9"}}

    def linked(account_id: str, key: str) -> set[str]:
        return graph.get(key, set()) if account_id == "A" else set()

    async def linked_async(account_id: str, key: str) -> set[str]:
        return linked(account_id, key)

    for lookup in (linked, linked_async):
        source = LinkedIdentifierSource("identity_graph", lookup)
        assert await identity_closure([source], "A", ["i:ann"]) == {"i:ann", "a:anon-1", "o:dev-9"}
        assert await identity_closure([source], "B", ["i:ann"]) == {"i:ann"}
