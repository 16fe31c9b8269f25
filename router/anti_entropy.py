"""Anti-entropy: compare per-range digests between the replicas of every range and stream
only the difference, on a schedule, on demand (`tidings repair`), and for the ranges a
membership change moves.

The token space is compared in SEGMENTS equal segments, cut again where the replica set
changes, so one digest covers one replica set. Where digests differ, the replicas list
(ref, version, tombstone) for those ranges, the newest copy of each item is read from
a replica that holds it and applied to those that lack it or hold an older one. A
tombstone wins over any live copy, as on the storage nodes. At the design's scale a
segment would be split further, as a Merkle tree, before listing entries.
"""
from __future__ import annotations

import asyncio
import logging
from bisect import bisect_left
from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from prometheus_client import Counter, Histogram

from router.replicas import Replicas
from router.ring import NodeInfo, Ring
from tidings.v1 import mail_pb2, storage_pb2
from tidings_runtime.periodic import PeriodicTask

log = logging.getLogger(__name__)

SEGMENTS = 256
RANGES_PER_CALL = 64     # ranges listed per RangeEntries call
ITEMS_PER_CALL = 64      # items read and applied per ReadItems/ApplyItems call
CALL_TIMEOUT = 60.0
WAKE_DELAY = 3.0         # after a node comes back, let its hints replay first

Range = tuple[int, int]  # (start, end], wrapping; start == end is the whole ring
Ref = tuple[str, str, str]  # (user_id, id, directory_key)
# (tombstone, version, cells): a larger tuple is the newer copy; the cells (a live message's
# mutable cells hashed, storage_node.model.MessageRecord.cells) break a tie of equal versions
# the way the storage nodes do (Engine.apply_replica), so replicas converge on one copy.
Held = tuple[bool, int, bytes]

RANGES_COMPARED = Counter("tidings_antientropy_ranges_total", "Ranges compared by anti-entropy", ["result"])
ITEMS_REPAIRED = Counter("tidings_antientropy_items_repaired_total", "Items streamed to a replica that lacked them")
PASS_SECONDS = Histogram("tidings_antientropy_pass_seconds", "Duration of one anti-entropy pass",
                         buckets=(0.1, 0.5, 1, 5, 10, 30, 60, 300, 1800))


@dataclass(frozen=True)
class RangeGroup:
    """Ranges that share one replica set."""

    nodes: tuple[NodeInfo, ...]
    ranges: tuple[Range, ...]


@dataclass
class Report:
    ranges: int = 0
    differing: int = 0
    repaired: int = 0
    unreachable: set[str] = field(default_factory=set)
    incomparable: int = 0  # ranges with fewer than two replicas answering

    @property
    def converged(self) -> bool:
        """Every range compared equal on every replica (before this pass repaired anything)."""
        return not self.unreachable and not self.incomparable and self.differing == 0

    def to_proto(self) -> mail_pb2.RepairReport:
        return mail_pb2.RepairReport(ranges=self.ranges, ranges_differing=self.differing,
                                     items_repaired=self.repaired, unreachable_nodes=sorted(self.unreachable),
                                     converged=self.converged)


def segment_bounds(segments: int = SEGMENTS) -> list[int]:
    step = (1 << 64) // segments
    return [step * (k + 1) - 1 for k in range(segments)]


def range_groups(ring: Ring, n: int, segments: int = SEGMENTS) -> list[RangeGroup]:
    """The ring cut at vnode tokens and segment bounds, adjacent pieces of one replica set
    and one segment merged, grouped by replica set."""
    seg_bounds = segment_bounds(segments)
    bounds = sorted(set(ring.tokens) | set(seg_bounds))
    grouped: dict[tuple[NodeInfo, ...], list[Range]] = defaultdict(list)
    last: tuple[tuple[NodeInfo, ...], int] | None = None
    for i, end in enumerate(bounds):
        replicas = tuple(sorted(ring.preference_list_for_token(end, n), key=lambda x: x.node_id))
        key = (replicas, bisect_left(seg_bounds, end))
        ranges = grouped[replicas]
        if key == last:
            ranges[-1] = (ranges[-1][0], end)
        else:
            ranges.append((bounds[i - 1], end))
        last = key
    return [RangeGroup(nodes, tuple(ranges)) for nodes, ranges in grouped.items()]


def _ref(ref: storage_pb2.ItemRef) -> Ref:
    return ref.user_id, ref.id, ref.directory_key


def transfers(held: dict[str, dict[Ref, Held]]) -> dict[tuple[str, str], list[Ref]]:
    """For replicas' (ref -> held) maps: which (source, destination) must copy which refs,
    so every replica ends with the newest copy of every item."""
    best: dict[Ref, tuple[Held, str]] = {}
    for node_id in sorted(held):
        for ref, copy in held[node_id].items():
            if ref not in best or copy > best[ref][0]:
                best[ref] = (copy, node_id)
    plan: dict[tuple[str, str], list[Ref]] = defaultdict(list)
    for ref, (copy, source) in best.items():
        for node_id, items in held.items():
            mine = items.get(ref)
            if mine is None or mine < copy:
                plan[(source, node_id)].append(ref)
    return dict(plan)


