"""The speculative delay (router/speculation.py) and the replica layer's quorum read with it:
R replicas called, in the router's order for the partition, and another when one is slow."""
from __future__ import annotations

import asyncio
from typing import Any

import grpc

from router.nodes import NodePool
from router.replicas import Consistency, Replicas
from router.ring import NodeInfo, Ring
from router.speculation import CEILING, FLOOR, REFRESH, SpeculativeDelay
from tests.unit.router.fakes import StubPool
from tidings.v1 import storage_pb2

NODES = [NodeInfo(str(i), f"127.0.0.1:{7400 + i}", f"zone-{i}") for i in (1, 2, 3)]


def test_the_delay_is_the_ceiling_until_enough_reads_are_seen() -> None:
    delay = SpeculativeDelay()
    for _ in range(REFRESH - 1):
        delay.record(0.010)
    assert delay.seconds == CEILING
    delay.record(0.010)
    assert delay.seconds == 0.010


def test_the_delay_is_the_99th_percentile_of_the_window_clamped() -> None:
    delay = SpeculativeDelay(window=2 * REFRESH)
    for i in range(4 * REFRESH):
        delay.record(0.001 * (i % (2 * REFRESH) + 1))    # the window: 1, 2, ... 128 ms
    assert delay.seconds == 0.001 * (int(0.99 * 2 * REFRESH) + 1)
    quiet = SpeculativeDelay()
    for _ in range(REFRESH):
        quiet.record(0.0002)
    assert quiet.seconds == FLOOR
    slow = SpeculativeDelay()
    for _ in range(REFRESH):
        slow.record(3.0)
    assert slow.seconds == CEILING


class Node:
    def __init__(self, node_id: str, stall: float = 0.0) -> None:
        self.node_id = node_id
        self.stall = stall
        self.calls = 0

    async def ListFolders(self, request: Any) -> storage_pb2.NodeFolders:
        self.calls += 1
        await asyncio.sleep(self.stall)
        return storage_pb2.NodeFolders()



def reads(stalls: dict[int, float], count: int = 1, delay: float | None = None
          ) -> tuple[list[int], list[NodeInfo], Replicas]:
    """``count`` quorum reads of one partition; the calls each node got, in the plan's order
    (``stalls`` by rank in it), and the nodes that answered the last read."""
    pool = StubPool({})
    replicas = Replicas(Ring(NODES), pool, Consistency())
    order = replicas.read_plan("someone").contacts
    for rank, info in enumerate(order):
        pool.nodes[info.node_id] = Node(info.node_id, stalls.get(rank, 0.0))
    if delay is not None:
        replicas.speculation.seconds = delay

    async def run() -> list[NodeInfo]:
        answered: list[NodeInfo] = []
        for _ in range(count):
            outcome = await replicas.read("someone", lambda stub: stub.ListFolders(storage_pb2.NodeUserRef()))
            answered = [node for node, _ in outcome.answers]
        return answered

    answered = asyncio.run(run())
    return [pool.nodes[n.node_id].calls for n in order], answered, replicas


def test_a_quorum_read_calls_the_first_r_of_the_routers_order() -> None:
    calls, answered, replicas = reads({}, count=REFRESH)
    assert calls == [REFRESH, REFRESH, 0]
    assert set(answered) == set(replicas.read_plan("someone").contacts[:2])
    assert replicas.speculation.seconds == FLOOR   # sub-millisecond reads: the floor


def test_a_slow_replica_brings_in_the_third_after_the_delay() -> None:
    calls, answered, replicas = reads({1: 30.0}, delay=0.05)
    order = replicas.read_plan("someone").contacts
    assert calls == [1, 1, 1] and set(answered) == {order[0], order[2]}


def test_partitions_spread_over_the_nodes_and_routers_differ() -> None:
    one, other = (Replicas(Ring(NODES), NodePool(), Consistency()) for _ in range(2))
    keys = [f"user{i}" for i in range(64)]
    firsts = {one.read_plan(key).contacts[0].node_id for key in keys}
    assert firsts == {"1", "2", "3"}
    assert [one.read_plan(key).contacts for key in keys] == [one.read_plan(key).contacts for key in keys]
    assert [one.read_plan(key).contacts for key in keys] != [other.read_plan(key).contacts for key in keys]


def test_a_failed_call_is_not_a_latency() -> None:
    delay = SpeculativeDelay()

    async def failing() -> None:
        raise grpc.aio.AioRpcError(grpc.StatusCode.UNAVAILABLE, grpc.aio.Metadata(), grpc.aio.Metadata())

    async def run() -> None:
        for _ in range(REFRESH):
            try:
                await delay.timed(failing)
            except grpc.aio.AioRpcError:
                pass
    asyncio.run(run())
    assert delay.seconds == CEILING
