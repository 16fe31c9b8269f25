"""The router's copy of the versioned ring map, agreed with the storage nodes: every node
keeps the newest map it was given (PutRing), a router adopts the newest any node holds
(at start, then every few seconds) and hands its own to nodes that hold an older one,
so routers and nodes converge on one version without a coordinator of their own."""
from __future__ import annotations

import logging
from collections.abc import Iterable

from prometheus_client import Gauge

from router.replicas import Replicas
from router.ring import NodeInfo, Ring
from tidings.v1 import storage_pb2

log = logging.getLogger(__name__)

RING_VERSION = Gauge("tidings_ring_version", "Version of the ring map this router serves")
OWNERSHIP = Gauge("tidings_ring_ownership", "Fraction of the data each node replicates", ["node"])
RING_TIMEOUT = 2.0


class RingKeeper:
    def __init__(self, replicas: Replicas, interval: float = 2.0) -> None:
        self.replicas = replicas
        self.interval = interval
        self._show(replicas.ring)

    @property
    def ring(self) -> Ring:
        return self.replicas.ring

    def adopt(self, ring: Ring) -> None:
        if ring.version != self.ring.version:
            log.info("serving ring version %d (%d nodes)", ring.version, len(ring))
        self.replicas.ring = ring
        self._show(ring)

    def _show(self, ring: Ring) -> None:
        RING_VERSION.set(ring.version)
        OWNERSHIP.clear()
        for node_id, share in ring.ownership(self.replicas.consistency.n).items():
            OWNERSHIP.labels(node_id).set(share)

    async def held(self, nodes: Iterable[NodeInfo]) -> dict[NodeInfo, storage_pb2.RingMap]:
        """The map each answering node holds."""
        answers, _ = await self.replicas.each(
            nodes, lambda stub: stub.GetRing(storage_pb2.GetRingRequest(), timeout=RING_TIMEOUT))
        return answers

    async def publish(self, ring: Ring, nodes: Iterable[NodeInfo] | None = None) -> int:
        """Give the map to the nodes named (default: the ring's); returns how many hold it."""
        message = storage_pb2.RingMap(version=ring.version, json=ring.to_json())
        answers, _ = await self.replicas.each(ring.nodes if nodes is None else nodes,
                                              lambda stub: stub.PutRing(message, timeout=RING_TIMEOUT))
        return sum(held.version >= ring.version for held in answers.values())

    async def sync(self) -> None:
        """Adopt the newest map any node holds; hand ours to nodes behind it."""
        held = await self.held(self.ring.nodes)
        newest = max(held.values(), key=lambda m: m.version, default=None)
        if newest is not None and newest.version > self.ring.version:
            self.adopt(Ring.from_json(newest.json))
        behind = [n for n, m in held.items() if m.version < self.ring.version]
        if behind:
            await self.publish(self.ring, behind)
