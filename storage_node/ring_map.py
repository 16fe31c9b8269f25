"""The versioned ring map a node has been given: kept in CF meta, replaced only by a newer version."""
from __future__ import annotations

from storage_node import keys
from storage_node.batch import Txn
from storage_node.commit import GroupCommitter
from storage_node.engine import Engine
from tidings.v1 import storage_pb2


def _decode(value: bytes | None) -> storage_pb2.RingMap:
    held = storage_pb2.RingMap()
    if value is not None:
        held.ParseFromString(value)
    return held


class RingStore:
    def __init__(self, engine: Engine, committer: GroupCommitter) -> None:
        self._engine = engine
        self._committer = committer

    def get(self) -> storage_pb2.RingMap:
        """The ring map held (version 0 when none)."""
        return _decode(self._engine.get(keys.CF_META, keys.RING_KEY))

    async def put(self, ring: storage_pb2.RingMap) -> storage_pb2.RingMap:
        """Keep `ring` if it is newer than the one held; returns what is held afterwards."""

        def mutate(txn: Txn) -> storage_pb2.RingMap:
            held = _decode(txn.get(keys.CF_META, keys.RING_KEY))
            if ring.version <= held.version:
                return held
            txn.put(keys.CF_META, keys.RING_KEY, ring.SerializeToString())
            return ring

        return await self._committer.submit(mutate)
