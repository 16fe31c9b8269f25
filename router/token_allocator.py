"""Token allocation: the vnode tokens a joining node gets, chosen to balance the ring.

Random vnode tokens leave, at 1,000 nodes x 256 vnodes, the busiest node about 1.2x the
mean (each node's share is a sum of 256 exponential gaps: 6 % spread, +3.2 sigma at the
maximum). So tokens are allocated, as Cassandra's token allocator does,
to split the ranges of the most loaded nodes:

- Replicas are placed one per zone first (placement.py), so with N replicas over N zones
  a node's replicated load is its share of its own zone's ring. Each zone is therefore
  balanced as a ring of its own (Cassandra does the same when racks == RF); with one zone
  this is the plain ring.
- The first node of a zone gets ``vnodes`` evenly spaced tokens, offset by a hash of its id.
- A node joining a zone of k nodes takes 1/(k+1) of that zone's ring: ``vnodes`` times it
  pops the most loaded node of the zone and splits that node's largest range, taking its
  start, about an equal share of the remaining target each time.
- Where in that range: the zone share may vary by +-50 % per split (later splits make up
  the difference), and within that window the point is chosen among the gaps between
  other zones' tokens so the newcomer also gets its 1/(N+1) of the whole ring (the first
  replica, the coordinator's first choice), preferring gaps held by nodes above their
  share. Without this the zones' rings interleave by chance and primary shares spread to
  0.08x-1.5x the mean. Ties break on node id and token; all arithmetic is on integers
  except the score.

The allocation is deterministic from the node list in order (the join order), and
tokens, once given, never move: ``allocate`` keeps every token it is given and only adds
tokens for the nodes that have none (ring.py holds the result).
"""
from __future__ import annotations

import heapq
from bisect import bisect_left, bisect_right, insort
from collections.abc import Iterable, Mapping, Sequence
from typing import Protocol

from router.tokens import TOKEN_MASK, TOKEN_SPACE, range_size
from tidings_runtime.partitions import partition_token


class Member(Protocol):
    """What allocation needs of a node (ring.NodeInfo is one)."""

    @property
    def node_id(self) -> str: ...

    @property
    def zone(self) -> str: ...


# How much a split may trade the newcomer's zone share (replica load) for its primary share,
# and how strongly it prefers to take primary ranges from the most loaded nodes.
_ZONE_SLACK = 0.5
_PRIMARY_PULL = 20.0


