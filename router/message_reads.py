"""Reading messages with their bodies: the digest read (Cassandra's, service/reads): the
records and bodies from one replica, only each copy's version (and tombstone) from R-1 others,
so a body crosses the wire once, not R times.

The answer is still the newest of R replicas. A message whose newest copy the first replica
holds (or ties) is answered from it; one it lacks, or holds older than another replica's, is
read again in full from the replica with the newest copy. When the first replica fails, or
is slower than the speculative delay of body reads (speculation.py's percentile over this
reader's own full reads, at most ``SPECULATE_AFTER``: a body read is slower than a listing,
so it has a window of its own), the read falls back to full reads from R of the others.
The digests are a quorum read of R-1 of the others (the replica layer's: another called on
a failure or after its speculative delay). Read repair sees every copy's version, so a
stale or missing replica is repaired as after a full read. The first replica is the read
plan's first, this router's choice for the user (replicas.py: a keyed hash of user and
node), so a user's reads go to one node, whose caches are warm, and different users' to
different nodes.

Many ids are one call to each replica (one partition: a user's messages share their replicas);
an answer carries about ``MESSAGES_BYTES`` of bodies (storage_node/service.py), and the ids the
first replica had no room for are returned in ``more``, to read again.
"""
from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from typing import Any

import grpc

from router import read_repair
from router.errors import InvalidArgument, QuorumFailure
from router.plan import ReadPlan
from router.quorum import Reply, quorum
from router.replicas import Replicas, judge_rpc
from router.ring import NodeInfo
from router.speculation import SpeculativeDelay
from tidings.v1 import storage_pb2


@dataclass
class Read:
    """Live messages (newest of R, with their bodies) by id; ids held by none of R or expunged;
    ids not read this time (the answer's size)."""

    found: dict[str, storage_pb2.StoredMessage] = field(default_factory=dict)
    missing: list[str] = field(default_factory=list)
    more: list[str] = field(default_factory=list)


Answers = list[tuple[NodeInfo, storage_pb2.StoredMessages]]
SPECULATE_AFTER = 0.5   # s: the most a first replica reading bodies is waited for before the others


class _FirstFailed(Exception):
    """The replica read in full failed: the others are read in full instead."""


async def _first_of(digest_read: Coroutine[Any, Any, Answers], full_reads: Callable[[], Coroutine[Any, Any, Answers]],
                    after: float) -> Answers:
    """The digest read's answers; if its first replica fails, or has not answered ``after``
    seconds in (Cassandra's speculative retry), the full reads' too, whichever succeeds first."""
    primary = asyncio.ensure_future(digest_read)
    done, _ = await asyncio.wait({primary}, timeout=after)
    if done and not isinstance(primary.exception(), _FirstFailed):
        return primary.result()
    backup = asyncio.ensure_future(full_reads())
    try:
        failure: Exception | None = None
        for finished in asyncio.as_completed((primary, backup)):
            try:
                return await finished
            except _FirstFailed:
                continue
            except Exception as exc:  # noqa: BLE001 - the other read may still answer
                failure = failure or exc
        assert failure is not None
        raise failure
    finally:
        for task in (primary, backup):
            if not task.done():
                task.cancel()


