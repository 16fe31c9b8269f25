"""The router's tidings.v1.Queue servicer: protobuf in and out for the outgoing queue's
workers and operators; the work is `router/queue.py`'s, the errors mapped by `service.rpc`."""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from router.queue import OutboundQueue
from router.service import rpc
from tidings.v1 import mail_pb2, queue_pb2, queue_pb2_grpc

MAX_LEASE_MS = 3_600_000


class SigningKeyLike(Protocol):
    @property
    def selector(self) -> str: ...
    @property
    def algorithm(self) -> str: ...
    @property
    def private_pem(self) -> bytes: ...
    @property
    def record_value(self) -> str: ...


class SigningKeySource(Protocol):
    """The hosted domains' DKIM keys (router/dkim_keys.py)."""

    async def signing_keys(self, domain: str) -> Sequence[SigningKeyLike]: ...


class QueueService(queue_pb2_grpc.QueueServicer):
    def __init__(self, queue: OutboundQueue, keys: SigningKeySource) -> None:
        self.queue = queue
        self.keys = keys

    @rpc
    async def LeaseDue(self, request: queue_pb2.LeaseRequest, context: Any) -> queue_pb2.QueueItems:
        limit = min(request.limit or 10, 100)
        lease_ms = min(request.lease_ms or 60_000, MAX_LEASE_MS)
        return queue_pb2.QueueItems(items=await self.queue.lease_due(request.worker, limit, lease_ms))

    @rpc
    async def ReportAttempt(self, request: queue_pb2.QueueItem, context: Any) -> queue_pb2.QueueItem:
        return await self.queue.report(request)

    @rpc
    async def GetBody(self, request: queue_pb2.QueueItemRef, context: Any) -> mail_pb2.RawMessage:
        return mail_pb2.RawMessage(raw=await self.queue.body(request.id))

    @rpc
    async def GetSigningKeys(self, request: queue_pb2.SigningKeysRequest, context: Any) -> queue_pb2.SigningKeys:
        keys = await self.keys.signing_keys(request.domain)
        return queue_pb2.SigningKeys(domain=request.domain, keys=[
            queue_pb2.SigningKey(selector=k.selector, algorithm=k.algorithm, private_key=k.private_pem,
                                 dns_record=k.record_value) for k in keys])

    @rpc
    async def ListItems(self, request: queue_pb2.ListQueueRequest, context: Any) -> queue_pb2.QueueItems:
        return queue_pb2.QueueItems(items=await self.queue.listing(request.limit, request.include_done))

    @rpc
    async def GetItem(self, request: queue_pb2.QueueItemRef, context: Any) -> queue_pb2.QueueItem:
        return await self.queue.get(request.id)

    @rpc
    async def RetryNow(self, request: queue_pb2.RetryRequest, context: Any) -> queue_pb2.QueueItems:
        return queue_pb2.QueueItems(items=await self.queue.retry(request.id, request.all))

    @rpc
    async def DeleteItem(self, request: queue_pb2.QueueItemRef, context: Any) -> queue_pb2.QueueItem:
        return await self.queue.delete(request.id)
