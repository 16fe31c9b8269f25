"""Channels from this storage node to its peers (hint replay, range pulls), cached per address."""
from __future__ import annotations

import asyncio

import grpc

from storage_node.grpc_runtime import CHANNEL_OPTIONS
from tidings.v1 import storage_pb2_grpc

# A peer that comes back is used again within a second, not after gRPC's default
# exponential backoff (up to two minutes) has run out; router/nodes.py does the same.
PEER_CHANNEL_OPTIONS = [
    *CHANNEL_OPTIONS,
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.min_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 1000),
]


class PeerPool:
    """One channel and StorageNode stub per peer address, opened lazily, closed at stop."""

    def __init__(self) -> None:
        self._channels: dict[str, grpc.aio.Channel] = {}
        self._stubs: dict[str, storage_pb2_grpc.StorageNodeStub] = {}

    def stub(self, address: str) -> storage_pb2_grpc.StorageNodeStub:
        stub = self._stubs.get(address)
        if stub is None:
            channel = self._channels[address] = grpc.aio.insecure_channel(address, options=PEER_CHANNEL_OPTIONS)
            stub = self._stubs[address] = storage_pb2_grpc.StorageNodeStub(channel)
        return stub

    async def close(self) -> None:
        await asyncio.gather(*(channel.close() for channel in self._channels.values()))
        self._channels.clear()
        self._stubs.clear()