def _read_items(request: storage_pb2.ReadItemsRequest, stub: Any) -> Awaitable[storage_pb2.ReplicaItems]:
    return stub.ReadItems(request, timeout=CALL_TIMEOUT)


def _apply_items(items: storage_pb2.ReplicaItems, stub: Any) -> Awaitable[Any]:
    return stub.ApplyItems(items, timeout=CALL_TIMEOUT)


def _token_ranges(ranges: Iterable[Range]) -> list[storage_pb2.TokenRange]:
    return [storage_pb2.TokenRange(start=s, end=e) for s, e in ranges]


class AntiEntropy:
    def __init__(self, replicas: Replicas, interval: float, segments: int = SEGMENTS) -> None:
        self.replicas = replicas
        self.interval = interval
        self.segments = segments
        self._lock = asyncio.Lock()
        # Passes every `interval` seconds and when woken; interval 0 turns both off (an
        # operator who schedules `tidings repair` outside).
        self.schedule = (PeriodicTask("anti-entropy", interval, self._scheduled_pass, wake_delay_s=WAKE_DELAY)
                         if interval > 0 else None)

    def soon(self) -> None:
        """Run the next scheduled pass now (e.g. a node came back)."""
        if self.schedule is not None:
            self.schedule.wake()

    async def _scheduled_pass(self) -> None:
        report = await self.repair()
        if report.differing:
            log.info("anti-entropy: %d of %d ranges differed, %d items repaired",
                     report.differing, report.ranges, report.repaired)

    async def repair(self, check_only: bool = False) -> Report:
        """One pass over the whole ring the router serves."""
        return await self.sync(range_groups(self.replicas.ring, self.replicas.consistency.n, self.segments),
                               check_only)

    async def sync(self, groups: list[RangeGroup], check_only: bool = False) -> Report:
        report = Report()
        async with self._lock:
            with PASS_SECONDS.time():
                for group in groups:
                    await self._sync_group(group, check_only, report)
        return report

    async def _sync_group(self, group: RangeGroup, check_only: bool, report: Report) -> None:
        request = storage_pb2.RangeDigestsRequest(ranges=_token_ranges(group.ranges))
        answers = await self._each(group.nodes, lambda stub: stub.RangeDigests(request, timeout=CALL_TIMEOUT), report)
        report.ranges += len(group.ranges)
        if len(answers) < 2:
            report.incomparable += len(group.ranges)
            return
        differing = [r for i, r in enumerate(group.ranges)
                     if len({a.digests[i].digest for a in answers.values()}) > 1]
        report.differing += len(differing)
        RANGES_COMPARED.labels("equal").inc(len(group.ranges) - len(differing))
        RANGES_COMPARED.labels("differing").inc(len(differing))
        if differing and not check_only:
            nodes = tuple(n for n in group.nodes if n in answers)
            for k in range(0, len(differing), RANGES_PER_CALL):
                report.repaired += await self._reconcile(nodes, differing[k:k + RANGES_PER_CALL], report)

    async def _each(self, nodes: Iterable[NodeInfo], call: Callable[[Any], Awaitable[Any]],
                    report: Report) -> dict[NodeInfo, Any]:
        answers, failures = await self.replicas.each(nodes, call)
        for node, exc in failures.items():
            log.info("anti-entropy: node %s did not answer: %s", node.node_id, exc.code().name)
            report.unreachable.add(node.node_id)
        return answers

    async def _reconcile(self, nodes: tuple[NodeInfo, ...], ranges: list[Range], report: Report) -> int:
        request = storage_pb2.RangeEntriesRequest(ranges=_token_ranges(ranges))
        answers = await self._each(nodes, lambda stub: stub.RangeEntries(request, timeout=CALL_TIMEOUT), report)
        held = {node.node_id: {_ref(i.ref): (i.tombstone, i.version, bytes(i.cells)) for i in answer.items}
                for node, answer in answers.items()}
        by_id = {n.node_id: n for n in nodes}
        copied = 0
        for (source, destination), refs in transfers(held).items():
            copied += await self._copy(by_id[source], by_id[destination], refs)
        return copied

    async def _copy(self, source: NodeInfo, destination: NodeInfo, refs: list[Ref]) -> int:
        copied = 0
        for k in range(0, len(refs), ITEMS_PER_CALL):
            chunk = [storage_pb2.ItemRef(user_id=u, id=i, directory_key=d) for u, i, d in refs[k:k + ITEMS_PER_CALL]]
            items = await self.replicas.call(
                source, partial(_read_items, storage_pb2.ReadItemsRequest(refs=chunk)))
            if items.items:
                await self.replicas.call(destination, partial(_apply_items, items))
            copied += len(items.items)
        ITEMS_REPAIRED.inc(copied)
        return copied
