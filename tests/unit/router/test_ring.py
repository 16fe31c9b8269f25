"""The ring: placement rules, balance, stability under membership change, the ring map."""
from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from router.ring import TOKEN_SPACE, NodeInfo, Ring, range_size
from tidings_runtime.partitions import partition_token

VNODES = 32  # small rings keep the suite fast; balance is checked at 256 below


def nodes(count: int, zones: int = 3, first: int = 1) -> list[NodeInfo]:
    return [NodeInfo(str(i), f"127.0.0.1:{7100 + i}", f"zone-{'abcdefgh'[i % zones]}")
            for i in range(first, first + count)]


@pytest.fixture(scope="module")
def ring9() -> Ring:
    return Ring(nodes(9), vnodes=VNODES)


keys = st.text(min_size=1, max_size=20)


@settings(max_examples=200, deadline=None)
@given(key=keys, n=st.integers(1, 6))
def test_preference_list_is_distinct_and_zone_spread(ring9: Ring, key: str, n: int) -> None:
    replicas = ring9.preference_list(key, n)
    assert len(replicas) == n
    assert len({r.node_id for r in replicas}) == n
    zones = [r.zone for r in replicas]
    # Distinct zones first: the first min(n, 3) replicas are in three different zones.
    assert len(set(zones[:3])) == min(n, 3)


@settings(max_examples=100, deadline=None)
@given(key=keys)
def test_first_replica_owns_the_keys_token(ring9: Ring, key: str) -> None:
    token = partition_token(key)
    first = ring9.preference_list(key, 1)[0]
    i = ring9.vnode_index(token)
    end = ring9.tokens[i]
    assert end in ring9.tokens_of(first.node_id)
    assert range_size(token, end) <= range_size(ring9.tokens[i - 1], end) or token == end


def test_fewer_nodes_than_replicas() -> None:
    ring = Ring(nodes(2, zones=1), vnodes=8)
    assert {r.node_id for r in ring.preference_list("alice", 3)} == {"1", "2"}
    assert Ring([], vnodes=8).preference_list("alice") == []


def test_one_zone_still_gives_distinct_nodes() -> None:
    ring = Ring(nodes(5, zones=1), vnodes=8)
    for key in ("a", "b", "c", "d"):
        assert len({r.node_id for r in ring.preference_list(key, 3)}) == 3


def test_deterministic_and_equal_to_joining_in_order() -> None:
    listed = nodes(7)
    assert Ring(listed, vnodes=VNODES).tokens == Ring(listed, vnodes=VNODES).tokens
    grown = Ring(listed[:5], vnodes=VNODES).with_node(listed[5]).with_node(listed[6])
    assert grown.tokens == Ring(listed, vnodes=VNODES).tokens
    assert grown.version == 3
    for node in listed:
        assert len(grown.tokens_of(node.node_id)) == VNODES


def test_versions_and_immutability(ring9: Ring) -> None:
    assert ring9.version == 1
    bigger = ring9.with_node(NodeInfo("10", "127.0.0.1:7110", "zone-b"))
    smaller = bigger.without_node("3")
    assert (bigger.version, smaller.version) == (2, 3)
    assert "10" not in ring9 and "10" in bigger and "3" not in smaller
    assert len(ring9) == 9
    with pytest.raises(AttributeError):
        ring9.version = 5  # type: ignore[misc]


def test_leaving_keeps_every_other_token(ring9: Ring) -> None:
    smaller = ring9.without_node("4")
    for node in smaller.nodes:
        assert smaller.tokens_of(node.node_id) == ring9.tokens_of(node.node_id)


def test_address_update_keeps_tokens(ring9: Ring) -> None:
    moved = ring9.with_node(NodeInfo("2", "127.0.0.1:9999", ring9.node("2").zone))
    assert moved.node("2").address == "127.0.0.1:9999"
    assert moved.tokens == ring9.tokens and moved.version == 2
    with pytest.raises(ValueError):
        ring9.with_node(NodeInfo("2", "x:1", "zone-z"))