class _Tokens:
    """Every token allocated so far, in sorted buckets (about four tokens each, rebuilt as
    the ring grows), for next/previous lookups."""

    __slots__ = ("buckets", "count", "shift")

    def __init__(self, tokens: Iterable[int]) -> None:
        self._build(sorted(tokens))

    def _build(self, ordered: list[int]) -> None:
        bits = max(2, min(20, (len(ordered) // 4).bit_length()))
        self.shift = 64 - bits
        self.buckets: list[list[int]] = [[] for _ in range(1 << bits)]
        for t in ordered:
            self.buckets[t >> self.shift].append(t)
        self.count = len(ordered)

    def insert(self, token: int) -> None:
        insort(self.buckets[token >> self.shift], token)
        self.count += 1
        if self.count > 16 * len(self.buckets) and len(self.buckets) < (1 << 20):
            self._build([t for bucket in self.buckets for t in bucket])

    def after(self, x: int) -> int:
        """The next token strictly after x, wrapping (the ring must not be empty)."""
        b = x >> self.shift
        bucket = self.buckets[b]
        i = bisect_right(bucket, x)
        if i < len(bucket):
            return bucket[i]
        count = len(self.buckets)
        for step in range(1, count + 1):
            bucket = self.buckets[(b + step) % count]
            if bucket:
                return bucket[0]
        raise LookupError("empty ring")

    def before(self, x: int) -> int:
        """The previous token strictly before x, wrapping (the ring must not be empty)."""
        b = x >> self.shift
        bucket = self.buckets[b]
        i = bisect_left(bucket, x)
        if i > 0:
            return bucket[i - 1]
        count = len(self.buckets)
        for step in range(1, count + 1):
            bucket = self.buckets[(b - step) % count]
            if bucket:
                return bucket[-1]
        raise LookupError("empty ring")


class _Zone:
    """Allocation state of one zone's ring: each token's range back to the previous token
    of the same zone, each node's share of the zone, and heaps to find the most loaded
    node and its largest ranges."""

    __slots__ = ("length", "load", "node_heap", "range_heaps")

    def __init__(self) -> None:
        self.length: dict[int, int] = {}
        self.load: dict[str, int] = {}
        self.node_heap: list[tuple[int, str]] = []
        self.range_heaps: dict[str, list[tuple[int, int]]] = {}

    def add_node(self, node_id: str, tokens: Iterable[int]) -> None:
        heap = [(-self.length[t], t) for t in tokens]
        heapq.heapify(heap)
        self.range_heaps[node_id] = heap
        self.load[node_id] = -sum(length for length, _ in heap)
        heapq.heappush(self.node_heap, (-self.load[node_id], node_id))

    def pop_donor(self) -> str | None:
        """The most loaded node that still has a range to offer (others wait in the heap)."""
        idle = []
        donor = None
        while self.node_heap:
            neg_load, node_id = heapq.heappop(self.node_heap)
            if -neg_load != self.load[node_id]:
                continue  # stale entry
            if self.range_heaps[node_id]:
                donor = node_id
                break
            idle.append((neg_load, node_id))
        for entry in idle:
            heapq.heappush(self.node_heap, entry)
        return donor


class _Allocator:
    """Replays joins: the state after the nodes that already hold tokens, then one join at a time."""

    def __init__(self, placed: Sequence[tuple[Member, Sequence[int]]]) -> None:
        self.owner: dict[int, str] = {}
        self.primary: dict[str, int] = {}
        self.zones: dict[str, _Zone] = {}
        per_zone: dict[str, list[tuple[int, str]]] = {}
        for node, toks in placed:
            self.primary[node.node_id] = 0
            for t in toks:
                self.owner[t] = node.node_id
                per_zone.setdefault(node.zone, []).append((t, node.node_id))
        everything = sorted(self.owner)
        self.ring = _Tokens(everything)
        previous = everything[-1] if everything else 0
        for t in everything:
            self.primary[self.owner[t]] += range_size(previous, t)
            previous = t
        for zone_name, held in per_zone.items():
            zone = self.zones[zone_name] = _Zone()
            held.sort()
            previous = held[-1][0]
            by_node: dict[str, list[int]] = {}
            for t, node_id in held:
                zone.length[t] = range_size(previous, t)
                previous = t
                by_node.setdefault(node_id, []).append(t)
            for node_id in sorted(by_node):
                zone.add_node(node_id, by_node[node_id])

    def join(self, node: Member, vnodes: int) -> tuple[int, ...]:
        zone = self.zones.setdefault(node.zone, _Zone())
        self.primary[node.node_id] = 0
        if zone.load:
            mine = self._split(zone, node.node_id, vnodes)
        else:
            mine = (self._grid(node.node_id, vnodes) if self.owner
                    else self._evenly_spaced(node.node_id, vnodes))
            ordered = sorted(mine)  # the zone's ring is this node's own tokens
            for previous, t in zip([ordered[-1], *ordered], ordered):
                zone.length[t] = range_size(previous, t)
        zone.add_node(node.node_id, mine)
        return tuple(sorted(mine))

    def _place(self, token: int, node_id: str) -> None:
        """Record a new token: it takes the start of the range of the token after it."""
        if self.owner:
            following = self.ring.after(token)
            gained = range_size(self.ring.before(token), token)
            self.primary[self.owner[following]] -= gained
            self.primary[node_id] += gained
        else:
            self.primary[node_id] = TOKEN_SPACE
        self.owner[token] = node_id
        self.ring.insert(token)

    def _evenly_spaced(self, node_id: str, vnodes: int) -> list[int]:
        """The first node of a zone: evenly spaced tokens, offset by a hash of its id."""
        step = TOKEN_SPACE // vnodes
        offset = partition_token(f"{node_id}#0") % step
        mine = []
        for i in range(vnodes):
            t = offset + i * step
            while t in self.owner:  # another zone's token: the next free one
                t = (t + 1) & TOKEN_MASK
            self._place(t, node_id)
            mine.append(t)
        return mine

    def _grid(self, node_id: str, vnodes: int) -> list[int]:
        """The first node of a new zone while other zones hold tokens: one token near each
        point of an evenly spaced grid (so the zone's own ring starts even), placed in the
        gap that gives it its 1/(N+1) of the whole ring."""
        step = TOKEN_SPACE // vnodes
        offset = partition_token(f"{node_id}#0") % step
        primary_left = TOKEN_SPACE // len(self.primary)  # the newcomer is already counted
        pull = _PRIMARY_PULL / primary_left
        quarter = step // 4
        mine = []
        for i in range(vnodes):
            want_p = primary_left // (vnodes - i) or 1
            best = self._best_point(node_id, (offset + i * step - quarter) & TOKEN_MASK, 0, 2 * quarter,
                                    quarter, 1.0 / (2 * quarter), want_p, pull)
            primary_left -= self._take(node_id, *best)
            mine.append(best[0])
        return mine

    def _best_point(self, node_id: str, origin: int, lo: int, hi: int, aim: int, inv_aim: float,
                    want_p: int, pull: float) -> tuple[int, int, str]:
        """The token in ``origin + [lo, hi]`` closest to ``origin + aim`` and to a primary share
        of ``want_p``, preferring to take it from a node above its share. Returns the token,
        the primary range it would take and the holder it takes it from."""
        ring, owner, primary = self.ring, self.owner, self.primary
        buckets, shift = ring.buckets, ring.shift
        inv_p = 1.0 / want_p
        at = ring.before((origin + lo) & TOKEN_MASK) if lo else ring.before((origin + 1) & TOKEN_MASK)
        # Offsets from origin, signed: the first gap may start before it.
        gap_start = (((at - origin) + (1 << 63)) & TOKEN_MASK) - (1 << 63)
        best: tuple[float, int, int, str] | None = None
        while gap_start < hi:
            bucket = buckets[at >> shift]  # inline ring.after(at): the build's hot path
            i = bisect_right(bucket, at)
            following = bucket[i] if i < len(bucket) else ring.after(at)
            gap_end = gap_start + range_size(at, following)
            # Ternaries, not min/max: this loop is most of a ring build.
            first = gap_start + 1 if gap_start + 1 > lo else lo  # noqa: FURB136
            last = gap_end - 1 if gap_end - 1 < hi else hi  # noqa: FURB136
            if first <= last:
                t_rel = gap_start + want_p
                t_rel = first if t_rel < first else last if t_rel > last else t_rel  # noqa: FURB136
                holder = owner[following]
                gained = 0 if holder == node_id else t_rel - gap_start
                score = (abs(gained - want_p) * inv_p + abs(t_rel - aim) * inv_aim
                         - pull * primary[holder])
                if best is None or score < best[0]:
                    best = (score, t_rel, t_rel - gap_start, holder)
            gap_start, at = gap_end, following
        if best is None:
            raise ValueError("no free token in the window")  # only with more tokens than space
        _, t_rel, gained, holder = best
        return (origin + t_rel) & TOKEN_MASK, gained, holder

    def _take(self, node_id: str, token: int, gained: int, holder: str) -> int:
        """Record the newcomer's token; return the primary share it gained."""
        self.primary[holder] -= gained
        self.primary[node_id] += gained
        self.owner[token] = node_id
        self.ring.insert(token)
        return 0 if holder == node_id else gained

    def _split(self, zone: _Zone, node_id: str, vnodes: int) -> list[int]:
        """Take 1/(k+1) of a zone of k nodes and about 1/(N+1) of the whole ring: per vnode,
        split the largest range of the zone's most loaded node, at the point that best
        meets both shares and takes the primary range from a loaded node."""
        zone_left = TOKEN_SPACE // (len(zone.load) + 1)
        primary_left = TOKEN_SPACE // len(self.primary)  # the newcomer is already counted
        pull = _PRIMARY_PULL / primary_left
        length, load = zone.length, zone.load
        mine: list[int] = []
        split: list[tuple[str, int]] = []  # (donor, end) ranges split, back in the heap after
        while len(mine) < vnodes:
            left = vnodes - len(mine)
            want_z = zone_left // left or 1
            want_p = primary_left // left or 1
            donor = zone.pop_donor()
            if donor is None:
                break
            neg_size, end = heapq.heappop(zone.range_heaps[donor])
            size = -neg_size
            split.append((donor, end))  # not split again by this newcomer
            if size < 2:  # a range of one token: nothing to split, try the next
                heapq.heappush(zone.node_heap, (-load[donor], donor))
                continue
            lo = int(want_z * (1 - _ZONE_SLACK))
            lo = max(1, min(lo, size - 1))
            hi = int(want_z * (1 + _ZONE_SLACK))
            hi = max(lo, min(hi, size - 1))
            start = (end - size) & TOKEN_MASK
            t, gained, holder = self._best_point(node_id, start, lo, hi, want_z, 1.0 / want_z,
                                                 want_p, pull)
            taken = (t - start) & TOKEN_MASK
            length[t] = taken
            length[end] = size - taken
            load[donor] -= taken
            heapq.heappush(zone.node_heap, (-load[donor], donor))
            primary_left -= self._take(node_id, t, gained, holder)
            zone_left -= taken
            mine.append(t)
        for donor, end in split:
            heapq.heappush(zone.range_heaps[donor], (-length[end], end))
        if not mine:
            raise ValueError("no range left to split: too many vnodes for the token space")
        return mine


def allocate(nodes: Sequence[Member], given: Mapping[str, Sequence[int]],
             vnodes: int) -> dict[str, tuple[int, ...]]:
    """Tokens for every node: those in ``given`` are kept, the rest are allocated in order."""
    result = {node_id: tuple(sorted(int(t) for t in toks)) for node_id, toks in given.items()}
    for node_id, toks in result.items():
        if not toks:
            raise ValueError(f"node {node_id!r} has no tokens")
        if any(not 0 <= t < TOKEN_SPACE for t in toks):
            raise ValueError(f"node {node_id!r} has a token outside the 64-bit space")
    pending = [n for n in nodes if n.node_id not in result]
    if not pending:
        return result
    placed = [(n, result[n.node_id]) for n in nodes if n.node_id in result]
    allocator = _Allocator(placed)
    for node in pending:
        result[node.node_id] = allocator.join(node, vnodes)
    return result
