"""The router's channels to storage nodes: tidings_runtime.channels' pool, addressed by
NodeInfo; each node's stub coalesces concurrent calls (router/coalescing.py)."""
from __future__ import annotations

import grpc

from router.coalescing import CoalescingStub
from router.ring import NodeInfo
from tidings.v1 import storage_pb2_grpc
from tidings_runtime.channels import PeerPool


class NodePool:
    def __init__(self, coalesce: bool = True) -> None:
        self._peers = PeerPool()
        self._coalesce = coalesce
        self._stubs: dict[str, CoalescingStub] = {}

    def channel(self, node: NodeInfo) -> grpc.aio.Channel:
        return self._peers.channel(node.address)

    def stub(self, node: NodeInfo) -> storage_pb2_grpc.StorageNodeStub:
        if not self._coalesce:
            return self._peers.stub(node.address)
        held = self._stubs.get(node.address)
        if held is None:
            held = self._stubs[node.address] = CoalescingStub(self._peers.stub(node.address))
        return held  # the same methods as the stub, some of them coalesced

    async def close(self) -> None:
        for held in self._stubs.values():
            await held.batcher.close()
        self._stubs.clear()
        await self._peers.close()
