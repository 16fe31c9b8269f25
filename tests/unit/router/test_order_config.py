"""Which acceptors the mailbox order asks while the ring changes: the old and the new
owners of a user whose replicas move (joint quorums), one set for a user whose do not,
and what a router learns from a node's fence."""
from __future__ import annotations

from router.nodes import NodePool
from router.order_config import Config, OrderRings, ring_id
from router.replicas import Consistency, Replicas
from router.ring import NodeInfo, Ring
from storage_node import order_fence
from tidings.v1 import storage_pb2

NODES = [NodeInfo(str(i), f"127.0.0.1:{7100 + i}", f"zone-{i}") for i in (1, 2, 3)]
OLD = Ring(NODES)
NEW = OLD.with_node(NodeInfo("4", "127.0.0.1:7104", "zone-4"))


def users(moving: bool) -> list[str]:
    found = []
    for i in range(200):
        user = f"{i:016x}"
        owners = {x.node_id for x in OLD.preference_list(user)}, {x.node_id for x in NEW.preference_list(user)}
        if (owners[0] != owners[1]) == moving:
            found.append(user)
    return found


def test_a_user_whose_replicas_move_has_two_acceptor_sets_and_one_that_stays_has_one() -> None:
    config = Config(OLD, NEW, ring_id(NEW.to_json()))
    mover, stayer = users(True)[0], users(False)[0]
    old, new = config.groups(mover, 3)
    assert {x.node_id for x in old} != {x.node_id for x in new} and "4" in {x.node_id for x in new}
    assert config.groups(stayer, 3) == [OLD.preference_list(stayer)]
    assert Config(OLD).groups(mover, 3) == [OLD.preference_list(mover)]
    assert config.wire() == storage_pb2.OrderConfig(ring_version=1, pending_version=2, pending_id=config.pending_id)


def test_the_router_computes_the_id_the_nodes_compute() -> None:
    assert ring_id(NEW.to_json()) == order_fence.ring_id(storage_pb2.RingMap(version=2, json=NEW.to_json()))


def test_a_fence_teaches_a_router_the_pending_ring_then_the_new_one() -> None:
    replicas = Replicas(OLD, NodePool(), Consistency())
    rings = OrderRings(replicas)
    assert rings.config().key == (1, 0, 0)
    pending = storage_pb2.OrderFence(ring=storage_pb2.RingMap(version=1, json=OLD.to_json()),
                                     pending=storage_pb2.RingMap(version=2, json=NEW.to_json()))
    rings.learn(pending)
    assert rings.config().key == (1, 2, ring_id(NEW.to_json())) and rings.config().pending == NEW
    rings.learn(storage_pb2.OrderFence(ring=storage_pb2.RingMap(version=2, json=NEW.to_json())))
    assert replicas.ring == NEW and rings.config().key == (2, 0, 0)
    rings.learn(pending)                       # an old fence teaches nothing
    assert rings.config().key == (2, 0, 0)
