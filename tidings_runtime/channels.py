"""Channels to storage nodes, cached per address: a storage node's peers (hint replay, range
pulls) and, through router/nodes.py, the router's storage nodes."""
from __future__ import annotations

import asyncio

import grpc

from tidings.v1 import storage_pb2_grpc
from tidings_runtime.grpc_server import CHANNEL_OPTIONS

# A node that comes back is used again within a second, not after gRPC's default
# exponential backoff (up to two minutes) has run out.
PEER_CHANNEL_OPTIONS = [
    *CHANNEL_OPTIONS,
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.min_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 1000),
]


class PeerPool:
    """One channel and StorageNode stub per address, opened lazily, closed at stop."""

    def __init__(self) -> None:
        self._channels: dict[str, grpc.aio.Channel] = {}
        self._stubs: dict[str, storage_pb2_grpc.StorageNodeStub] = {}

    def channel(self, address: str) -> grpc.aio.Channel:
        channel = self._channels.get(address)
        if channel is None:
            channel = self._channels[address] = grpc.aio.insecure_channel(address, options=PEER_CHANNEL_OPTIONS)
        return channel

    def stub(self, address: str) -> storage_pb2_grpc.StorageNodeStub:
        stub = self._stubs.get(address)
        if stub is None:
            stub = self._stubs[address] = storage_pb2_grpc.StorageNodeStub(self.channel(address))
        return stub

    async def close(self) -> None:
        await asyncio.gather(*(channel.close() for channel in self._channels.values()))
        self._channels.clear()
        self._stubs.clear()
