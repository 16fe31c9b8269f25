"""One gRPC channel and StorageNode stub per storage node, opened lazily, closed at stop."""
from __future__ import annotations

import grpc

from router.ring import NodeInfo
from storage_node.grpc_runtime import CHANNEL_OPTIONS
from tidings.v1 import storage_pb2_grpc

# A storage node that comes back must be used again within a second, not after gRPC's
# default exponential backoff (up to two minutes) has run out.
NODE_CHANNEL_OPTIONS = [
    *CHANNEL_OPTIONS,
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.min_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 1000),
]


class NodePool:
    def __init__(self) -> None:
        self._channels: dict[str, grpc.aio.Channel] = {}
        self._stubs: dict[str, storage_pb2_grpc.StorageNodeStub] = {}

    def channel(self, node: NodeInfo) -> grpc.aio.Channel:
        channel = self._channels.get(node.address)
        if channel is None:
            channel = self._channels[node.address] = grpc.aio.insecure_channel(
                node.address, options=NODE_CHANNEL_OPTIONS)
        return channel

    def stub(self, node: NodeInfo) -> storage_pb2_grpc.StorageNodeStub:
        stub = self._stubs.get(node.address)
        if stub is None:
            stub = self._stubs[node.address] = storage_pb2_grpc.StorageNodeStub(self.channel(node))
        return stub

    async def close(self) -> None:
        for channel in self._channels.values():
            await channel.close()
        self._channels.clear()
        self._stubs.clear()
