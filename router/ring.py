"""The consistent-hash ring: nodes, their virtual-node tokens, and a version.

A ``Ring`` is an immutable value, swapped whole when membership changes (as Cassandra's
TokenMetadata, but without the lock: nobody mutates it). Tokens live in the unsigned
64-bit space of ``tidings_runtime.partitions.partition_token``; the vnode at token ``t`` owns the
range ``(previous token, t]``, wrapping past ``2**64 - 1`` to 0.

Token assignment. Random vnode tokens leave, at 1,000 nodes x 256 vnodes, the busiest
node about 1.2x the mean (each node's share is a sum of 256 exponential gaps: 6 % spread,
+3.2 sigma at the maximum). So tokens are allocated, as Cassandra's token allocator does,
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

The allocation is deterministic from the node list in order (the join order): ``Ring(nodes)``
equals ``Ring(nodes[:-1]).with_node(nodes[-1])``. Tokens, once given, never move: leaving
drops a node's tokens and nothing else, joining only adds tokens, and both travel in
``to_json``. So ``ring.without_node(x)`` keeps everyone's tokens and is not
``Ring(nodes minus x)``.
"""
from __future__ import annotations

import heapq
import json
from bisect import bisect_left, bisect_right, insort
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from router.placement import zone_aware_walk
from tidings_runtime.partitions import partition_token

TOKEN_SPACE = 1 << 64
_MASK = TOKEN_SPACE - 1


@dataclass(frozen=True)
class NodeInfo:
    node_id: str  # "1", "2", ...
    address: str  # "127.0.0.1:7101"
    zone: str = "zone-a"


@dataclass(frozen=True)
class RangeChange:
    """A token range ``(start, end]`` whose replica set differs between two rings."""

    start: int
    end: int
    before: tuple[str, ...]
    after: tuple[str, ...]

    @property
    def size(self) -> int:
        return range_size(self.start, self.end)


def range_size(start: int, end: int) -> int:
    """Number of tokens in ``(start, end]``, wrapping; ``start == end`` is the whole ring."""
    return ((end - start) & _MASK) or TOKEN_SPACE


