"""Replica placement: the zone-aware clockwise walk that turns a ring position into a preference list.

From the vnode that owns a key's token, walk the ring clockwise. A node from a zone not
used yet is taken at once; a node from a zone already used is set aside. Once every zone
is used, the set-aside nodes are taken in walk order, then any further distinct node the
walk meets. So the list is N distinct nodes, spread over as many zones as exist, and is
shorter than N only when the ring has fewer than N nodes (as Cassandra's
NetworkTopologyStrategy does with racks).

The walk knows nothing of tokens or addresses: it works on the owner of each ring
position, so ring.py can run it over compact node indices and cache the result per vnode.
"""
from __future__ import annotations

from collections.abc import Hashable, Sequence
from typing import Protocol, TypeVar

N = TypeVar("N", bound=Hashable)
_K_contra = TypeVar("_K_contra", contravariant=True)


class ZoneLookup(Protocol[_K_contra]):
    """Anything indexable by node: a list for int node indices, a dict for ids."""

    def __getitem__(self, node: _K_contra, /) -> Hashable: ...


def zone_aware_walk(
    owners: Sequence[N],
    start: int,
    n: int,
    zone_of: ZoneLookup[N],
    node_count: int,
    zone_count: int,
) -> list[N]:
    """Return up to ``n`` distinct owners walking clockwise from ``owners[start]``, distinct zones first.

    ``owners[i]`` is the node holding the i-th token in ring order; ``node_count`` and
    ``zone_count`` are the numbers of distinct nodes and zones among them (they bound the
    walk). The result has ``min(n, node_count)`` nodes, each from a new zone while unused
    zones remain.
    """
    size = len(owners)
    want = min(n, node_count)
    if want <= 0 or size == 0:
        return []
    chosen: list[N] = []
    seen_nodes: set[N] = set()
    seen_zones: set[Hashable] = set()
    skipped: list[N] = []
    all_zones = False
    index = start % size
    for _ in range(size):
        node = owners[index]
        index += 1
        if index == size:
            index = 0
        if node in seen_nodes:
            continue
        seen_nodes.add(node)
        if all_zones:
            chosen.append(node)
        else:
            zone = zone_of[node]
            if zone in seen_zones:
                skipped.append(node)
                continue
            seen_zones.add(zone)
            chosen.append(node)
            if len(seen_zones) == zone_count:
                all_zones = True
                # Every zone is used: the set-aside nodes come next, in walk order.
                chosen.extend(skipped[: want - len(chosen)])
                skipped.clear()
        if len(chosen) >= want:
            return chosen[:want]
        if len(seen_nodes) == node_count:
            break
    chosen.extend(skipped[: want - len(chosen)])
    return chosen
