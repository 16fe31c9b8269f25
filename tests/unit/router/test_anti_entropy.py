"""Anti-entropy's decisions: how the ring is cut into compared ranges, and which replica
copies which item to which (newest wins, a tombstone wins over any live copy)."""
from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from router.anti_entropy import range_groups, segment_bounds, transfers
from router.ring import NodeInfo, Ring, range_size

NODES = [NodeInfo(str(i), f"127.0.0.1:{7100 + i}", f"zone-{i}") for i in (1, 2, 3)]
RING = Ring(NODES)
A, B, C = ("u1", "m1", ""), ("u1", "m2", ""), ("", "", "account:x@example.test")


def test_three_nodes_with_n3_is_one_replica_set_cut_into_segments() -> None:
    groups = range_groups(RING, 3)
    assert len(groups) == 1
    assert {n.node_id for n in groups[0].nodes} == {"1", "2", "3"}
    assert len(groups[0].ranges) == 256


def test_groups_cover_the_ring_once_and_each_range_has_one_replica_set() -> None:
    ring = RING.with_node(NodeInfo("4", "127.0.0.1:7104", "zone-4"))
    groups = range_groups(ring, 3)
    assert sum(range_size(*r) for g in groups for r in g.ranges) == 1 << 64
    for group in groups:
        for start, end in group.ranges:
            probe = (start + 1) % (1 << 64)
            assert {n.node_id for n in ring.preference_list_for_token(probe, 3)} == {n.node_id for n in group.nodes}
            assert {n.node_id for n in ring.preference_list_for_token(end, 3)} == {n.node_id for n in group.nodes}


def test_no_range_spans_a_segment_bound() -> None:
    bounds = segment_bounds(256)
    for group in range_groups(RING, 3):
        for start, end in group.ranges:
            inside = [b for b in bounds if start < b < end]
            assert not inside


def test_equal_replicas_need_no_transfer() -> None:
    same = {A: (False, 5), C: (False, 2)}
    assert transfers({"1": dict(same), "2": dict(same), "3": dict(same)}) == {}


def test_missing_and_older_copies_are_sent_the_newest() -> None:
    plan = transfers({"1": {A: (False, 5), B: (False, 1)}, "2": {A: (False, 3)}, "3": {}})
    assert plan == {("1", "2"): [A, B], ("1", "3"): [A, B]}


def test_a_tombstone_beats_a_newer_live_copy() -> None:
    plan = transfers({"1": {A: (True, 4)}, "2": {A: (False, 9)}})
    assert plan == {("1", "2"): [A]}


@given(st.dictionaries(st.sampled_from("123"),
                       st.dictionaries(st.sampled_from([A, B, C]), st.tuples(st.booleans(), st.integers(0, 5)))))
def test_after_the_transfers_every_replica_holds_the_newest_copy(held: dict) -> None:
    after = {node: dict(items) for node, items in held.items()}
    for (source, destination), refs in transfers(held).items():
        for ref in refs:
            after[destination][ref] = held[source][ref]
    newest = {ref: max(items[ref] for items in held.values() if ref in items)
              for ref in {r for items in held.values() for r in items}}
    for items in after.values():
        assert items == newest
