"""The replica layer every router operation goes through: a plan first (plan.py: the
contacts, block-for and hints, from the ring, the pending ring and the failure detector),
then the quorum call over gRPC (each failed call judged by its status code), failure
detection, hints for replicas that miss a write, and version merges.

A quorum read calls R replicas, not N: the first R of the read plan, in this router's
keyed-hash order of (partition, node) with the replicas seen up first, and another one
when one of them fails, or after the speculative delay (speculation.py: the p99 of this
router's recent read calls, clamped to 5-200 ms) when they have not all answered."""
from __future__ import annotations

import asyncio
import hashlib
import random
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any, TypeAlias, TypeVar

import grpc

from router.errors import Unavailable
from router.hints import HintWriter
from router.liveness import NODE_FAILURES, FailureDetector
from router.mutations import Mutation
from router.nodes import NodePool
from router.plan import Consistency, ReadPlan, WritePlan, read_plan, write_plan
from router.quorum import Outcome, Reply, quorum
from router.ring import NodeInfo, Ring
from router.speculation import SpeculativeDelay
from tidings.v1 import storage_pb2_grpc

T = TypeVar("T")
Stub: TypeAlias = storage_pb2_grpc.StorageNodeStub

__all__ = ["Consistency", "Replicas", "judge_rpc", "newest"]

_REPLY_OF = {
    grpc.StatusCode.NOT_FOUND: Reply.NOT_FOUND,
    grpc.StatusCode.INVALID_ARGUMENT: Reply.REJECTED,
    grpc.StatusCode.DEADLINE_EXCEEDED: Reply.TIMED_OUT,
}


def judge_rpc(exc: BaseException) -> tuple[Reply, str]:
    """A failed storage call as the quorum counts it, with its reason."""
    if isinstance(exc, grpc.aio.AioRpcError):
        reply = _REPLY_OF.get(exc.code(), Reply.FAILED)
        details = exc.details() or ""
        return reply, details if reply is Reply.REJECTED else f"{exc.code().name} {details}".strip()
    return Reply.FAILED, repr(exc)


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
        self._salt = random.getrandbits(64).to_bytes(8, "big")   # this router's orders of the nodes
        self.speculation = SpeculativeDelay()

    def _rank(self, node: NodeInfo) -> bytes:
        """This router's order of the nodes, the same for every partition (read_one)."""
        return hashlib.blake2b(node.node_id.encode(), key=self._salt, digest_size=8).digest()

    def _read_rank(self, partition_key: str, node: NodeInfo) -> bytes:
        """This router's order of a partition's replicas for quorum reads."""
        return hashlib.blake2b(f"{partition_key}\0{node.node_id}".encode(), key=self._salt, digest_size=8).digest()

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

    def write_plan(self, partition_key: str) -> WritePlan:
        """The write's plan under the current ring, and the pending one while it moves."""
        return write_plan(self.ring, self.pending, partition_key, self.consistency, self.detector.is_up)

    def read_plan(self, partition_key: str, rank_key: str | None = None) -> ReadPlan:
        """The read's contacts in the order to call them (the first R first), ranked as
        `rank_key`'s replicas would be when it is given (below)."""
        rank = self._read_rank if rank_key is None else (lambda _, node: self._read_rank(rank_key, node))
        return read_plan(self.ring, partition_key, self.consistency, self.detector.is_up, rank)

    async def write(self, partition_key: str, mutation: Mutation) -> Outcome[Any]:
        """W of the plan's contacts take the write; the replicas seen down get a hint at once."""
        plan = self.write_plan(partition_key)
        timeout = self.consistency.timeout
        epoch = self._epoch
        acknowledged: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        for node in plan.hinted:
            self.hints.hold(partition_key, node, mutation)

        async def attempt(node: NodeInfo) -> object:
            try:
                return await self._carrying(epoch, node, partition_key, [mutation],
                                            lambda stub: mutation.send(stub, timeout))
            except grpc.aio.AioRpcError as exc:
                if exc.code() == grpc.StatusCode.NOT_FOUND and mutation.method == "UpdateMessage":
                    # The replica has not got the message yet (its store is still on the way,
                    # or a hint): if the update was acknowledged, replay it there later.
                    self.hints.hold_if(acknowledged, partition_key, node, mutation)
                raise

        try:
            outcome = await quorum(plan, attempt, timeout, judge_rpc)
        except BaseException:
            acknowledged.set_result(False)
            raise
        acknowledged.set_result(True)
        return outcome

    async def call_carrying(self, node: NodeInfo, partition_key: str, mutations: Sequence[Mutation],
                            call: Callable[[Stub], Awaitable[T]]) -> T:
        """One call to one node that carries writes of the partition (the mailbox order's
        accept with the messages it creates): a write in flight for `settle`, and the writes
        held as hints for the node when it fails as a node does."""
        return await self._carrying(self._epoch, node, partition_key, mutations, call)

    async def _carrying(self, epoch: int, node: NodeInfo, partition_key: str, mutations: Sequence[Mutation],
                        call: Callable[[Stub], Awaitable[T]]) -> T:
        self._inflight[epoch] += 1
        try:
            return await self.call(node, call)
        except grpc.aio.AioRpcError as exc:
            if exc.code() in NODE_FAILURES:
                for mutation in mutations:
                    self.hints.hold(partition_key, node, mutation)
            raise
        finally:
            self._inflight[epoch] -= 1

    async def read(self, partition_key: str, call: Callable[[Stub], Awaitable[T]],
                   rank_key: str | None = None) -> Outcome[T]:
        """R answers from the replicas: R of them called, another on a failure or after the
        speculative delay; those seen down are skipped while enough others are up. A read made
        beside another partition's (a folder list: the user's counters and the user's folder
        names) passes that partition as `rank_key`: the nodes that hold both are then asked
        in the same order, so both reads share their batches."""
        return await self.read_quorum(self.read_plan(partition_key, rank_key), call)

    async def read_quorum(self, plan: ReadPlan, call: Callable[[Stub], Awaitable[T]]) -> Outcome[T]:
        """A read plan's quorum of ``call`` with the speculative retry, each call's latency kept
        for the speculative delay."""
        return await quorum(plan, lambda node: self.speculation.timed(lambda: self.call(node, call)),
                            self.consistency.timeout, judge_rpc, self.speculation.seconds)

    async def read_one(self, partition_key: str, call: Callable[[Stub], Awaitable[T]]) -> Outcome[T]:
        """One replica's answer: the first live replica's, the next one's when it fails. For
        reads whose answer may be approximate (the spam models' counts: a classifier reads
        statistics, and a replica that missed some training still classifies), a third of
        the calls of a quorum read. "First" is this router's own order of the nodes (random,
        fixed for its life): reads of several partitions at once (the global spam model's
        shards) then go to one node, where they share one coalesced RPC, while other
        routers, in their own orders, spread the load."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.consistency.timeout
        unavailable: Unavailable | None = None
        for node in sorted(self.read_plan(partition_key).contacts, key=self._rank):
            try:
                return await quorum(ReadPlan((node,), 1), lambda n: self.call(n, call),
                                    max(0.0, deadline - loop.time()), judge_rpc)
            except Unavailable as exc:     # failed or timed out: the next replica
                unavailable = exc
        assert unavailable is not None, "a read plan has contacts"
        raise unavailable

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


def newest(answers: list[T], version: Callable[[T], int | tuple[bool, int]]) -> T | None:
    return max(answers, key=version, default=None)
