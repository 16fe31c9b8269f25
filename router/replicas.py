"""The replica layer every router operation goes through: plan (preference list of the
partition, plus the pending owners while the ring changes), quorum call with the
cluster's N, W, R and deadline, failure detection, hints for replicas that miss a write,
and version merges."""
from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import dataclass
from typing import Awaitable, Callable, Iterable, TypeVar

import grpc

from router.hints import HintWriter
from router.liveness import NODE_FAILURES, FailureDetector
from router.mutations import Mutation
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


class NodeDown(Exception):
    """Not sent: the failure detector sees the replica as down (the write became a hint)."""


class Replicas:
    def __init__(self, ring: Ring, pool: NodePool, consistency: Consistency,
                 detector: FailureDetector | None = None) -> None:
        self.ring = ring
        # While membership changes, the ring being moved to: its new owners get every write too.
        self.pending: Ring | None = None
        self.pool = pool
        self.consistency = consistency
        self.detector = detector or FailureDetector(pool.channel)
        self.hints = HintWriter(lambda: self.ring, pool, self.detector, consistency.n, consistency.timeout)
        # Writes in flight (stragglers included) by the plan epoch they were planned under.
        self._epoch = 0
        self._inflight: Counter[int] = Counter()

    async def settle(self) -> None:
        """Start a new plan epoch (after `ring` or `pending` changed) and wait until no write
        planned under an earlier one is still in flight: from then on every write in flight
        follows the current plan. Writes end by their deadline, so this is bounded."""
        self._epoch += 1
        current = self._epoch
        while any(count for epoch, count in self._inflight.items() if epoch < current):
            await asyncio.sleep(0.01)

    def plan(self, partition_key: str) -> list[NodeInfo]:
        return self.ring.preference_list(partition_key, self.consistency.n)

    def write_plan(self, partition_key: str) -> tuple[list[NodeInfo], int]:
        """Targets and how many must take the write. With a pending ring, the new owners
        are added and W grows by their number (Cassandra's pending ranges), so W of the
        replicas hold it under either ring, whichever serves when the change completes."""
        targets = self.plan(partition_key)
        if self.pending is None:
            return targets, self.consistency.w
        extra = [n for n in self.pending.preference_list(partition_key, self.consistency.n) if n not in targets]
        return targets + extra, self.consistency.w + len(extra)

    async def write(self, partition_key: str, mutation: Mutation) -> Outcome[object]:
        targets, block_for = self.write_plan(partition_key)
        trust_detector = len(self.detector.live(targets)) >= block_for
        timeout = self.consistency.timeout
        epoch = self._epoch
        acknowledged: asyncio.Future[bool] = asyncio.get_running_loop().create_future()

        async def attempt(node: NodeInfo) -> object:
            if trust_detector and not self.detector.is_up(node):
                self.hints.hold(partition_key, node, mutation)
                raise NodeDown(f"node {node.node_id} is down; hinted")
            self._inflight[epoch] += 1
            try:
                return await self.call(node, lambda stub: mutation.send(stub, timeout))
            except grpc.aio.AioRpcError as exc:
                if exc.code() in NODE_FAILURES:
                    self.hints.hold(partition_key, node, mutation)
                elif exc.code() == grpc.StatusCode.NOT_FOUND and mutation.method == "UpdateMessage":
                    # The replica has not got the message yet (its store is still on the way,
                    # or a hint): if the update was acknowledged, replay it there later.
                    self.hints.hold_if(acknowledged, partition_key, node, mutation)
                raise
            finally:
                self._inflight[epoch] -= 1

        try:
            outcome = await quorum(targets, attempt, block_for, timeout, is_write=True)
        except BaseException:
            acknowledged.set_result(False)
            raise
        acknowledged.set_result(True)
        return outcome

    async def read(self, partition_key: str, call: Callable[[Stub], Awaitable[T]]) -> Outcome[T]:
        """R answers from the replicas; those seen down are skipped while enough others are up."""
        c = self.consistency
        nodes = self.plan(partition_key)
        live = self.detector.live(nodes)
        return await quorum(live if len(live) >= c.r else nodes, lambda node: self.call(node, call),
                            c.r, c.timeout, is_write=False)

    async def call(self, node: NodeInfo, call: Callable[[Stub], Awaitable[T]]) -> T:
        """One call to one node, telling the failure detector what happened."""
        try:
            answer = await call(self.pool.stub(node))
        except grpc.aio.AioRpcError as exc:
            self.detector.failed(node, exc.code())
            raise
        self.detector.answered(node)
        return answer

    async def each(self, nodes: Iterable[NodeInfo], call: Callable[[Stub], Awaitable[T]]
                   ) -> tuple[dict[NodeInfo, T], dict[NodeInfo, grpc.aio.AioRpcError]]:
        """The same call on every node at once: the answers, and the failures, by node."""
        nodes = list(nodes)
        results = await asyncio.gather(*(self.call(n, call) for n in nodes), return_exceptions=True)
        answers: dict[NodeInfo, T] = {}
        failures: dict[NodeInfo, grpc.aio.AioRpcError] = {}
        for node, result in zip(nodes, results):
            if isinstance(result, grpc.aio.AioRpcError):
                failures[node] = result
            elif isinstance(result, BaseException):
                raise result
            else:
                answers[node] = result
        return answers, failures


def newest(answers: list[T], version: Callable[[T], int]) -> T | None:
    return max(answers, key=version, default=None)
