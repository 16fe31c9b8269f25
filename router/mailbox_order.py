"""The proposer of the mailbox order: puts a user's changes (intents) into the next slot
of the user's log on the N replicas, chosen by Paxos, and returns once W of them have
folded it (so a feed read of R replicas sees it: R + W > N).

Multi-Paxos without a fixed leader (docs/architecture.md, "Mailbox order"): a router that
holds a promise for a user accepts slot after slot in one round trip each; another router
writing the same mailbox prepares with a higher ballot and takes over, finishing whatever
its predecessor left accepted. Concurrent changes of one user are grouped into one slot,
so a burst of deliveries costs one round, not one each. Every replica folds the chosen
slots in slot order into UIDs and MODSEQs; this module never computes them.

A delivery's store can ride its accept (`append(..., stores=)`): each acceptor writes the
messages and the accept in one synced write, so once W accepted, the messages are durable
on those W (and the third, or a hint for it, follows), one round instead of two.
"""
from __future__ import annotations

import asyncio
import dataclasses
import logging
import random
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeAlias, TypeVar

import grpc
from prometheus_client import Counter, Histogram

from router.errors import InvalidArgument, QuorumFailure, Unavailable
from router.mutations import Mutation
from router.order_config import Config, OrderRings
from router.replicas import Replicas, judge_rpc
from router.ring import NodeInfo, Ring
from tidings.v1 import storage_pb2, storage_pb2_grpc
from tidings_runtime.partitions import partition_token

Stub: TypeAlias = storage_pb2_grpc.StorageNodeStub
T = TypeVar("T")
log = logging.getLogger(__name__)

PROPOSER_BITS = 24
MAX_GROUP = 256                 # intents per slot
RIDING_LIMIT = 256 * 1024       # a larger message is stored on its own first (its body goes to the object store)
MAX_RIDING_BYTES = 2 * 1024 * 1024   # message bytes riding one accept
MAX_ATTEMPTS = 12
LEADS_KEPT = 100_000            # users whose promise this router remembers
CHOSEN_BALLOT = (1 << 64) - 1

ROUNDS = Counter("tidings_order_rounds_total", "Mailbox-order Paxos rounds by phase and result", ["phase", "result"])
GROUP = Histogram("tidings_order_group_size", "Changes ordered in one slot", buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256))

Intent = storage_pb2.OrderIntent
_background: set[asyncio.Future[Any]] = set()


class _Reconfigured(Exception):
    """A node refused the round's rings (OrderConfig) as older than its fence."""


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
    config: tuple[int, int, int] = (0, 0, 0)     # the rings it was prepared under (Config.key)


@dataclass
class _Waiting:
    intents: list[storage_pb2.OrderIntent]
    stores: list[storage_pb2.StoreMessageRequest]
    future: asyncio.Future[int]
    alone: bool = False       # in a slot of its own (after its group was refused as invalid)

    @property
    def riding_bytes(self) -> int:
        return sum(len(store.raw) for store in self.stores)


@dataclass
class _Queue:
    pending: list[_Waiting] = field(default_factory=list)
    running: bool = False

    def take_group(self) -> list[_Waiting]:
        """The next slot's changes: the first waiting, and those after it up to MAX_GROUP
        intents and MAX_RIDING_BYTES of riding messages (an `alone` one takes a slot alone)."""
        group = [self.pending.pop(0)]
        count, riding = len(group[0].intents), group[0].riding_bytes
        while not group[0].alone and self.pending and not self.pending[0].alone:
            nxt = self.pending[0]
            if count + len(nxt.intents) > MAX_GROUP or riding + nxt.riding_bytes > MAX_RIDING_BYTES:
                break
            group.append(self.pending.pop(0))
            count, riding = count + len(nxt.intents), riding + nxt.riding_bytes
        return group


def ballot_round(ballot: int) -> int:
    return ballot >> PROPOSER_BITS


