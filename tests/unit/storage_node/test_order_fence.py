"""The mailbox order's fence: while a ring change is pending only proposers that know the
pending ring (or serve it) are admitted, older rings never; the fence survives a restart
and an older one never replaces it."""
from __future__ import annotations

from pathlib import Path

import pytest

from storage_node.blobs import LocalBlobStore
from storage_node.engine import Engine
from storage_node.errors import InvalidArgument
from storage_node.order_fence import OrderFence, ring_id
from tidings.v1 import storage_pb2

OLD = storage_pb2.RingMap(version=1, json='{"version": 1}')
NEW = storage_pb2.RingMap(version=2, json='{"version": 2}')
OTHER = storage_pb2.RingMap(version=2, json='{"version": 2, "another": true}')


def config(ring: int, pending: storage_pb2.RingMap | None = None) -> storage_pb2.OrderConfig:
    if pending is None:
        return storage_pb2.OrderConfig(ring_version=ring)
    return storage_pb2.OrderConfig(ring_version=ring, pending_version=pending.version, pending_id=ring_id(pending))


def test_a_pending_fence_admits_only_proposers_that_know_that_ring() -> None:
    fence = OrderFence(storage_pb2.OrderFence(ring=OLD, pending=NEW))
    assert not fence.admits(config(1))                 # the old owners alone: refused
    assert fence.admits(config(1, NEW))                # joint quorums
    assert not fence.admits(config(1, OTHER))          # another ring of the same version
    assert fence.admits(config(2))                     # already serving the new ring
    assert not fence.admits(config(0, NEW))


def test_a_settled_fence_refuses_older_rings_and_the_refusal_carries_the_fence() -> None:
    fence = OrderFence(storage_pb2.OrderFence(ring=NEW))
    assert fence.admits(config(2)) and fence.admits(config(3)) and not fence.admits(config(1, NEW))
    refusal = fence.guard(config(1), lambda: storage_pb2.OrderPromise(promised=True), storage_pb2.OrderPromise)
    assert refusal.stale_config and not refusal.promised and refusal.fence.ring == NEW
    assert fence.guard(config(2), lambda: storage_pb2.OrderPromise(promised=True), storage_pb2.OrderPromise).promised
    assert OrderFence().admits(config(0))              # never fenced: every proposer


def test_the_fence_is_kept_across_a_restart_and_never_goes_back(tmp_path: Path) -> None:
    engine = Engine(tmp_path / "db", LocalBlobStore(tmp_path / "blobs"))
    try:
        fence = OrderFence.load(engine)
        txn = engine.new_txn()
        fence.set(txn, storage_pb2.OrderFence(ring=NEW))
        engine.commit(txn)
        txn = engine.new_txn()
        held = fence.set(txn, storage_pb2.OrderFence(ring=OLD, pending=NEW))
        engine.commit(txn)
        assert held == storage_pb2.OrderFence(ring=NEW)
        with pytest.raises(InvalidArgument):
            fence.set(engine.new_txn(), storage_pb2.OrderFence(ring=NEW, pending=OLD))
        assert OrderFence.load(engine).fence == storage_pb2.OrderFence(ring=NEW)
    finally:
        engine.close()
