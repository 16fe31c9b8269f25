"""The proposer of the mailbox order: puts a user's changes (intents) into the next slot
of the user's log on the N replicas, chosen by Paxos, and returns once W of them have
folded it (so a feed read of R replicas sees it: R + W > N).

Multi-Paxos without a fixed leader (docs/architecture.md, "Mailbox order"): a router that
holds a promise for a user accepts slot after slot in one round trip each; another router
writing the same mailbox prepares with a higher ballot and takes over, finishing whatever
its predecessor left accepted. Concurrent changes of one user are grouped into one slot,
so a burst of deliveries costs one round, not one each. Every replica folds the chosen
slots in slot order into UIDs and MODSEQs; this module never computes them.
"""
from __future__ import annotations

import asyncio
import logging
import random
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeAlias, TypeVar

import grpc
from prometheus_client import Counter, Histogram

from router.errors import InvalidArgument, QuorumFailure, Unavailable
from router.replicas import Replicas, judge_rpc
from router.ring import NodeInfo
from tidings.v1 import storage_pb2, storage_pb2_grpc

Stub: TypeAlias = storage_pb2_grpc.StorageNodeStub
T = TypeVar("T")
log = logging.getLogger(__name__)

PROPOSER_BITS = 24
MAX_GROUP = 256                 # intents per slot
MAX_ATTEMPTS = 12
LEADS_KEPT = 100_000            # users whose promise this router remembers
CHOSEN_BALLOT = (1 << 64) - 1

ROUNDS = Counter("tidings_order_rounds_total", "Mailbox-order Paxos rounds by phase and result", ["phase", "result"])
GROUP = Histogram("tidings_order_group_size", "Changes ordered in one slot", buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256))

Intent = storage_pb2.OrderIntent
_background: set[asyncio.Future[Any]] = set()


class _Rejected(Exception):
    """A higher ballot is promised (another router leads this mailbox now)."""

    def __init__(self, ballot: int) -> None:
        super().__init__(f"ballot {ballot} promised")
        self.ballot = ballot


@dataclass
class _Lead:
    ballot: int
    next_slot: int
    prepared: bool = True


@dataclass
class _Queue:
    pending: list[tuple[list[storage_pb2.OrderIntent], asyncio.Future[int]]] = field(default_factory=list)
    running: bool = False


def ballot_round(ballot: int) -> int:
    return ballot >> PROPOSER_BITS


