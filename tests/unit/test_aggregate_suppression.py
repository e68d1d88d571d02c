"""The minimum-group-size rule of anonymised aggregates and the differencing check, on figures made by hand and
on random populations checked against a brute-force reading of the rule."""

from __future__ import annotations

from collections import Counter

from hypothesis import given, settings
from hypothesis import strategies as st

from tapwire_query.aggregates.differencing import Clash, first_clash
from tapwire_query.aggregates.suppression import Candidate, Decision, Threshold, ascending, decide

K = 10


Members = dict[str, set[tuple[str, int]]]


def _decide(
    people: dict[tuple[str, int], set[str]], threshold: Threshold
) -> tuple[Decision, Members, list[Candidate]]:
    """Run the rule the way the warehouse feeds it: candidates, then users per (account, smallest rank)."""
    members: Members = {}
    for person, groups in people.items():
        for group in groups:
            members.setdefault(group, set()).add(person)
    candidates = [
        Candidate(label, len(users), len({account for account, _ in users}))
        for label, users in members.items()
        if threshold.passes(len(users), len({account for account, _ in users}))
    ]
    ranked = ascending(candidates)
    rank = {c.label: i + 1 for i, c in enumerate(ranked)}
    histogram = Counter(
        (person[0], min(rank.get(g, 0) for g in groups)) for person, groups in people.items() if groups
    )
    decision = decide(ranked, histogram, groups=len(members), threshold=threshold)
    return decision, members, ranked


def test_groups_below_k_are_pooled_into_other_when_it_reaches_k() -> None:
    people = {
        ("a", i): {g} for i, g in enumerate(["FR"] * 15 + ["DE"] * 12 + ["IT"] * 4 + ["NL"] * 4 + ["BE"] * 3)
    }
    decision, _, _ = _decide(people, Threshold(K))
    assert decision.total == 38
    assert [(g.label, g.users) for g in decision.groups] == [("FR", 15), ("DE", 12)]
    assert decision.other == 11 and decision.suppressed_groups == 3


def test_a_small_other_takes_the_smallest_released_group_with_it() -> None:
    # other would be 6: not released, and not droppable either (38 - 20 - 12 would give it away).
    people = {
        ("a", i): {g} for i, g in enumerate(["gold"] * 20 + ["silver"] * 12 + ["bronze"] * 3 + ["-"] * 3)
    }
    decision, _, _ = _decide(people, Threshold(K))
    assert [(g.label, g.users) for g in decision.groups] == [("gold", 20)]
    assert decision.other == 18 and decision.suppressed_groups == 3


def test_nothing_is_released_below_k_in_all_or_too_few_accounts() -> None:
    few = {("a", i): {"x"} for i in range(9)}
    assert not _decide(few, Threshold(K))[0].released
    one_account = {("a", i): {"x"} for i in range(50)}
    blocked = _decide(one_account, Threshold(K, min_accounts=2))[0]
    assert not blocked.released and blocked.suppressed_groups == 1


def test_without_a_grouping_only_the_total_is_released() -> None:
    decision = decide([], {("a", 0): 12}, groups=0, threshold=Threshold(K))
    assert (decision.total, decision.groups, decision.other, decision.suppressed_groups) == (12, (), None, 0)


_populations = st.dictionaries(
    st.tuples(st.sampled_from(["a", "b", "c"]), st.integers(0, 400)),
    st.frozensets(st.sampled_from([f"g{i}" for i in range(8)]), min_size=1, max_size=3),
    max_size=150,
)


@settings(max_examples=300, deadline=None)
@given(_populations, st.integers(2, 15), st.integers(1, 3), st.booleans())
def test_every_released_figure_meets_the_rule_and_nothing_can_be_subtracted(
    raw: dict[tuple[str, int], frozenset[str]], k: int, min_accounts: int, single: bool
) -> None:
    people = {person: {min(groups)} if single else set(groups) for person, groups in raw.items()}
    threshold = Threshold(k, min_accounts)
    decision, members, ranked = _decide(people, threshold)
    accounts = {account for account, _ in people}
    if not threshold.passes(len(people), len(accounts)):
        assert not decision.released
        return
    released = {g.label for g in decision.groups}
    assert decision.total == len(people)
    for group in decision.groups:
        users = members[group.label]
        assert group.users == len(users) and threshold.passes(len(users), len({a for a, _ in users}))
    pooled = {p for label, users in members.items() if label not in released for p in users}
    # "other" is exactly the people of the suppressed groups, and released only when it meets the rule itself.
    if pooled:
        assert decision.other == len(pooled)
        assert threshold.passes(len(pooled), len({a for a, _ in pooled}))
    else:
        assert decision.other is None
    assert decision.suppressed_groups == len(members) - len(released)
    if single:  # the released figures add up to the total: no suppressed figure can be subtracted out
        assert sum(g.users for g in decision.groups) + (decision.other or 0) == decision.total
    # Secondary suppression takes the smallest candidates, and no more of them than it must.
    cut = len(ranked) - len(released)
    assert [g.label for g in reversed(decision.groups)] == [c.label for c in ranked[cut:]]
    if cut:
        fewer = {label for label in members if label not in {c.label for c in ranked[cut - 1 :]}}
        pooled_before = {p for label in fewer for p in members[label]}
        assert pooled_before and not threshold.passes(len(pooled_before), len({a for a, _ in pooled_before}))


def _rows(
    new: dict[str, int], earlier: dict[str, int], shared: dict[tuple[str, str], int]
) -> list[dict[str, object]]:
    rows: list[dict[str, object]] = [{"rel": 0, "a": a, "b": "", "n": n} for a, n in new.items()]
    rows += [{"rel": 1, "a": "", "b": b, "n": n} for b, n in earlier.items()]
    rows += [{"rel": 1, "a": a, "b": b, "n": n} for (a, b), n in shared.items()]
    return rows


def test_a_cell_fewer_than_k_away_from_an_earlier_cell_clashes() -> None:
    # Everyone (38) against everyone but one (37): 1 apart.
    assert first_clash(_rows({"T": 37}, {"T": 38}, {("T", "T"): 37}), k=K) == Clash(1, "T", "T")
    # The same figure again: 0 apart, no clash; disjoint cells never clash.
    assert first_clash(_rows({"T": 38}, {"T": 38}, {("T", "T"): 38}), k=K) is None
    assert first_clash(_rows({"gvFR": 15}, {"gvDE": 12}, {}), k=K) is None
    # Totals 12 apart, but one group 1 apart.
    rows = _rows({"T": 26, "gvFR": 14}, {"T": 38, "gvFR": 15}, {("T", "T"): 26, ("gvFR", "gvFR"): 14})
    assert first_clash(rows, k=K) == Clash(1, "gvFR", "gvFR")
    # k apart exactly is far enough.
    assert first_clash(_rows({"T": 28}, {"T": 38}, {("T", "T"): 28}), k=K) is None
