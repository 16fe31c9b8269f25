"""Replicas.read_one: one replica's answer, the next replica's when the first fails, and a
clear Unavailable when none answers; only as many calls as it takes."""
from __future__ import annotations

import asyncio
from typing import Any

import grpc
import pytest

from router.errors import Unavailable
from router.nodes import NodePool
from router.replicas import Consistency, Replicas
from router.ring import NodeInfo, Ring
from tests.unit.router.fakes import StubPool
from tidings.v1 import storage_pb2

NODES = [NodeInfo(str(i), f"127.0.0.1:{7200 + i}", f"zone-{i}") for i in (1, 2, 3)]
MODEL = "spam:g:0"


class Down(grpc.aio.AioRpcError):
    def __init__(self) -> None:
        super().__init__(grpc.StatusCode.UNAVAILABLE, grpc.aio.Metadata(), grpc.aio.Metadata())


class CountingNode:
    def __init__(self, node_id: str, up: bool) -> None:
        self.node_id = node_id
        self.up = up
        self.calls = 0

    async def SpamCounts(self, request: Any) -> storage_pb2.SpamCountsResponse:
        self.calls += 1
        if not self.up:
            raise Down()
        return storage_pb2.SpamCountsResponse(spam_messages=int(self.node_id))



def read(up: dict[str, bool]) -> tuple[int, dict[str, int]]:
    nodes = {n.node_id: CountingNode(n.node_id, up[n.node_id]) for n in NODES}
    replicas = Replicas(Ring(NODES), StubPool(nodes), Consistency())
    preference = [n.node_id for n in sorted(replicas.plan(MODEL), key=replicas._rank)]

    async def run() -> int:
        outcome = await replicas.read_one(MODEL, lambda stub: stub.SpamCounts(storage_pb2.SpamCountsRequest()))
        [(node, answer)] = outcome.answers
        assert answer.spam_messages == int(node.node_id)
        return answer.spam_messages

    answered = asyncio.run(run())
    return answered, {i: nodes[i].calls for i in preference}


def test_the_first_replica_alone_is_asked() -> None:
    answered, calls = read({"1": True, "2": True, "3": True})
    assert str(answered) == next(iter(calls))
    assert list(calls.values()) == [1, 0, 0]


def test_a_failed_replica_passes_the_read_to_the_next() -> None:
    for down in "123":
        answered, calls = read({i: i != down for i in "123"})
        order = list(calls)    # the router's order: the first is asked, the next only if the first failed
        if order[0] == down:
            assert str(answered) == order[1] and list(calls.values()) == [1, 1, 0]
        else:
            assert str(answered) == order[0] and list(calls.values()) == [1, 0, 0]


def test_one_router_sends_every_partition_to_the_same_first_node() -> None:
    replicas = Replicas(Ring(NODES), NodePool(), Consistency())
    firsts = {min(replicas.plan(f"spam:g:{k}"), key=replicas._rank).node_id for k in range(8)}
    assert len(firsts) == 1       # N = 3 of 3 nodes: every shard has every node


def test_no_replica_answering_is_unavailable() -> None:
    with pytest.raises(Unavailable):
        read({"1": False, "2": False, "3": False})


def test_reads_of_two_partitions_ranked_by_one_key_ask_the_same_nodes_first() -> None:
    replicas = Replicas(Ring(NODES), NodePool(), Consistency())
    users = [f"{i:016x}" for i in range(40)]
    apart = [replicas.read_plan(f"folders:{u}").contacts[:2] != replicas.read_plan(u).contacts[:2] for u in users]
    assert any(apart)                     # each partition its own order: often two other nodes first
    for user in users:
        assert replicas.read_plan(f"folders:{user}", rank_key=user).contacts == replicas.read_plan(user).contacts