class MailboxOrder:
    def __init__(self, replicas: Replicas, proposer_id: int | None = None,
                 on_applied: Callable[[str, int], None] | None = None) -> None:
        self.replicas = replicas
        self.proposer_id = proposer_id if proposer_id is not None else random.getrandbits(PROPOSER_BITS)
        self._leads: OrderedDict[str, _Lead] = OrderedDict()
        self._queues: dict[str, _Queue] = {}
        self._on_applied = on_applied

    # -- the API ------------------------------------------------------------------------
    async def append(self, user_id: str, intents: list[storage_pb2.OrderIntent]) -> int:
        """Order the intents (with whatever else of this user is waiting); the MODSEQ folded
        by W replicas afterwards."""
        queue = self._queues.setdefault(user_id, _Queue())
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        queue.pending.append((intents, future))
        if not queue.running:
            queue.running = True
            task = asyncio.create_task(self._drain(user_id, queue))
            _background.add(task)
            task.add_done_callback(_background.discard)
        return await future

    async def _drain(self, user_id: str, queue: _Queue) -> None:
        try:
            while queue.pending:
                group: list[tuple[list[storage_pb2.OrderIntent], asyncio.Future[int]]] = []
                count = 0
                while queue.pending and (not group or count + len(queue.pending[0][0]) <= MAX_GROUP):
                    intents, future = queue.pending.pop(0)
                    group.append((intents, future))
                    count += len(intents)
                GROUP.observe(count)
                try:
                    modseq = await self._order(user_id, [i for intents, _ in group for i in intents])
                except Exception as exc:
                    for _, future in group:
                        if not future.done():
                            future.set_exception(exc)
                else:
                    for _, future in group:
                        if not future.done():
                            future.set_result(modseq)
        finally:
            queue.running = False
            if not queue.pending and self._queues.get(user_id) is queue:
                del self._queues[user_id]

    # -- Paxos --------------------------------------------------------------------------
    async def _order(self, user_id: str, intents: list[storage_pb2.OrderIntent]) -> int:
        value = storage_pb2.OrderValue(intents=intents, time_ms=int(time.time() * 1000))
        higher = 0
        for attempt in range(MAX_ATTEMPTS):
            lead = self._leads.get(user_id)
            try:
                if lead is None or not lead.prepared:
                    lead = await self._prepare(user_id, lead, higher)
                slot = lead.next_slot
                chosen = await self._accept(user_id, lead.ballot, slot, value)
                lead.next_slot = slot + 1
                modseq = await self._commit(user_id, slot, chosen)
                if chosen is value:
                    return modseq
                lead.prepared = False        # someone else chose this slot: our promise is stale
            except _Rejected as exc:
                ROUNDS.labels("accept" if lead is not None and lead.prepared else "prepare", "rejected").inc()
                higher = max(higher, exc.ballot)
                if lead is not None:
                    lead.prepared = False
                await asyncio.sleep(random.uniform(0, 0.005 * (attempt + 1)))   # let the other round finish
        raise Unavailable(f"mailbox order of {user_id}: still contended after {MAX_ATTEMPTS} rounds")

    def _ballot(self, lead: _Lead | None, higher: int) -> int:
        round_ = max(ballot_round(lead.ballot) if lead else 0, ballot_round(higher)) + 1
        return (round_ << PROPOSER_BITS) | self.proposer_id

    async def _prepare(self, user_id: str, lead: _Lead | None, higher: int) -> _Lead:
        """Take the lead of the user's log, and finish every slot a predecessor left
        accepted (or a gap, with an empty value) so the log is chosen up to the tail."""
        ballot = self._ballot(lead, higher)
        request = storage_pb2.OrderPrepareRequest(user_id=user_id, from_slot=lead.next_slot if lead else 1, ballot=ballot)
        answers = [a for _, a in await self._majority(
            user_id, lambda stub: stub.OrderPrepare(request, timeout=self._timeout), lambda a: a.promised)]
        refused = [a.promised_ballot for a in answers if not a.promised]
        if len(answers) - len(refused) < self.replicas.consistency.w:
            raise _Rejected(max(refused))
        ROUNDS.labels("prepare", "promised").inc()
        through = max(a.chosen_through for a in answers)
        best: dict[int, storage_pb2.OrderAcceptedSlot] = {}
        for answer in answers:
            for held in answer.accepted:
                if held.slot > through and (held.slot not in best or held.ballot > best[held.slot].ballot):
                    best[held.slot] = held
        tail = max([through, *best])
        for slot in range(through + 1, tail + 1):
            held = best.get(slot)
            value = held.value if held is not None else storage_pb2.OrderValue()
            if held is None or held.ballot != CHOSEN_BALLOT:
                value = await self._accept(user_id, ballot, slot, value)
            await self._commit(user_id, slot, value)
        fresh = _Lead(ballot, tail + 1)
        self._leads[user_id] = fresh
        self._leads.move_to_end(user_id)
        while len(self._leads) > LEADS_KEPT:
            self._leads.popitem(last=False)
        return fresh

    async def _accept(self, user_id: str, ballot: int, slot: int, value: storage_pb2.OrderValue
                      ) -> storage_pb2.OrderValue:
        """The value chosen for `slot`: ours once W acceptors took it, or the one a replica
        already holds chosen there."""
        request = storage_pb2.OrderAcceptRequest(user_id=user_id, slot=slot, ballot=ballot, value=value)
        answers = [a for _, a in await self._majority(
            user_id, lambda stub: stub.OrderAccept(request, timeout=self._timeout), lambda a: a.accepted)]
        for answer in answers:
            if answer.already_chosen:
                ROUNDS.labels("accept", "chosen_elsewhere").inc()
                if not answer.HasField("chosen_value"):     # chosen and compacted there: learn it anew
                    raise _Rejected(answer.promised_ballot)
                return answer.chosen_value
        refused = [a.promised_ballot for a in answers if not a.accepted]
        if len(answers) - len(refused) < self.replicas.consistency.w:
            raise _Rejected(max(refused))
        ROUNDS.labels("accept", "accepted").inc()
        return value

    async def _commit(self, user_id: str, slot: int, value: storage_pb2.OrderValue) -> int:
        """Every replica gets the chosen slot; returns once W folded through it (a replica
        that misses earlier slots is sent them first), with the MODSEQ they reached."""
        request = storage_pb2.OrderCommitRequest(
            user_id=user_id, slots=[storage_pb2.OrderAcceptedSlot(slot=slot, value=value)])
        answers = await self._majority(user_id, lambda stub: stub.OrderCommit(request, timeout=self._timeout),
                                       lambda a: True)
        behind = [node for node, reply in answers if reply.applied_through < slot]
        ahead = [node for node, reply in answers if reply.applied_through >= slot]
        if behind:
            if not ahead:
                raise QuorumFailure(f"mailbox order of {user_id}: no replica has folded slot {slot}")
            caught = await asyncio.gather(*(self._catch_up(user_id, node, ahead[0], slot) for node in behind),
                                          return_exceptions=True)
            if not any(isinstance(c, storage_pb2.OrderCommitReply) and c.applied_through >= slot for c in caught) \
                    and len(ahead) < self.replicas.consistency.w:
                raise QuorumFailure(f"mailbox order of {user_id}: too few replicas folded slot {slot}")
        modseq = max(reply.modseq for _, reply in answers)
        if self._on_applied is not None:
            self._on_applied(user_id, modseq)
        return modseq

    async def _catch_up(self, user_id: str, node: NodeInfo, source: NodeInfo, through: int
                        ) -> storage_pb2.OrderCommitReply:
        """Send a replica the chosen slots it misses, from one that has folded them."""
        reply = storage_pb2.OrderCommitReply()
        applied = -1
        while True:
            status = await self._rpc(node, "OrderCommit", storage_pb2.OrderCommitRequest(user_id=user_id))
            if status.applied_through >= through or status.applied_through == applied:
                return status if status.applied_through >= through else reply
            applied = status.applied_through
            held = await self._rpc(source, "OrderSlots", storage_pb2.OrderSlotsRequest(
                user_id=user_id, after_slot=applied, through_slot=through))
            if not held.slots:
                log.warning("mailbox order of %s: %s cannot catch up from %s after slot %d", user_id,
                            node.node_id, source.node_id, applied)
                return status
            reply = await self._rpc(node, "OrderCommit", storage_pb2.OrderCommitRequest(user_id=user_id, slots=held.slots))
            if reply.applied_through >= through:
                return reply

    # -- calls --------------------------------------------------------------------------
    async def _rpc(self, node: NodeInfo, method: str, request: object) -> Any:
        return await self.replicas.call(node, lambda stub: getattr(stub, method)(request, timeout=self._timeout))

    @property
    def _timeout(self) -> float:
        return self.replicas.consistency.timeout

    def acceptors(self, user_id: str) -> list[NodeInfo]:
        """The user's N replicas under the current ring: the acceptors of its log."""
        return self.replicas.plan(user_id)

    async def _majority(self, user_id: str, call: Callable[[Stub], Awaitable[T]], yes: Callable[[T], bool]
                        ) -> list[tuple[NodeInfo, T]]:
        """Ask every acceptor at once; return the answers once W said yes or no more can (with
        a refusal among them, for the caller to retry under a higher ballot; with too few
        answers and none refusing, QuorumFailure). Calls still running keep going (the third
        replica gets an accept or a commit too)."""
        need = self.replicas.consistency.w
        tasks = {asyncio.ensure_future(self.replicas.call(node, call)): node for node in self.acceptors(user_id)}
        answers: list[tuple[NodeInfo, T]] = []
        failures: list[str] = []
        pending = set(tasks)
        deadline = asyncio.get_running_loop().time() + self._timeout
        try:
            while pending:
                done, pending = await asyncio.wait(pending, timeout=max(0.0, deadline - asyncio.get_running_loop().time()),
                                                   return_when=asyncio.FIRST_COMPLETED)
                if not done:
                    break
                for task in done:
                    exc = task.exception()
                    if exc is None:
                        answers.append((tasks[task], task.result()))
                        continue
                    reply, reason = judge_rpc(exc)
                    if isinstance(exc, grpc.aio.AioRpcError) and exc.code() == grpc.StatusCode.INVALID_ARGUMENT:
                        raise InvalidArgument(reason)
                    failures.append(f"node {tasks[task].node_id}: {reason}")
                said_yes = sum(1 for _, a in answers if yes(a))
                if said_yes >= need or said_yes + len(pending) < need:
                    break
        finally:
            for task in pending:
                _background.add(task)
                task.add_done_callback(_forget)
        refused = any(not yes(a) for _, a in answers)   # the caller takes a higher ballot and tries again
        if sum(1 for _, a in answers if yes(a)) < need and not refused:
            raise QuorumFailure(f"mailbox order of {user_id}: {len(answers)} of {need} acceptors answered "
                                f"({'; '.join(failures) or 'timed out'})")
        return answers


def _forget(task: asyncio.Future[Any]) -> None:
    _background.discard(task)
    if not task.cancelled() and task.exception() is not None:
        log.debug("late mailbox-order call failed: %s", task.exception())