class Ring:
    """Immutable, versioned consistent-hash ring with virtual nodes."""

    __slots__ = (
        "_version", "_vnodes", "_nodes", "_by_id", "_tokens_of", "_tokens", "_owner",
        "_zone_idx", "_zone_count", "_cache",
    )

    def __init__(
        self,
        nodes: Iterable[NodeInfo],
        vnodes: int = 256,
        version: int = 1,
        *,
        tokens: Mapping[str, Sequence[int]] | None = None,
    ) -> None:
        """Build a ring. Nodes named in ``tokens`` keep those tokens (a ring read back from
        JSON); the others get tokens allocated in list order, after them."""
        if vnodes < 1:
            raise ValueError("vnodes must be at least 1")
        node_list = tuple(nodes)
        by_id: dict[str, NodeInfo] = {}
        for info in node_list:
            if info.node_id in by_id:
                raise ValueError(f"duplicate node id {info.node_id!r}")
            by_id[info.node_id] = info
        given = dict(tokens or {})
        unknown = set(given) - set(by_id)
        if unknown:
            raise ValueError(f"tokens given for unknown nodes {sorted(unknown)}")
        tokens_of = _allocate(node_list, given, vnodes)
        self._set(version, vnodes, node_list, tokens_of)

    def _set(self, version: int, vnodes: int, nodes: tuple[NodeInfo, ...],
              tokens_of: dict[str, tuple[int, ...]]) -> None:
        self._version = version
        self._vnodes = vnodes
        self._nodes = nodes
        self._by_id = {n.node_id: n for n in nodes}
        self._tokens_of = tokens_of
        zone_ids: dict[str, int] = {}
        self._zone_idx = [zone_ids.setdefault(n.zone, len(zone_ids)) for n in nodes]
        self._zone_count = len(zone_ids)
        pairs = sorted((t, i) for i, n in enumerate(nodes) for t in tokens_of[n.node_id])
        self._tokens = [t for t, _ in pairs]
        self._owner = [i for _, i in pairs]
        for a, b in zip(self._tokens, self._tokens[1:]):
            if a == b:
                raise ValueError(f"token {a} held twice")
        # n -> per-vnode preference list (node indices), filled lazily on the hot path.
        self._cache: dict[int, list[tuple[NodeInfo, ...] | None]] = {}

    @classmethod
    def _from_parts(cls, version: int, vnodes: int, nodes: tuple[NodeInfo, ...],
                    tokens_of: dict[str, tuple[int, ...]]) -> Ring:
        ring = cls.__new__(cls)
        ring._set(version, vnodes, nodes, tokens_of)
        return ring

    # -- the value -------------------------------------------------------------------

    @property
    def version(self) -> int:
        return self._version

    @property
    def vnodes(self) -> int:
        return self._vnodes

    @property
    def nodes(self) -> tuple[NodeInfo, ...]:
        return self._nodes

    @property
    def tokens(self) -> tuple[int, ...]:
        """Every token of the ring, sorted."""
        return tuple(self._tokens)

    def tokens_of(self, node_id: str) -> tuple[int, ...]:
        """The node's tokens, sorted."""
        return self._tokens_of[self.node(node_id).node_id]

    def node(self, node_id: str) -> NodeInfo:
        try:
            return self._by_id[node_id]
        except KeyError:
            raise KeyError(f"node {node_id!r} is not in ring version {self._version}") from None

    def __contains__(self, node_id: object) -> bool:
        return node_id in self._by_id

    def __len__(self) -> int:
        return len(self._nodes)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Ring):
            return NotImplemented
        return (self._version, self._vnodes, self._nodes, self._tokens_of) == (
            other._version, other._vnodes, other._nodes, other._tokens_of)

    def __hash__(self) -> int:
        return hash((self._version, self._vnodes, self._nodes))

    def __repr__(self) -> str:
        return (f"Ring(version={self._version}, nodes={len(self._nodes)}, "
                f"vnodes={self._vnodes}, zones={self._zone_count})")

    # -- placement (hot path) ----------------------------------------------------------

    def preference_list(self, partition_key: str, n: int = 3) -> list[NodeInfo]:
        """The replicas of a partition key: n distinct nodes, distinct zones first."""
        return self.preference_list_for_token(partition_token(partition_key), n)

    def preference_list_for_token(self, token: int, n: int = 3) -> list[NodeInfo]:
        if not self._tokens:
            return []
        return list(self._vnode_replicas(self.vnode_index(token), n))

    def vnode_index(self, token: int) -> int:
        """Index (in ``tokens``) of the vnode whose range ``(previous, t]`` holds ``token``."""
        i = bisect_left(self._tokens, token)
        return 0 if i == len(self._tokens) else i

    def _vnode_replicas(self, index: int, n: int) -> tuple[NodeInfo, ...]:
        per_vnode = self._cache.get(n)
        if per_vnode is None:
            per_vnode = self._cache.setdefault(n, [None] * len(self._tokens))
        found = per_vnode[index]
        if found is None:
            nodes = self._nodes
            found = tuple(nodes[i] for i in zone_aware_walk(
                self._owner, index, n, self._zone_idx, len(nodes), self._zone_count))
            per_vnode[index] = found
        return found

    # -- membership changes ------------------------------------------------------------

    def with_node(self, node: NodeInfo) -> Ring:
        """The next ring version with ``node`` joined (tokens allocated for it), or, for a
        node id already present in the same zone, with its address updated."""
        old = self._by_id.get(node.node_id)
        if old is not None:
            if old.zone != node.zone:
                raise ValueError(f"node {node.node_id!r} cannot change zone "
                                 f"({old.zone} -> {node.zone}); remove it and add it again")
            nodes = tuple(node if n.node_id == node.node_id else n for n in self._nodes)
            return Ring._from_parts(self._version + 1, self._vnodes, nodes, self._tokens_of)
        nodes = self._nodes + (node,)
        return Ring._from_parts(self._version + 1, self._vnodes, nodes,
                                _allocate(nodes, self._tokens_of, self._vnodes))

    def without_node(self, node_id: str) -> Ring:
        """The next ring version without ``node_id``; every other token stays where it is."""
        self.node(node_id)
        nodes = tuple(n for n in self._nodes if n.node_id != node_id)
        tokens_of = {k: v for k, v in self._tokens_of.items() if k != node_id}
        return Ring._from_parts(self._version + 1, self._vnodes, nodes, tokens_of)

    # -- ranges and ownership ----------------------------------------------------------

    def ranges_of(self, node_id: str, n: int = 3) -> list[tuple[int, int]]:
        """Token ranges ``(start, end]`` (wrapping) this node replicates, merged and in ring
        order. A single ``(t, t)`` means the whole ring."""
        target = self.node(node_id)
        tokens = self._tokens
        size = len(tokens)
        held = [target in self._vnode_replicas(i, n) for i in range(size)]
        if all(held):
            return [(tokens[-1], tokens[-1])]
        ranges: list[tuple[int, int]] = []
        # Start just after a vnode the node does not hold, so no run wraps past the start.
        first = held.index(False) + 1
        run_start: int | None = None
        for step in range(size):
            i = (first + step) % size
            if held[i]:
                if run_start is None:
                    run_start = tokens[i - 1]
            elif run_start is not None:
                ranges.append((run_start, tokens[i - 1]))
                run_start = None
        if run_start is not None:
            ranges.append((run_start, tokens[first - 1]))
        ranges.sort(key=lambda r: r[1])
        return ranges

    def ownership(self, n: int = 1) -> dict[str, float]:
        """Fraction of the token space each node holds: as primary for n=1, as any of the
        n replicas for n>1, each replica counted 1/len(replicas) so the fractions sum to 1."""
        share = dict.fromkeys((node.node_id for node in self._nodes), 0)
        tokens = self._tokens
        for i in range(len(tokens)):
            replicas = self._vnode_replicas(i, n)
            width = range_size(tokens[i - 1], tokens[i])
            for node in replicas:
                share[node.node_id] += width * (1.0 / len(replicas))
        return {k: v / TOKEN_SPACE for k, v in share.items()}

    def diff(self, other: Ring, n: int = 3) -> list[RangeChange]:
        """Ranges whose n-replica set differs from this ring to ``other``: what must be
        streamed before ``other`` serves. Adjacent ranges with the same change are merged."""
        bounds = sorted(set(self._tokens) | set(other._tokens))
        if not bounds:
            return []
        changes: list[RangeChange] = []
        for i, end in enumerate(bounds):
            before = tuple(x.node_id for x in self._replicas_or_empty(end, n))
            after = tuple(x.node_id for x in other._replicas_or_empty(end, n))
            if before == after:
                continue
            start = bounds[i - 1]
            last = changes[-1] if changes else None
            if last and last.end == start and (last.before, last.after) == (before, after):
                changes[-1] = RangeChange(last.start, end, before, after)
            else:
                changes.append(RangeChange(start, end, before, after))
        if (len(changes) > 1 and changes[0].start == changes[-1].end
                and (changes[0].before, changes[0].after) == (changes[-1].before, changes[-1].after)):
            changes[0] = RangeChange(changes[-1].start, changes[0].end,
                                     changes[0].before, changes[0].after)
            changes.pop()
        return changes

    def _replicas_or_empty(self, token: int, n: int) -> tuple[NodeInfo, ...]:
        if not self._tokens:
            return ()
        return self._vnode_replicas(self.vnode_index(token), n)

    # -- the ring map every process receives -----------------------------------------

    def to_json(self) -> str:
        return json.dumps({
            "version": self._version,
            "vnodes": self._vnodes,
            "nodes": [
                {"node_id": n.node_id, "address": n.address, "zone": n.zone,
                 "tokens": list(self._tokens_of[n.node_id])}
                for n in self._nodes
            ],
        }, separators=(",", ":"))

    @classmethod
    def from_json(cls, s: str) -> Ring:
        doc: dict[str, Any] = json.loads(s)
        nodes = [NodeInfo(d["node_id"], d["address"], d.get("zone", "zone-a")) for d in doc["nodes"]]
        tokens = {d["node_id"]: d["tokens"] for d in doc["nodes"] if d.get("tokens")}
        return cls(nodes, vnodes=doc["vnodes"], version=doc["version"], tokens=tokens)


