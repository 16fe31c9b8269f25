"""Which acceptors the mailbox order asks, across ring changes (docs/architecture.md,
"Mailbox order", Across ring changes): the user's N replicas under the ring served and,
while a change is pending, under the ring being moved to as well. A round then needs W
of each set (joint quorums); a user whose replicas do not move has one set.

A router learns a pending change either from its own membership run (Replicas.pending)
or from a storage node's fence, sent with a refusal (OrderConfig older than the fence);
it learns a newer ring the same way (and serves it at once, as the ring keeper would).
"""
from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass

from router.replicas import Replicas
from router.ring import NodeInfo, Ring
from tidings.v1 import storage_pb2

log = logging.getLogger(__name__)


def ring_id(json: str) -> int:
    """blake2b-64 of a ring map's json, as storage_node/order_fence.py computes it."""
    return int.from_bytes(hashlib.blake2b(json.encode(), digest_size=8).digest(), "big")


@dataclass(frozen=True)
class Config:
    ring: Ring
    pending: Ring | None = None
    pending_id: int = 0

    @property
    def key(self) -> tuple[int, int, int]:
        return self.ring.version, self.pending.version if self.pending else 0, self.pending_id

    def wire(self) -> storage_pb2.OrderConfig:
        return storage_pb2.OrderConfig(ring_version=self.ring.version, pending_version=self.key[1],
                                       pending_id=self.pending_id)

    def groups(self, partition_key: str, n: int) -> list[list[NodeInfo]]:
        """The acceptor sets a round needs W of: the current owners, and the pending ones if
        they differ."""
        now = self.ring.preference_list(partition_key, n)
        if self.pending is None:
            return [now]
        then = self.pending.preference_list(partition_key, n)
        same = {x.node_id for x in now} == {x.node_id for x in then}
        return [now] if same else [now, then]


class OrderRings:
    def __init__(self, replicas: Replicas, adopt: Callable[[Ring], None] | None = None) -> None:
        self.replicas = replicas
        self._adopt = adopt
        self._learned: tuple[Ring, int] | None = None
        self._own: tuple[Ring, int] | None = None       # Replicas.pending with its id, computed once

    def config(self) -> Config:
        ring = self.replicas.ring
        if self.replicas.pending is not None and self.replicas.pending.version > ring.version:
            pending = self.replicas.pending
            if self._own is None or self._own[0] is not pending:
                self._own = pending, ring_id(pending.to_json())
            return Config(ring, pending, self._own[1])
        if self._learned is not None and self._learned[0].version > ring.version:
            return Config(ring, *self._learned)
        self._learned = None
        return Config(ring)

    def learn(self, fence: storage_pb2.OrderFence) -> None:
        """Take what a node's fence says is newer than what this router knows."""
        if fence.ring.version > self.replicas.ring.version:
            ring = Ring.from_json(fence.ring.json)
            log.info("mailbox order: serving ring version %d, learned from a node's fence", ring.version)
            if self._adopt is not None:
                self._adopt(ring)
            else:
                self.replicas.ring = ring
        if fence.pending.version > self.replicas.ring.version:
            if self._learned is None or self._learned[0].version != fence.pending.version \
                    or self._learned[1] != ring_id(fence.pending.json):
                log.info("mailbox order: ring %d is pending, joint quorums", fence.pending.version)
                self._learned = Ring.from_json(fence.pending.json), ring_id(fence.pending.json)
        else:
            self._learned = None
