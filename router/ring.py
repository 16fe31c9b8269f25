"""The consistent-hash ring: nodes, their virtual-node tokens, and a version.

A ``Ring`` is an immutable value, swapped whole when membership changes (as Cassandra's
TokenMetadata, but without the lock: nobody mutates it). Tokens live in the unsigned
64-bit space of ``tidings_runtime.partitions.partition_token``; the vnode at token ``t`` owns the
range ``(previous token, t]``, wrapping past ``2**64 - 1`` to 0.

A node without tokens gets them from ``token_allocator.py`` (balanced per zone and over
the whole ring), deterministically from the node list in order (the join order): ``Ring(nodes)``
equals ``Ring(nodes[:-1]).with_node(nodes[-1])``. Tokens, once given, never move: leaving
drops a node's tokens and nothing else, joining only adds tokens, and both travel in
``to_json``. So ``ring.without_node(x)`` keeps everyone's tokens and is not
``Ring(nodes minus x)``.
"""
from __future__ import annotations

import json
from bisect import bisect_left
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from router.placement import zone_aware_walk
from router.token_allocator import allocate
from router.tokens import TOKEN_SPACE, range_size
from tidings_runtime.partitions import partition_token

__all__ = ["TOKEN_SPACE", "NodeInfo", "RangeChange", "Ring", "range_size"]


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


class Ring:
    """Immutable, versioned consistent-hash ring with virtual nodes."""

    __slots__ = (
        "_by_id", "_cache", "_nodes", "_owner", "_tokens", "_tokens_of", "_version", "_vnodes",
        "_zone_count", "_zone_idx",
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
        tokens_of = allocate(node_list, given, vnodes)
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
                                allocate(nodes, self._tokens_of, self._vnodes))

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
        share = dict.fromkeys((node.node_id for node in self._nodes), 0.0)
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