# -- token allocation --------------------------------------------------------------------

# How much a split may trade the newcomer's zone share (replica load) for its primary share,
# and how strongly it prefers to take primary ranges from the most loaded nodes.
_ZONE_SLACK = 0.5
_PRIMARY_PULL = 20.0


class _Tokens:
    """Every token allocated so far, in sorted buckets (about four tokens each, rebuilt as
    the ring grows), for next/previous lookups."""

    __slots__ = ("shift", "buckets", "count")

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

    def __init__(self, placed: Sequence[tuple[NodeInfo, Sequence[int]]]) -> None:
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

    def join(self, node: NodeInfo, vnodes: int) -> tuple[int, ...]:
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
                t = (t + 1) & _MASK
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
            best = self._best_point(node_id, (offset + i * step - quarter) & _MASK, 0, 2 * quarter,
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
        at = ring.before((origin + lo) & _MASK) if lo else ring.before((origin + 1) & _MASK)
        # Offsets from origin, signed: the first gap may start before it.
        gap_start = (((at - origin) + (1 << 63)) & _MASK) - (1 << 63)
        best: tuple[float, int, int, str] | None = None
        while gap_start < hi:
            bucket = buckets[at >> shift]  # inline ring.after(at): the build's hot path
            i = bisect_right(bucket, at)
            following = bucket[i] if i < len(bucket) else ring.after(at)
            gap_end = gap_start + range_size(at, following)
            first = gap_start + 1 if gap_start + 1 > lo else lo
            last = gap_end - 1 if gap_end - 1 < hi else hi
            if first <= last:
                t_rel = gap_start + want_p
                t_rel = first if t_rel < first else last if t_rel > last else t_rel
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
        return (origin + t_rel) & _MASK, gained, holder

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
            lo = 1 if lo < 1 else size - 1 if lo > size - 1 else lo
            hi = int(want_z * (1 + _ZONE_SLACK))
            hi = lo if hi < lo else size - 1 if hi > size - 1 else hi
            start = (end - size) & _MASK
            t, gained, holder = self._best_point(node_id, start, lo, hi, want_z, 1.0 / want_z,
                                                 want_p, pull)
            taken = (t - start) & _MASK
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


def _allocate(nodes: Sequence[NodeInfo], given: Mapping[str, Sequence[int]],
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
