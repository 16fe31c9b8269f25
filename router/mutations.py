"""A replicated write as a value: which StorageNode RPC, with which request, so the
replica layer can send it, time it out, and hold it as a hint for a replica that is down."""
from __future__ import annotations

from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Any, TypeAlias

from router.ring import NodeInfo
from tidings.v1 import storage_pb2, storage_pb2_grpc

Request: TypeAlias = storage_pb2.StoreMessageRequest | storage_pb2.UpdateMessageRequest | storage_pb2.DirectoryEntry

# The RPC of each mutation type, and the Hint field that carries it.
_RPC: dict[type, tuple[str, str]] = {
    storage_pb2.StoreMessageRequest: ("StoreMessage", "store"),
    storage_pb2.UpdateMessageRequest: ("UpdateMessage", "update"),
    storage_pb2.DirectoryEntry: ("PutDirectory", "directory"),
}


@dataclass(frozen=True)
class Mutation:
    request: Request

    def __post_init__(self) -> None:
        if type(self.request) not in _RPC:
            raise TypeError(f"not a replicated mutation: {type(self.request).__name__}")

    @property
    def method(self) -> str:
        return _RPC[type(self.request)][0]

    @property
    def version(self) -> int:
        return self.request.version

    def send(self, stub: storage_pb2_grpc.StorageNodeStub, timeout: float) -> Awaitable[Any]:
        return getattr(stub, self.method)(self.request, timeout=timeout)

    def hint_for(self, target: NodeInfo) -> storage_pb2.Hint:
        field = _RPC[type(self.request)][1]
        return storage_pb2.Hint(target_node_id=target.node_id, target_address=target.address,
                                **{field: self.request})
