"""Adding and removing storage nodes while traffic flows (`tidings node add|remove`).

A change runs in four steps, under one lock:
1. pending: the replica layer sends every write to the owners under both rings, with
   W raised by the number of new owners (replicas.write_plan); the mailbox order uses
   joint quorums (router/order_config.py), and every node is fenced so that no router
   orders with the old owners alone any more (a majority of each moved range's old
   owners must take the fence);
2. stream: once no write planned without the new owners is in flight, each new owner
   of a moved range pulls it from a current owner, node to node (PullRanges), and merges
   the mailbox order of every other live old owner too (a majority of them at least:
   what the old owners alone chose is then on the new owners), then anti-entropy
   reconciles every moved range across old and new owners, catching writes that raced
   the stream;
3. switch: the new ring map goes to every node and the router serves it, then the
   nodes' fence names the new ring; once the writes planned under both rings have
   landed, the new owners are reconciled again;
4. clean up: owners that lost a range drop it (DropRanges, the order's rows with it).
If a step fails before the switch, the old ring keeps serving, the fence is lifted and
the change can be run again; what a new owner had pulled is dropped by the next
attempt's clean-up or stays unread (reads follow the ring).
"""
from __future__ import annotations

import asyncio
import logging
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import grpc
from prometheus_client import Counter

from router.anti_entropy import AntiEntropy, Range, RangeGroup
from router.errors import AlreadyExists, FailedPrecondition, NotFound, Unavailable
from router.replicas import Replicas
from router.ring import NodeInfo, RangeChange, Ring
from router.ring_keeper import RingKeeper
from tidings.v1 import mail_pb2, storage_pb2

log = logging.getLogger(__name__)

STREAM_TIMEOUT = 3600.0
STREAMED_BYTES = Counter("tidings_membership_streamed_bytes_total", "Bytes new owners pulled in ring changes")
STREAMED_ITEMS = Counter("tidings_membership_streamed_items_total", "Items new owners pulled in ring changes")
DROPPED_ITEMS = Counter("tidings_membership_dropped_items_total", "Items old owners dropped after ring changes")


@dataclass
class Moved:
    items: int = 0
    bytes: int = 0
    dropped: int = 0


def pulls(changes: list[RangeChange], is_up: Callable[[str], bool]) -> dict[tuple[str, str], list[Range]]:
    """(new owner, source) -> ranges: each gained range from an owner that keeps it, if
    one is up, else from any current owner that is up."""
    plan: dict[tuple[str, str], list[Range]] = defaultdict(list)
    for change in changes:
        staying = [n for n in change.before if n in change.after and is_up(n)]
        leaving = [n for n in change.before if n not in change.after and is_up(n)]
        sources = staying + leaving
        for gainer in change.after:
            if gainer in change.before:
                continue
            if not sources:
                raise Unavailable(f"no live owner of range ({change.start}, {change.end}] to stream from")
            plan[(gainer, sources[0])].append((change.start, change.end))
    return dict(plan)


def order_pulls(changes: list[RangeChange], is_up: Callable[[str], bool], majority: int
                ) -> dict[tuple[str, str], list[Range]]:
    """(new owner, source) -> ranges: the mailbox order of each gained range from every live
    old owner but the one `pulls` streams it from (its pull carries the order too). A
    majority of the old owners must be live (Unavailable otherwise)."""
    items = pulls(changes, is_up)
    plan: dict[tuple[str, str], list[Range]] = defaultdict(list)
    for change in changes:
        live = [n for n in change.before if is_up(n)]
        if len(live) < majority:
            raise Unavailable(f"{len(live)} of the old owners of range ({change.start}, {change.end}] are up: "
                              f"the mailbox order needs {majority}")
        for gainer in change.after:
            if gainer in change.before:
                continue
            for source in live:
                if (change.start, change.end) not in items.get((gainer, source), ()):
                    plan[(gainer, source)].append((change.start, change.end))
    return dict(plan)


