"""The zone-aware walk, on plain lists of owners."""
from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from router.placement import zone_aware_walk

ZONE = {"a1": "a", "a2": "a", "a3": "a", "b1": "b", "b2": "b", "c1": "c"}


def walk(owners: list[str], start: int, n: int) -> list[str]:
    present = set(owners)
    return zone_aware_walk(owners, start, n, ZONE, len(present), len({ZONE[o] for o in present}))


def test_new_zones_first_then_skipped_nodes_in_walk_order() -> None:
    owners = ["a1", "a2", "b1", "a3", "c1", "b2"]
    assert walk(owners, 0, 3) == ["a1", "b1", "c1"]
    assert walk(owners, 0, 5) == ["a1", "b1", "c1", "a2", "a3"]
    assert walk(owners, 0, 6) == ["a1", "b1", "c1", "a2", "a3", "b2"]


def test_wraps_and_skips_repeated_owners() -> None:
    owners = ["b1", "a1", "a1", "a2", "c1", "a1"]
    assert walk(owners, 4, 3) == ["c1", "a1", "b1"]
    assert walk(owners, 5, 2) == ["a1", "b1"]


def test_fewer_zones_than_replicas_fills_from_used_zones() -> None:
    owners = ["a1", "a2", "a3", "b1"]
    assert walk(owners, 1, 3) == ["a2", "b1", "a3"]


def test_short_when_fewer_nodes() -> None:
    assert walk(["a1", "b1", "a1"], 0, 3) == ["a1", "b1"]
    assert walk([], 0, 3) == []
    assert walk(["a1"], 0, 0) == []


@settings(max_examples=300, deadline=None)
@given(owners=st.lists(st.sampled_from(sorted(ZONE)), min_size=1, max_size=40),
       start=st.integers(0, 100), n=st.integers(1, 7))
def test_properties(owners: list[str], start: int, n: int) -> None:
    chosen = walk(owners, start, n)
    present = set(owners)
    assert len(chosen) == min(n, len(present))
    assert len(set(chosen)) == len(chosen) and set(chosen) <= present
    zones_present = {ZONE[o] for o in present}
    k = min(len(chosen), len(zones_present))
    assert len({ZONE[c] for c in chosen[:k]}) == k  # as many zones as possible, first
    assert chosen[0] == owners[start % len(owners)]
