"""Ring map agreement: a router adopts the newest map any node holds and hands its own
to nodes that hold an older one (or none)."""
from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import grpc

from router.replicas import Consistency, Replicas
from router.ring import NodeInfo, Ring
from router.ring_keeper import RingKeeper
from tidings.v1 import storage_pb2

NODES = [NodeInfo(str(i), f"127.0.0.1:{7100 + i}", f"zone-{i}") for i in (1, 2, 3)]


class Unreachable(grpc.aio.AioRpcError):
    def __init__(self) -> None:
        super().__init__(grpc.StatusCode.UNAVAILABLE, grpc.aio.Metadata(), grpc.aio.Metadata())


class FakeNode:
    def __init__(self, held: storage_pb2.RingMap | None, up: bool = True) -> None:
        self.held = held or storage_pb2.RingMap()
        self.up = up

    async def GetRing(self, request: Any, timeout: float) -> storage_pb2.RingMap:
        if not self.up:
            raise Unreachable()
        return self.held

    async def PutRing(self, ring: storage_pb2.RingMap, timeout: float) -> storage_pb2.RingMap:
        if not self.up:
            raise Unreachable()
        if ring.version > self.held.version:
            self.held = ring
        return self.held


class FakeReplicas:
    def __init__(self, ring: Ring, nodes: dict[str, FakeNode]) -> None:
        self.ring = ring
        self.nodes = nodes
        self.consistency = Consistency()

    async def call(self, node: NodeInfo, call: Callable[[Any], Awaitable[Any]]) -> Any:
        return await call(self.nodes[node.node_id])

    each = Replicas.each


def as_map(ring: Ring) -> storage_pb2.RingMap:
    return storage_pb2.RingMap(version=ring.version, json=ring.to_json())


def test_a_router_adopts_the_newest_map_and_hands_it_on() -> None:
    old = Ring(NODES)
    joined = old.with_node(NodeInfo("4", "127.0.0.1:7104", "zone-4"))
    nodes = {"1": FakeNode(as_map(joined)), "2": FakeNode(as_map(old)), "3": FakeNode(None), "4": FakeNode(None)}
    replicas = FakeReplicas(old, nodes)
    asyncio.run(RingKeeper(replicas).sync())  # type: ignore[arg-type]
    assert replicas.ring == joined
    asyncio.run(RingKeeper(replicas).sync())  # type: ignore[arg-type]
    assert {node_id: n.held.version for node_id, n in nodes.items()} == {"1": 2, "2": 2, "3": 2, "4": 2}


def test_unreachable_nodes_are_skipped() -> None:
    ring = Ring(NODES)
    nodes = {"1": FakeNode(None, up=False), "2": FakeNode(None), "3": FakeNode(None)}
    replicas = FakeReplicas(ring, nodes)
    keeper = RingKeeper(replicas)  # type: ignore[arg-type]
    asyncio.run(keeper.sync())
    assert replicas.ring == ring
    assert [nodes[i].held.version for i in "123"] == [0, 1, 1]
    assert asyncio.run(keeper.publish(ring)) == 2