def fenced_enough(changes: list[RangeChange], fenced: set[str], majority: int) -> bool:
    """Every moved range has a majority of its old owners fenced: then no old majority can
    choose a slot without the new owners."""
    return all(sum(n in fenced for n in change.before) >= majority for change in changes)


def drops(changes: list[RangeChange]) -> dict[str, list[Range]]:
    """Old owner -> ranges it no longer replicates."""
    plan: dict[str, list[Range]] = defaultdict(list)
    for change in changes:
        for loser in change.before:
            if loser not in change.after:
                plan[loser].append((change.start, change.end))
    return dict(plan)


def moved_groups(changes: list[RangeChange], nodes: dict[str, NodeInfo], before: bool) -> list[RangeGroup]:
    """The moved ranges grouped by their owners: old and new ones (before the switch), or
    the new ones only (after it)."""
    grouped: dict[tuple[str, ...], list[Range]] = defaultdict(list)
    for change in changes:
        owners = {*change.before, *change.after} if before else set(change.after)
        grouped[tuple(sorted(owners))].append((change.start, change.end))
    return [RangeGroup(tuple(nodes[i] for i in ids), tuple(r)) for ids, r in grouped.items()]


def _ranges(ranges: list[Range]) -> list[storage_pb2.TokenRange]:
    return [storage_pb2.TokenRange(start=s, end=e) for s, e in ranges]


