"""Calls to one storage node, coalesced: the unary calls of the mail path (stores, updates,
listings, searches, directory and thread reads, spam counts, the mailbox order's calls) made
in one turn of the event loop, or while earlier ones to the same node are on the wire, go
together as one batch, a request on the long-lived `StorageNode.Batches` stream the router
keeps to each node (router/batch_stream.py); a call alone goes the same way.

Python's gRPC costs about half a millisecond of CPU a call on this machine, router and node
together, and a delivery makes some twenty of them; at load most of that is per call, not
per byte, so one batch for what was several pays, and a message on an open stream costs a
fraction of an RPC. A caller sees no difference: the same awaitable, the same answer, the
same `grpc.aio.AioRpcError` for its own failure (a failed batch fails each of its calls with
the batch's status). At most `MAX_IN_FLIGHT` batches are on the wire to a node at once; the
calls of one turn of the loop leave at its end, so an idle router adds no delay and still
sends what one request asks of a node at once (a folder list's counters and folder names)
as one batch. A batch holds at most MAX_CALLS calls and BATCH_BYTES of requests; a message
read (whose answer is the whole message) always goes alone as its own RPC, so no batch
outgrows gRPC's message limit. A node that does not know `Batches` (UNIMPLEMENTED: an older
version during an upgrade) gets `Batch` RPCs, and one that does not know `Batch` single
calls, from then on.
"""
from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import grpc
from prometheus_client import Histogram

from router.batch_stream import BatchStream
from tidings.v1 import storage_pb2, storage_pb2_grpc
from tidings_runtime.id_stream import answered_error, rpc_error

log = logging.getLogger(__name__)

MAX_IN_FLIGHT = 2
MAX_CALLS = 64

CALL_FIELDS = [f.name for f in storage_pb2.BatchCall.DESCRIPTOR.oneofs_by_name["call"].fields]
BATCH_SIZE = Histogram("tidings_router_batch_calls", "Calls coalesced into one StorageNode.Batch RPC",
                       buckets=(1, 2, 4, 8, 16, 32, 64))


def method_of(field: str) -> str:
    return "".join(part.capitalize() for part in field.split("_"))


# A message read answers with the whole message (up to the largest message accepted): alone, so
# that no batch's answer can outgrow gRPC's message limit.
ALONE = {"get_message"}
BATCHED = {method_of(field): field for field in CALL_FIELDS if field not in ALONE}
BATCH_BYTES = 4 * 1024 * 1024    # requests of one batch, at most (a larger request goes alone)


@dataclass
class _Call:
    field: str
    request: Any
    future: asyncio.Future[Any]
    deadline: float | None


