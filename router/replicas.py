"""The replica layer every router operation goes through: plan (preference list of the
partition), quorum call with the cluster's N, W, R and deadline, and version merges."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Awaitable, Callable, TypeVar

from router.nodes import NodePool
from router.quorum import Outcome, quorum
from router.ring import NodeInfo, Ring
from tidings.v1 import storage_pb2_grpc

T = TypeVar("T")
Stub = storage_pb2_grpc.StorageNodeStub


@dataclass(frozen=True)
class Consistency:
    n: int = 3
    w: int = 2
    r: int = 2
    timeout: float = 5.0


class Replicas:
    def __init__(self, ring: Ring, pool: NodePool, consistency: Consistency) -> None:
        self.ring = ring
        self.pool = pool
        self.consistency = consistency

    def plan(self, partition_key: str) -> list[NodeInfo]:
        return self.ring.preference_list(partition_key, self.consistency.n)

    async def write(self, partition_key: str, call: Callable[[Stub], Awaitable[T]]) -> Outcome[T]:
        c = self.consistency
        return await quorum(self.plan(partition_key), lambda node: call(self.pool.stub(node)),
                            c.w, c.timeout, is_write=True)

    async def read(self, partition_key: str, call: Callable[[Stub], Awaitable[T]]) -> Outcome[T]:
        c = self.consistency
        return await quorum(self.plan(partition_key), lambda node: call(self.pool.stub(node)),
                            c.r, c.timeout, is_write=False)


def newest(answers: list[T], version: Callable[[T], int]) -> T | None:
    return max(answers, key=version, default=None)
