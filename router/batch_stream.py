"""One long-lived `StorageNode.Batches` stream to a storage node: the coalesced batches of
router/coalescing.py written on it in turn, each answer matched to its request by id
(tidings_runtime/id_stream.py).

A message on an open stream costs a fraction of a unary RPC's CPU on both ends (no call to
set up, no deadline, headers or status of its own: ~0.03-0.05 ms against ~0.11-0.15 ms a side
for a bare echo on this machine). What a unary call gave per call is kept per batch: a
deadline (the wait for the answer; the node's late answer is dropped) and a status (a batch
whose stream breaks fails with the stream's status, UNAVAILABLE when the node went away, so
the failure detector and the quorum see what they saw before). A broken stream is not used
again; the next batch opens a new one.
"""
from __future__ import annotations

from typing import Any

from tidings.v1 import storage_pb2
from tidings_runtime.id_stream import IdStream

__all__ = ["BatchStream"]


class BatchStream(IdStream[storage_pb2.BatchRequest, storage_pb2.BatchResponse]):
    def __init__(self, stub: Any) -> None:
        super().__init__(stub.Batches(), "the node")

    async def send(self, request: storage_pb2.BatchRequest, timeout: float | None) -> storage_pb2.BatchResponse:
        """The batch's answer; AioRpcError with the stream's status if it breaks first, or
        DEADLINE_EXCEEDED after `timeout`."""
        return await self.ask(request, timeout)