class MailboxOrder:
    def __init__(self, replicas: Replicas, proposer_id: int | None = None,
                 on_applied: Callable[[str, int], None] | None = None,
                 adopt_ring: Callable[[Ring], None] | None = None) -> None:
        self.replicas = replicas
        self.rings = OrderRings(replicas, adopt_ring)
        self.proposer_id = proposer_id if proposer_id is not None else random.getrandbits(PROPOSER_BITS)
        self._leads: OrderedDict[str, _Lead] = OrderedDict()
        self._queues: dict[str, _Queue] = {}
        self._on_applied = on_applied

    # -- the API ------------------------------------------------------------------------
    async def append(self, user_id: str, intents: list[storage_pb2.OrderIntent],
                     stores: Sequence[storage_pb2.StoreMessageRequest] = ()) -> int:
        """Order the intents (with whatever else of this user is waiting); the MODSEQ folded
        by W replicas afterwards. `stores`, the user's messages the intents create (each at
        most RIDING_LIMIT bytes), are written by every acceptor with the accept."""
        if any(store.user_id != user_id or len(store.raw) > RIDING_LIMIT for store in stores):
            raise ValueError("only the user's own messages of at most RIDING_LIMIT bytes ride an accept")
        queue = self._queues.setdefault(user_id, _Queue())
        future: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        queue.pending.append(_Waiting(intents, list(stores), future))
        if not queue.running:
            queue.running = True
            task = asyncio.create_task(self._drain(user_id, queue))
            _background.add(task)
            task.add_done_callback(_background.discard)
        return await future

    async def _drain(self, user_id: str, queue: _Queue) -> None:
        try:
            while queue.pending:
                group = queue.take_group()
                GROUP.observe(sum(len(w.intents) for w in group))
                try:
                    modseq = await self._order(user_id, [i for w in group for i in w.intents],
                                               [s for w in group for s in w.stores])
                except InvalidArgument as exc:
                    if len(group) > 1:      # whose it is: each again in a slot of its own
                        queue.pending[0:0] = [dataclasses.replace(w, alone=True) for w in group]
                        continue
                    _settle(group, exc)
                except Exception as exc:
                    _settle(group, exc)
                else:
                    _settle(group, modseq)
        finally:
            queue.running = False
            if not queue.pending and self._queues.get(user_id) is queue:
                del self._queues[user_id]

    # -- Paxos --------------------------------------------------------------------------
    async def _order(self, user_id: str, intents: list[storage_pb2.OrderIntent],
                     stores: list[storage_pb2.StoreMessageRequest]) -> int:
        value = storage_pb2.OrderValue(intents=intents, time_ms=int(time.time() * 1000))
        higher = 0
        for attempt in range(MAX_ATTEMPTS):
            config = self.rings.config()
            lead = self._leads.get(user_id)
            try:
                if lead is None or not lead.prepared or lead.config != config.key:
                    lead = await self._prepare(user_id, config, lead, higher)
                slot = lead.next_slot
                chosen = await self._accept(user_id, config, lead.ballot, slot, value, stores)
                lead.next_slot = slot + 1
                modseq = await self._commit(user_id, config, slot, chosen)
                if chosen is value:
                    return modseq
                lead.prepared = False        # someone else chose this slot: our promise is stale
            except _Reconfigured:
                ROUNDS.labels("config", "stale").inc()   # the rings learned: ask again at once
                if lead is not None:
                    lead.prepared = False
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

    def _fenced(self, answers: list[Any]) -> None:
        """Raise _Reconfigured (after learning the newer rings) if a node refused our config."""
        fenced = [a.fence for a in answers if a.stale_config]
        if fenced:
            for fence in fenced:
                self.rings.learn(fence)
            raise _Reconfigured()

    def _quorate(self, user_id: str, config: Config, nodes: Iterable[NodeInfo]) -> bool:
        """W of every acceptor set of the config among `nodes`."""
        ids = {x.node_id for x in nodes}
        return all(sum(x.node_id in ids for x in group) >= self.replicas.consistency.w
                   for group in config.groups(user_id, self.replicas.consistency.n))

    async def _prepare(self, user_id: str, config: Config, lead: _Lead | None, higher: int) -> _Lead:
        """Take the lead of the user's log, and finish every slot a predecessor left
        accepted (or a gap, with an empty value) so the log is chosen up to the tail."""
        ballot = self._ballot(lead, higher)
        request = storage_pb2.OrderPrepareRequest(user_id=user_id, from_slot=lead.next_slot if lead else 1,
                                                  ballot=ballot, config=config.wire())
        held = await self._majority(user_id, config, lambda stub: stub.OrderPrepare(request, timeout=self._timeout),
                                    lambda a: a.promised)
        answers = [a for _, a in held]
        self._fenced(answers)
        if not self._quorate(user_id, config, [node for node, a in held if a.promised]):
            raise _Rejected(max((a.promised_ballot for a in answers if not a.promised), default=0))
        ROUNDS.labels("prepare", "promised").inc()
        through = max(a.chosen_through for a in answers)
        best: dict[int, storage_pb2.OrderAcceptedSlot] = {}
        for answer in answers:
            for slot in answer.accepted:
                if slot.slot > through and (slot.slot not in best or slot.ballot > best[slot.slot].ballot):
                    best[slot.slot] = slot
        tail = max([through, *best])
        for slot_no in range(through + 1, tail + 1):
            found = best.get(slot_no)
            value = found.value if found is not None else storage_pb2.OrderValue()
            if found is None or found.ballot != CHOSEN_BALLOT:
                value = await self._accept(user_id, config, ballot, slot_no, value)
            await self._commit(user_id, config, slot_no, value)
        fresh = _Lead(ballot, tail + 1, config=config.key)
        self._leads[user_id] = fresh
        self._leads.move_to_end(user_id)
        while len(self._leads) > LEADS_KEPT:
            self._leads.popitem(last=False)
        return fresh

    async def _accept(self, user_id: str, config: Config, ballot: int, slot: int, value: storage_pb2.OrderValue,
                      stores: Sequence[storage_pb2.StoreMessageRequest] = ()) -> storage_pb2.OrderValue:
        """The value chosen for `slot`: ours once W acceptors (of each set) took it, or the
        one a replica already holds chosen there. Each acceptor stores `stores` with it."""
        request = storage_pb2.OrderAcceptRequest(user_id=user_id, slot=slot, ballot=ballot, value=value,
                                                 config=config.wire(), stores=stores)
        held = await self._majority(user_id, config, lambda stub: stub.OrderAccept(request, timeout=self._timeout),
                                    lambda a: a.accepted, [Mutation(store) for store in stores])
        answers = [a for _, a in held]
        for answer in answers:
            if answer.already_chosen:
                ROUNDS.labels("accept", "chosen_elsewhere").inc()
                if not answer.HasField("chosen_value"):     # chosen and compacted there: learn it anew
                    raise _Rejected(answer.promised_ballot)
                return answer.chosen_value
        self._fenced(answers)
        if not self._quorate(user_id, config, [node for node, a in held if a.accepted]):
            raise _Rejected(max((a.promised_ballot for a in answers if not a.accepted), default=0))
        ROUNDS.labels("accept", "accepted").inc()
        return value

    async def _commit(self, user_id: str, config: Config, slot: int, value: storage_pb2.OrderValue) -> int:
        """Every acceptor gets the chosen slot; returns once W (of each set) folded through
        it (a replica that misses earlier slots is sent them first), with the MODSEQ they
        reached."""
        request = storage_pb2.OrderCommitRequest(
            user_id=user_id, slots=[storage_pb2.OrderAcceptedSlot(slot=slot, value=value)])
        answers = await self._majority(user_id, config, lambda stub: stub.OrderCommit(request, timeout=self._timeout),
                                       lambda a: True)
        behind = [node for node, reply in answers if reply.applied_through < slot]
        ahead = [node for node, reply in answers if reply.applied_through >= slot]
        if behind:
            if not ahead:
                raise QuorumFailure(f"mailbox order of {user_id}: no replica has folded slot {slot}")
            caught = await asyncio.gather(*(self._catch_up(user_id, node, ahead[0], slot) for node in behind),
                                          return_exceptions=True)
            ahead += [node for node, c in zip(behind, caught)
                      if isinstance(c, storage_pb2.OrderCommitReply) and c.applied_through >= slot]
            if not self._quorate(user_id, config, ahead):
                raise QuorumFailure(f"mailbox order of {user_id}: too few replicas folded slot {slot}")
        modseq = max(reply.modseq for _, reply in answers)
        if self._on_applied is not None:
            self._on_applied(user_id, modseq)
        return modseq

    async def _catch_up(self, user_id: str, node: NodeInfo, source: NodeInfo, through: int
                        ) -> storage_pb2.OrderCommitReply:
        """Send a replica the chosen slots it misses, from one that has folded them; if the
        source no longer keeps them, the replica merges the source's order instead (a
        snapshot: storage_node/order_transfer.py)."""
        reply = storage_pb2.OrderCommitReply()
        applied = -1
        while True:
            status = await self._rpc(node, "OrderCommit", storage_pb2.OrderCommitRequest(user_id=user_id))
            if status.applied_through >= through or status.applied_through == applied:
                return status if status.applied_through >= through else reply
            applied = status.applied_through
            held = await self._rpc(source, "OrderSlots", storage_pb2.OrderSlotsRequest(
                user_id=user_id, after_slot=applied, through_slot=through))
            if not held.slots or held.slots[0].slot != applied + 1:
                log.info("mailbox order of %s: %s merges %s's order (its slots after %d are compacted)",
                         user_id, node.node_id, source.node_id, applied)
                await self._rpc(node, "PullRanges", storage_pb2.PullRangesRequest(
                    source_address=source.address, ranges=[user_range(user_id)], order_only=True))
                continue
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
        """The user's acceptors now: its N replicas under the current ring, and under the
        pending one while a ring change moves them."""
        groups = self.rings.config().groups(user_id, self.replicas.consistency.n)
        return list({x.node_id: x for group in groups for x in group}.values())

    async def _majority(self, user_id: str, config: Config, call: Callable[[Stub], Awaitable[T]],
                        yes: Callable[[T], bool], carried: Sequence[Mutation] = ()) -> list[tuple[NodeInfo, T]]:
        """Ask every acceptor of the config at once; return the answers once W of each set
        said yes or no more can (with a refusal among them, for the caller to retry under a
        higher ballot or newer rings; with too few answers and none refusing, QuorumFailure).
        Calls still running keep going (the third replica gets an accept or a commit too).
        The writes a call `carried` are held as hints for an acceptor that fails as a node."""
        groups = config.groups(user_id, self.replicas.consistency.n)
        nodes = list({x.node_id: x for group in groups for x in group}.values())
        tasks = {asyncio.ensure_future(self.replicas.call_carrying(node, user_id, carried, call)
                                       if carried else self.replicas.call(node, call)): node for node in nodes}
        answers: list[tuple[NodeInfo, T]] = []
        failures: list[str] = []
        pending = set(tasks)
        deadline = asyncio.get_running_loop().time() + self._timeout

        def settled() -> bool:
            said_yes = {n.node_id for n, a in answers if yes(a)}
            waiting = {tasks[t].node_id for t in pending}
            need = self.replicas.consistency.w
            return all(sum(x.node_id in said_yes for x in g) >= need for g in groups) or any(
                sum(x.node_id in said_yes or x.node_id in waiting for x in g) < need for g in groups)

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
                if settled():
                    break
        finally:
            for task in tasks:      # the rest run on (or, when one refusal ended the wait, are read)
                _background.add(task)
                task.add_done_callback(_forget)
        refused = any(not yes(a) for _, a in answers)   # the caller takes a higher ballot and tries again
        if not refused and not self._quorate(user_id, config, [n for n, a in answers if yes(a)]):
            raise QuorumFailure(f"mailbox order of {user_id}: {len(answers)} of {len(nodes)} acceptors answered "
                                f"({'; '.join(failures) or 'timed out'})")
        return answers


def _settle(group: list[_Waiting], result: int | BaseException) -> None:
    for waiting in group:
        if waiting.future.done():
            continue
        if isinstance(result, BaseException):
            waiting.future.set_exception(result)
        else:
            waiting.future.set_result(result)


def user_range(user_id: str) -> storage_pb2.TokenRange:
    """The token range (t - 1, t] holding the user's partition."""
    token = partition_token(user_id)
    return storage_pb2.TokenRange(start=(token - 1) % (1 << 64), end=token)


def _forget(task: asyncio.Future[Any]) -> None:
    _background.discard(task)
    if not task.cancelled() and task.exception() is not None:
        log.debug("late mailbox-order call failed: %s", task.exception())

