"""The router's channels to storage nodes: tidings_runtime.channels' pool, addressed by NodeInfo."""
from __future__ import annotations

import grpc

from router.ring import NodeInfo
from tidings.v1 import storage_pb2_grpc
from tidings_runtime.channels import PeerPool


class NodePool:
    def __init__(self) -> None:
        self._peers = PeerPool()

    def channel(self, node: NodeInfo) -> grpc.aio.Channel:
        return self._peers.channel(node.address)

    def stub(self, node: NodeInfo) -> storage_pb2_grpc.StorageNodeStub:
        return self._peers.stub(node.address)

    async def close(self) -> None:
        await self._peers.close()
