"""The mailbox order's fence on one node: which proposers its acceptors admit while the
ring changes (docs/architecture.md, "Mailbox order", Across ring changes).

A proposer names the rings it uses (OrderConfig). The node admits it if it serves the
fence's ring or a newer one and, while a change is pending (the fence's pending ring is
newer than its ring), only if it knows that pending ring too (so it uses joint quorums)
or serves it already. A refused proposer is sent the fence to learn from. The fence is
kept in CF_META and set through the group committer, so every accept or prepare that ran
before it is durable once it is set, and every one after it is judged by it.
"""
from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import TypeVar

from storage_node import keys
from storage_node.batch import Txn
from storage_node.engine import Engine
from storage_node.errors import InvalidArgument
from tidings.v1 import storage_pb2

FENCE_KEY = b"order-fence"


R = TypeVar("R", storage_pb2.OrderPromise, storage_pb2.OrderAcceptReply)


def ring_id(ring: storage_pb2.RingMap) -> int:
    """The 64-bit id of a ring map's json (what OrderConfig.pending_id names)."""
    return int.from_bytes(hashlib.blake2b(ring.json.encode(), digest_size=8).digest(), "big")


class OrderFence:
    def __init__(self, fence: storage_pb2.OrderFence | None = None) -> None:
        self.fence = fence if fence is not None else storage_pb2.OrderFence()
        self._pending_id = ring_id(self.fence.pending)

    @classmethod
    def load(cls, engine: Engine) -> OrderFence:
        held = engine.get(keys.CF_META, FENCE_KEY)
        return cls(None if held is None else storage_pb2.OrderFence.FromString(held))

    def set(self, txn: Txn, fence: storage_pb2.OrderFence) -> storage_pb2.OrderFence:
        """Keep `fence` unless the one held names a newer ring (run it in the committer)."""
        if fence.pending.version and fence.pending.version <= fence.ring.version:
            raise InvalidArgument(f"a pending ring {fence.pending.version} not newer than ring {fence.ring.version}")
        if fence.ring.version >= self.fence.ring.version:
            txn.put(keys.CF_META, FENCE_KEY, fence.SerializeToString())
            self.fence = fence
            self._pending_id = ring_id(fence.pending)
        return self.fence

    def admits(self, config: storage_pb2.OrderConfig) -> bool:
        ring, pending = self.fence.ring.version, self.fence.pending.version
        if config.ring_version < ring:
            return False
        if pending > ring and config.ring_version < pending:
            return config.pending_version == pending and config.pending_id == self._pending_id
        return True

    def guard(self, config: storage_pb2.OrderConfig, run: Callable[[], R], refusal: type[R]) -> R:
        """run() if the proposer's config is admitted; else a refusal carrying the fence."""
        if self.admits(config):
            return run()
        reply = refusal(stale_config=True)
        reply.fence.CopyFrom(self.fence)
        return reply
