"""Replica plans: contacts, block-for, hints and pending owners, decided before any I/O."""
from __future__ import annotations

from collections.abc import Callable

import pytest

from router.errors import Unavailable
from router.plan import Consistency, ReadPlan, WritePlan, read_plan, write_plan
from router.ring import NodeInfo, Ring

NODES = [NodeInfo(str(i), f"127.0.0.1:{7100 + i}", f"zone-{i}") for i in (1, 2, 3)]
RING = Ring(NODES)
GROWN = RING.with_node(NodeInfo("4", "127.0.0.1:7104", "zone-4"))
C = Consistency()
KEY = "someone"
REPLICAS = tuple(RING.preference_list(KEY, 3))
# A key whose replica set changes when node 4 joins: node 4 is a pending owner of it.
MOVED = next(f"user{i}" for i in range(1000)
             if "4" in {n.node_id for n in GROWN.preference_list(f"user{i}", 3)})


def up(node: NodeInfo) -> bool:
    return True


def all_but(*down: str) -> Callable[[NodeInfo], bool]:
    return lambda node: node.node_id not in down


def test_a_write_with_every_replica_up_calls_them_all_and_blocks_for_w() -> None:
    plan = write_plan(RING, None, KEY, C, up)
    assert plan == WritePlan(REPLICAS, 2)
    assert plan.targets == REPLICAS


def test_a_replica_seen_down_is_hinted_not_called_while_w_are_up() -> None:
    down = REPLICAS[1]
    plan = write_plan(RING, None, KEY, C, all_but(down.node_id))
    assert plan.contacts == (REPLICAS[0], REPLICAS[2]) and plan.hinted == (down,)
    assert plan.block_for == 2


def test_with_fewer_than_w_seen_up_the_detector_is_not_trusted() -> None:
    plan = write_plan(RING, None, KEY, C, all_but(*(n.node_id for n in REPLICAS[1:])))
    assert plan.contacts == REPLICAS and plan.hinted == ()


def test_too_few_replicas_in_the_ring_raise_unavailable_before_sending() -> None:
    small = Ring(NODES[:1])
    with pytest.raises(Unavailable):
        write_plan(small, None, KEY, C, up)
    with pytest.raises(Unavailable):
        read_plan(small, KEY, C, up)
    with pytest.raises(Unavailable):
        ReadPlan(REPLICAS[:1], 2)
    assert read_plan(small, KEY, Consistency(n=1, w=1, r=1), up).contacts == (NODES[0],)


def test_a_read_of_r_of_n_skips_the_replica_seen_down() -> None:
    plan = read_plan(RING, KEY, C, all_but(REPLICAS[0].node_id))
    assert plan == ReadPlan(REPLICAS[1:], 2)
    # too few seen up: every replica is called, the one seen up first
    assert read_plan(RING, KEY, C, all_but(*(n.node_id for n in REPLICAS[:2]))).contacts == (
        REPLICAS[2], REPLICAS[0], REPLICAS[1])


def test_a_read_plan_orders_its_contacts_by_the_rank_the_ones_seen_up_first() -> None:
    def backwards(partition_key: str, node: NodeInfo) -> bytes:
        assert partition_key == KEY
        return bytes([255 - int(node.node_id)])

    ranked = tuple(sorted(REPLICAS, key=lambda node: -int(node.node_id)))
    assert read_plan(RING, KEY, C, up, backwards).contacts == ranked
    down = ranked[0].node_id, ranked[1].node_id
    assert read_plan(RING, KEY, C, all_but(*down), backwards).contacts == (ranked[2], ranked[0], ranked[1])


def test_a_pending_owner_is_written_too_and_raises_w() -> None:
    plan = write_plan(RING, GROWN, MOVED, C, up)
    natural = tuple(RING.preference_list(MOVED, 3))
    assert [n.node_id for n in plan.pending] == ["4"]
    assert plan.contacts == natural + plan.pending and plan.block_for == 3


def test_a_pending_owner_seen_down_is_hinted_while_w_plus_one_are_up() -> None:
    plan = write_plan(RING, GROWN, MOVED, C, all_but("4"))
    assert [n.node_id for n in plan.hinted] == ["4"] and plan.block_for == 3
    first = RING.preference_list(MOVED, 3)[0].node_id
    crowded = write_plan(RING, GROWN, MOVED, C, all_but("4", first))
    assert len(crowded.contacts) == 4 and crowded.hinted == ()


def test_without_a_pending_ring_nothing_is_pending() -> None:
    assert write_plan(RING, None, MOVED, C, up).pending == ()
    assert write_plan(RING, RING, MOVED, C, up) == write_plan(RING, None, MOVED, C, up)