class NodeBatcher:
    """One node's queue of calls and the batches in flight to it."""

    def __init__(self, stub: storage_pb2_grpc.StorageNodeStub) -> None:
        self._stub = stub
        self._queue: list[_Call] = []
        self._in_flight = 0
        self.batching = True
        self.streaming = True
        self._stream: BatchStream | None = None
        self._flush_soon = False
        self._tasks: set[asyncio.Task[None]] = set()

    async def call(self, field: str, request: Any, timeout: float | None = None) -> Any:
        loop = asyncio.get_running_loop()
        call = _Call(field, request, loop.create_future(), None if timeout is None else loop.time() + timeout)
        call.future.add_done_callback(_retrieved)     # a caller that gave up leaves no unread error
        self._queue.append(call)
        if not self._flush_soon:
            # the calls made in this turn of the loop (a quorum's, a gather's) leave together
            self._flush_soon = True
            loop.call_soon(self._flush)
        # the caller's own deadline: one timer (wait_for and shield cost ~25 us more a call)
        expiry = None if call.deadline is None else loop.call_at(call.deadline, _expire, call)
        try:
            return await call.future
        finally:
            if expiry is not None:
                expiry.cancel()

    def _flush(self) -> None:
        self._flush_soon = False
        self._send_some()

    def _send_some(self) -> None:
        while self._queue and self._in_flight < MAX_IN_FLIGHT:
            calls, self._queue = _take(self._queue)
            self._in_flight += 1
            task = asyncio.get_running_loop().create_task(self._send(calls))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _send(self, calls: list[_Call]) -> None:
        try:
            calls = [c for c in calls if not c.future.done()]     # its caller gave up already
            if not calls:
                return
            if not self.batching or (len(calls) == 1 and not self.streaming):
                await asyncio.gather(*(self._alone(c) for c in calls))
                return
            await self._together(calls)
        finally:
            self._in_flight -= 1
            self._send_some()

    async def _alone(self, call: _Call) -> None:
        try:
            answer = await getattr(self._stub, method_of(call.field))(call.request, timeout=_left(call.deadline))
        except grpc.aio.AioRpcError as exc:
            _fail(call, exc)
        else:
            _answer(call, answer)

    async def _together(self, calls: list[_Call]) -> None:
        BATCH_SIZE.observe(len(calls))
        request = storage_pb2.BatchRequest(calls=[storage_pb2.BatchCall(**{c.field: c.request}) for c in calls])
        deadlines = [c.deadline for c in calls]
        timeout = None if None in deadlines else max(_left(d) or 0.0 for d in deadlines)
        try:
            response = await self._batch(request, timeout)
        except grpc.aio.AioRpcError as exc:
            if exc.code() == grpc.StatusCode.UNIMPLEMENTED:
                log.warning("a storage node does not know Batch: single calls to it from now on")
                self.batching = False
                await asyncio.gather(*(self._alone(c) for c in calls))
                return
            for call in calls:
                _fail(call, exc)
            return
        for call, result in zip(calls, response.results):
            if result.WhichOneof("result") == "error":
                _fail(call, answered_error(result.error.code, result.error.details))
            else:
                _answer(call, getattr(result, call.field))


    async def _batch(self, request: storage_pb2.BatchRequest, timeout: float | None) -> storage_pb2.BatchResponse:
        if not self.streaming:
            return await self._stub.Batch(request, timeout=timeout)
        if self._stream is None or self._stream.broken is not None:
            self._stream = BatchStream(self._stub)
        try:
            return await self._stream.send(request, timeout)
        except grpc.aio.AioRpcError as exc:
            if exc.code() != grpc.StatusCode.UNIMPLEMENTED:
                raise
        log.warning("a storage node does not know Batches: Batch RPCs to it from now on")
        self.streaming = False
        return await self._stub.Batch(request, timeout=timeout)

    async def close(self) -> None:
        if self._stream is not None:
            await self._stream.close()


def _take(queue: list[_Call]) -> tuple[list[_Call], list[_Call]]:
    """The next batch (up to MAX_CALLS calls and BATCH_BYTES of requests, at least one call),
    and what is left."""
    size = 0
    for count, call in enumerate(queue[:MAX_CALLS]):
        size += call.request.ByteSize()
        if size > BATCH_BYTES and count:
            return queue[:count], queue[count:]
    return queue[:MAX_CALLS], queue[MAX_CALLS:]


def _retrieved(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()


def _left(deadline: float | None) -> float | None:
    return None if deadline is None else max(0.001, deadline - asyncio.get_running_loop().time())


def _answer(call: _Call, answer: Any) -> None:
    if not call.future.done():
        call.future.set_result(answer)


def _expire(call: _Call) -> None:
    _fail(call, rpc_error(grpc.StatusCode.DEADLINE_EXCEEDED, "Deadline Exceeded"))


def _fail(call: _Call, exc: BaseException) -> None:
    if not call.future.done():
        call.future.set_exception(exc)


class CoalescingStub:
    """A StorageNodeStub whose batchable calls go through the node's batcher; every other
    method (streams, admin calls) is the plain stub's."""

    def __init__(self, stub: storage_pb2_grpc.StorageNodeStub) -> None:
        self._stub = stub
        self.batcher = NodeBatcher(stub)

    def __getattr__(self, name: str) -> Callable[..., Awaitable[Any]]:
        field = BATCHED.get(name)
        if field is None:
            return getattr(self._stub, name)

        def batched(request: Any, timeout: float | None = None) -> Awaitable[Any]:
            return self.batcher.call(field, request, timeout)
        return batched