class Membership:
    def __init__(self, replicas: Replicas, keeper: RingKeeper, anti_entropy: AntiEntropy) -> None:
        self.replicas = replicas
        self.keeper = keeper
        self.anti_entropy = anti_entropy
        self._lock = asyncio.Lock()

    async def add(self, node: NodeInfo) -> mail_pb2.RingReport:
        async with self._lock:
            old = self.replicas.ring
            if node.node_id in old:
                raise AlreadyExists(f"node {node.node_id} is in ring version {old.version}")
            if any(n.address == node.address for n in old.nodes):
                raise AlreadyExists(f"address {node.address} belongs to another node")
            if not await self.replicas.detector.probe(node):
                raise Unavailable(f"node {node.node_id} at {node.address} does not answer")
            return await self._move(old, old.with_node(node))

    async def remove(self, node_id: str) -> mail_pb2.RingReport:
        async with self._lock:
            old = self.replicas.ring
            if node_id not in old:
                raise NotFound(f"node {node_id} is not in ring version {old.version}")
            if len(old) - 1 < self.replicas.consistency.n:
                raise FailedPrecondition(f"removing node {node_id} would leave fewer than "
                                         f"N={self.replicas.consistency.n} nodes")
            return await self._move(old, old.without_node(node_id))

    async def _move(self, old: Ring, new: Ring) -> mail_pb2.RingReport:
        n = self.replicas.consistency.n
        changes = old.diff(new, n)
        nodes = {x.node_id: x for x in (*old.nodes, *new.nodes)}
        moved = Moved()
        log.info("ring %d -> %d: %d ranges move", old.version, new.version, len(changes))
        self.replicas.pending = new
        switched = False
        try:
            fenced = await self._fence(nodes.values(), old, new)
            if not fenced_enough(changes, fenced, self._majority):
                raise Unavailable(f"too few old owners took the mailbox order's fence (took it: {sorted(fenced)})")
            await self.replicas.settle()  # every write in flight now reaches the new owners too
            await self._stream(changes, nodes, moved)
            await self._reconcile(moved_groups(changes, nodes, before=True))
            if await self.keeper.publish(new, nodes.values()) < len(new) // 2 + 1:
                raise Unavailable("too few nodes took the new ring map")
            self.keeper.adopt(new)
            switched = True
        finally:
            self.replicas.pending = None
            # after the switch the fence names the new ring; else it is lifted (best effort:
            # a node that keeps the pending fence only makes routers use joint quorums)
            await self._fence(nodes.values(), new if switched else old, None)
        await self.replicas.settle()  # no write planned under the pending ring is still landing
        await self._reconcile(moved_groups(changes, nodes, before=False))
        await self._drop(changes, nodes, moved)
        return self.describe(moved)

    @property
    def _majority(self) -> int:
        return self.replicas.consistency.w

    async def _fence(self, nodes: Iterable[NodeInfo], ring: Ring, pending: Ring | None) -> set[str]:
        """Set the mailbox order's fence on the nodes; the ids of those that hold it."""
        fence = storage_pb2.OrderFence(ring=storage_pb2.RingMap(version=ring.version, json=ring.to_json()))
        if pending is not None:
            fence.pending.CopyFrom(storage_pb2.RingMap(version=pending.version, json=pending.to_json()))
        answers, failures = await self.replicas.each(
            nodes, lambda stub: stub.SetOrderFence(fence, timeout=self.replicas.consistency.timeout))
        for node, exc in failures.items():
            log.warning("node %s did not take the mailbox order's fence: %s", node.node_id, exc.code().name)
        return {node.node_id for node, held in answers.items() if held == fence}

    async def _reconcile(self, groups: list[RangeGroup]) -> None:
        report = await self.anti_entropy.sync(groups)
        if report.unreachable:
            raise Unavailable(f"could not reconcile moved ranges: nodes {sorted(report.unreachable)} did not answer")

    async def _stream(self, changes: list[RangeChange], nodes: dict[str, NodeInfo], moved: Moved) -> None:
        is_up = lambda node_id: self.replicas.detector.is_up(nodes[node_id])  # noqa: E731

        async def pull(gainer: str, source: str, ranges: list[Range], order_only: bool = False) -> None:
            request = storage_pb2.PullRangesRequest(source_address=nodes[source].address, ranges=_ranges(ranges),
                                                    order_only=order_only)
            try:
                answer = await self.replicas.call(
                    nodes[gainer], lambda stub: stub.PullRanges(request, timeout=STREAM_TIMEOUT))
            except grpc.aio.AioRpcError as exc:
                raise Unavailable(f"node {gainer} could not pull from node {source}: "
                                  f"{exc.code().name} {exc.details()}") from None
            moved.items += answer.items
            moved.bytes += answer.bytes
            STREAMED_ITEMS.inc(answer.items)
            STREAMED_BYTES.inc(answer.bytes)

        orders = order_pulls(changes, is_up, self._majority)
        await asyncio.gather(*(pull(g, s, r) for (g, s), r in pulls(changes, is_up).items()),
                             *(pull(g, s, r, order_only=True) for (g, s), r in orders.items()))

    async def _drop(self, changes: list[RangeChange], nodes: dict[str, NodeInfo], moved: Moved) -> None:
        async def drop(loser: str, ranges: list[Range]) -> None:
            request = storage_pb2.DropRangesRequest(ranges=_ranges(ranges))
            try:
                answer = await self.replicas.call(
                    nodes[loser], lambda stub: stub.DropRanges(request, timeout=STREAM_TIMEOUT))
            except grpc.aio.AioRpcError as exc:  # the ring has switched: stale data is unread, not wrong
                log.warning("node %s kept ranges it no longer owns: %s", loser, exc.code().name)
                return
            moved.dropped += answer.items
            DROPPED_ITEMS.inc(answer.items)

        await asyncio.gather(*(drop(loser, r) for loser, r in drops(changes).items()))

    def describe(self, moved: Moved | None = None) -> mail_pb2.RingReport:
        ring = self.replicas.ring
        share = ring.ownership(self.replicas.consistency.n)
        moved = moved or Moved()
        return mail_pb2.RingReport(
            version=ring.version,
            nodes=[mail_pb2.RingReport.Node(node_id=x.node_id, address=x.address, zone=x.zone,
                                            ownership=share.get(x.node_id, 0.0)) for x in ring.nodes],
            items_streamed=moved.items, bytes_streamed=moved.bytes, items_dropped=moved.dropped)