class MessageReader:
    def __init__(self, replicas: Replicas, repair: read_repair.ReadRepair) -> None:
        self.replicas = replicas
        self.repair = repair
        self.speculation = SpeculativeDelay(ceiling=SPECULATE_AFTER)   # of the first replica's full reads

    async def read(self, user_id: str, ids: Sequence[str], *, headers: bool = False) -> Read:
        ids = list(dict.fromkeys(ids))
        plan = self.replicas.read_plan(user_id)
        timeout = self.replicas.consistency.timeout
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        first, *others = plan.contacts      # the plan's order: the first is read in full
        full = storage_pb2.NodeMessagesRequest(user_id=user_id, ids=ids, raw=True, headers=headers)
        digest = storage_pb2.NodeMessagesRequest(user_id=user_id, ids=ids)

        async def by_digests() -> Answers:
            """The first replica's bodies and R-1 others' versions; _FirstFailed if it fails."""
            async def data() -> storage_pb2.StoredMessages:
                try:
                    return await self.speculation.timed(lambda: self.replicas.call(
                        first, lambda stub: stub.GetMessages(full, timeout=timeout)))
                except grpc.aio.AioRpcError as exc:
                    reply, reason = judge_rpc(exc)
                    if reply is Reply.REJECTED:
                        raise InvalidArgument(reason) from None
                    raise _FirstFailed(reason) from None

            async def digests() -> Answers:
                if plan.block_for <= 1:
                    return []
                outcome = await self.replicas.read_quorum(
                    ReadPlan(tuple(others), plan.block_for - 1),
                    lambda stub: stub.GetMessages(digest, timeout=timeout))
                return outcome.answers

            held, versions = await asyncio.gather(data(), digests())
            return [(first, held), *versions]

        async def by_full_reads() -> Answers:
            """R full reads from the others (the first replica failed, or is slow)."""
            outcome = await quorum(ReadPlan(tuple(others), plan.block_for),
                                   lambda node: self.replicas.call(
                                       node, lambda stub: stub.GetMessages(full, timeout=timeout)),
                                   max(deadline - loop.time(), timeout / 2), judge_rpc)
            return outcome.answers

        answers = await _first_of(by_digests(), by_full_reads, self.speculation.seconds)
        return await self._merge(user_id, ids, answers, full, timeout)

    async def _merge(self, user_id: str, ids: list[str], answers: Answers,
                     full: storage_pb2.NodeMessagesRequest, timeout: float) -> Read:
        """The newest copy of each id among the answers; those whose newest copy came without its
        body are read again from its replica. The first answer is the one read in full (ties go
        to it)."""
        read = Read()
        by_node = [(node, {m.summary.id: m for m in answer.messages}) for node, answer in answers]
        more = {i for _, answer in answers for i in answer.more}     # digests have none
        again: dict[NodeInfo, list[str]] = defaultdict(list)
        repairs: list[read_repair.Repair] = []
        for message_id in ids:
            if message_id in more:
                read.more.append(message_id)
                continue
            copies = [(node, held[message_id]) for node, held in by_node if message_id in held]
            absent = [node for node, held in by_node if message_id not in held]
            if not copies:
                read.missing.append(message_id)
                continue
            node, best = max(copies, key=lambda c: read_repair.held_order(c[1]))
            if not best.tombstone and node is not answers[0][0] and not best.raw:
                again[node].append(message_id)
                continue
            self._settle(read, message_id, best)
            repairs += read_repair.for_message(message_id, copies, absent)
        for node, wanted in again.items():
            try:
                answer = await self._full(node, storage_pb2.NodeMessagesRequest(
                    user_id=user_id, ids=wanted, raw=True, headers=full.headers), timeout)
            except grpc.aio.AioRpcError as exc:
                raise QuorumFailure(f"node {node.node_id} holds the newest copy and failed: {judge_rpc(exc)[1]}") from None
            read.more += answer.more
            fetched = {m.summary.id: m for m in answer.messages}
            for message_id in wanted:
                if message_id not in fetched:
                    if message_id not in answer.more:
                        read.missing.append(message_id)    # gone from it meanwhile
                    continue
                copies = [(n, fetched[message_id] if n is node else held[message_id])
                          for n, held in by_node if message_id in held]
                absent = [n for n, held in by_node if message_id not in held]
                _, best = max(copies, key=lambda c: read_repair.held_order(c[1]))
                self._settle(read, message_id, best)
                repairs += read_repair.for_message(message_id, copies, absent)
        self.repair.submit(user_id, repairs)
        return read

    async def _full(self, node: NodeInfo, request: storage_pb2.NodeMessagesRequest,
                    timeout: float) -> storage_pb2.StoredMessages:
        return await self.replicas.call(node, lambda stub: stub.GetMessages(request, timeout=timeout))

    @staticmethod
    def _settle(read: Read, message_id: str, best: storage_pb2.StoredMessage) -> None:
        if best.tombstone:
            read.missing.append(message_id)
        else:
            read.found[message_id] = best