def test_errors() -> None:
    with pytest.raises(ValueError):
        Ring([NodeInfo("1", "a:1"), NodeInfo("1", "b:1")])
    with pytest.raises(KeyError):
        Ring(nodes(3), vnodes=4).node("nope")
    with pytest.raises(KeyError):
        Ring(nodes(3), vnodes=4).without_node("nope")


@pytest.mark.parametrize("zones", [1, 3])
def test_joining_moves_only_keys_that_gain_the_newcomer(zones: int) -> None:
    before = Ring(nodes(8, zones), vnodes=VNODES)
    newcomer = NodeInfo("9", "127.0.0.1:7109", "zone-a")
    after = before.with_node(newcomer)
    for i in range(2000):
        key = f"user-{i}"
        old = {r.node_id for r in before.preference_list(key, 3)}
        new = {r.node_id for r in after.preference_list(key, 3)}
        if old != new:
            assert new - old == {"9"}, key
            assert len(old - new) == 1
        assert before.preference_list(key, 1) == after.preference_list(key, 1) or \
            after.preference_list(key, 1)[0] == newcomer


def test_diff_matches_placement_changes() -> None:
    before = Ring(nodes(6), vnodes=VNODES)
    after = before.with_node(NodeInfo("7", "127.0.0.1:7107", "zone-b"))
    changes = before.diff(after, 3)
    assert changes and all("7" in c.after and "7" not in c.before for c in changes)
    moved = sum(c.size for c in changes)
    assert moved == pytest.approx(sum(size for size in _sizes(after.ranges_of("7", 3))), rel=1e-9)
    assert before.diff(before, 3) == []


def _sizes(ranges: list[tuple[int, int]]) -> list[int]:
    return [range_size(start, end) for start, end in ranges]


def test_ranges_of_cover_ownership(ring9: Ring) -> None:
    for n in (1, 3):
        total = 0
        for node in ring9.nodes:
            ranges = ring9.ranges_of(node.node_id, n)
            assert all(range_size(s, e) > 0 for s, e in ranges)
            total += sum(_sizes(ranges))
        assert total == n * TOKEN_SPACE
    owned = ring9.ownership(1)
    assert sum(owned.values()) == pytest.approx(1.0)
    for node in ring9.nodes:
        assert sum(_sizes(ring9.ranges_of(node.node_id, 1))) / TOKEN_SPACE == pytest.approx(owned[node.node_id])


def test_ranges_of_whole_ring_when_every_node_replicates_everything() -> None:
    ring = Ring(nodes(3), vnodes=8)
    [(start, end)] = ring.ranges_of("1", 3)
    assert start == end and range_size(start, end) == TOKEN_SPACE


@pytest.mark.parametrize("zones", [1, 3])
def test_balance_at_256_vnodes(zones: int) -> None:
    ring = Ring(nodes(30, zones), vnodes=256)
    primary = list(ring.ownership(1).values())
    assert max(primary) * len(primary) < 1.10 and min(primary) * len(primary) > 0.90
    if zones == 3:
        replicas = list(ring.ownership(3).values())
        assert max(replicas) * len(replicas) < 1.02


def test_json_round_trip(ring9: Ring) -> None:
    text = ring9.to_json()
    back = Ring.from_json(text)
    assert back == ring9 and back.version == ring9.version and back.vnodes == VNODES
    assert back.preference_list("alice") == ring9.preference_list("alice")
    grown = back.with_node(NodeInfo("10", "127.0.0.1:7110", "zone-c"))
    assert grown == ring9.with_node(NodeInfo("10", "127.0.0.1:7110", "zone-c"))


def test_preference_list_returns_a_fresh_list(ring9: Ring) -> None:
    first = ring9.preference_list("bob")
    first.clear()
    assert len(ring9.preference_list("bob")) == 3
