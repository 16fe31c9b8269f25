"""Membership changes: which new owner pulls which range from whom, who drops what, and
how writes are planned while the ring is moving."""
from __future__ import annotations

import pytest

from router.errors import Unavailable
from router.membership import drops, fenced_enough, moved_groups, order_pulls, pulls
from router.nodes import NodePool
from router.replicas import Consistency, Replicas
from router.ring import NodeInfo, RangeChange, Ring, range_size

NODES = [NodeInfo(str(i), f"127.0.0.1:{7100 + i}", f"zone-{i}") for i in (1, 2, 3)]
NEW = NodeInfo("4", "127.0.0.1:7104", "zone-4")
OLD_RING = Ring(NODES)
NEW_RING = OLD_RING.with_node(NEW)


def up(_: str) -> bool:
    return True


def test_a_joining_node_pulls_about_a_quarter_of_the_ring_from_owners_that_stay() -> None:
    changes = OLD_RING.diff(NEW_RING, 3)
    plan = pulls(changes, up)
    assert {gainer for gainer, _ in plan} == {"4"}
    pulled = sum(range_size(s, e) for ranges in plan.values() for s, e in ranges)
    assert 0.70 < pulled / 2**64 < 0.80  # with N=3 the 4th node replicates 3/4 of the ring
    for change in changes:
        source = next(src for (g, src), rs in plan.items() if (change.start, change.end) in rs)
        assert source in change.before and source in change.after


def test_the_nodes_that_lose_a_range_drop_it() -> None:
    dropped = drops(OLD_RING.diff(NEW_RING, 3))
    total = sum(range_size(s, e) for ranges in dropped.values() for s, e in ranges)
    assert total == sum(range_size(s, e) for ranges in pulls(OLD_RING.diff(NEW_RING, 3), up).values()
                        for s, e in ranges)
    assert "4" not in dropped


def test_a_removed_node_hands_every_range_back() -> None:
    changes = NEW_RING.diff(NEW_RING.without_node("4"), 3)
    assert set(drops(changes)) == {"4"}
    assert all(gainer != "4" for gainer, _ in pulls(changes, up))


def test_streaming_needs_a_live_source() -> None:
    change = RangeChange(1, 2, ("1", "2", "3"), ("1", "2", "4"))
    assert pulls([change], lambda n: n == "3") == {("4", "3"): [(1, 2)]}
    with pytest.raises(Unavailable):
        pulls([change], lambda n: False)


def test_moved_groups_name_old_and_new_owners_then_new_ones() -> None:
    nodes = {n.node_id: n for n in (*NODES, NEW)}
    change = RangeChange(1, 2, ("1", "2", "3"), ("1", "2", "4"))
    assert [[n.node_id for n in g.nodes] for g in moved_groups([change], nodes, before=True)] == [["1", "2", "3", "4"]]
    assert [[n.node_id for n in g.nodes] for g in moved_groups([change], nodes, before=False)] == [["1", "2", "4"]]


def test_while_the_ring_moves_writes_also_go_to_new_owners_and_w_grows() -> None:
    replicas = Replicas(OLD_RING, NodePool(), Consistency())
    def owners(ring: Ring, key: str) -> set[str]:
        return {n.node_id for n in ring.preference_list(key, 3)}

    key = next(f"user{i}" for i in range(1000) if owners(NEW_RING, f"user{i}") != owners(OLD_RING, f"user{i}"))
    plan = replicas.write_plan(key)
    assert (list(plan.targets), plan.block_for) == (OLD_RING.preference_list(key, 3), 2)
    replicas.pending = NEW_RING
    plan = replicas.write_plan(key)
    assert [n.node_id for n in plan.targets][:3] == [n.node_id for n in OLD_RING.preference_list(key, 3)]
    assert plan.pending == (NEW,) and NEW in plan.contacts and plan.block_for == 3


def test_each_gained_range_merges_the_order_of_every_live_old_owner() -> None:
    change = RangeChange(1, 2, ("1", "2", "3"), ("1", "2", "4"))
    assert pulls([change], up) == {("4", "1"): [(1, 2)]}
    assert order_pulls([change], up, 2) == {("4", "2"): [(1, 2)], ("4", "3"): [(1, 2)]}
    assert order_pulls([change], lambda n: n != "3", 2) == {("4", "2"): [(1, 2)]}
    with pytest.raises(Unavailable, match="old owners"):
        order_pulls([change], lambda n: n == "1", 2)


def test_the_fence_must_hold_on_a_majority_of_each_moved_ranges_old_owners() -> None:
    changes = [RangeChange(1, 2, ("1", "2", "3"), ("1", "2", "4")), RangeChange(2, 3, ("2", "3", "1"), ("2", "4", "1"))]
    assert fenced_enough(changes, {"1", "2"}, 2)
    assert not fenced_enough(changes, {"3", "4"}, 2)
    assert not fenced_enough(changes, {"1", "4"}, 2)       # range (1, 2]: only node 1 of its old owners
