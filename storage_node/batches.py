"""The storage node's side of a coalesced call (`StorageNode.Batch`, or one request of a
`Batches` stream): each call of the batch runs through the servicer's own method, all at once
(so their writes share group commits), and each gets its own answer or its own status, exactly
as if it had been called alone. A stream's requests run at once too, each answered with its
id when it is done."""
from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterable, AsyncIterator
from typing import Any

import grpc

from tidings.v1 import storage_pb2

log = logging.getLogger(__name__)

CALL_FIELDS = [f.name for f in storage_pb2.BatchCall.DESCRIPTOR.oneofs_by_name["call"].fields]


def method_of(field: str) -> str:
    """The StorageNode method a batch call's field names: store_message -> StoreMessage."""
    return "".join(part.capitalize() for part in field.split("_"))


class _Aborted(Exception):
    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        super().__init__(details)
        self.code = code
        self.details = details


class _CallContext:
    """What a servicer method uses of its context when it runs inside a batch."""

    async def abort(self, code: grpc.StatusCode, details: str = "") -> None:
        raise _Aborted(code, details)


def _status(code: grpc.StatusCode, details: str) -> storage_pb2.BatchResult:
    return storage_pb2.BatchResult(error=storage_pb2.CallStatus(code=code.value[0], details=details))


async def _one(servicer: Any, call: storage_pb2.BatchCall) -> storage_pb2.BatchResult:
    field = call.WhichOneof("call")
    if field is None:
        return _status(grpc.StatusCode.INVALID_ARGUMENT, "an empty batch call")
    try:
        answer = await getattr(servicer, method_of(field))(getattr(call, field), _CallContext())
    except _Aborted as exc:
        return _status(exc.code, exc.details)
    except Exception as exc:      # as grpc would answer an unexpected error of one call: INTERNAL
        log.exception("batched %s failed", field)
        return _status(grpc.StatusCode.INTERNAL, f"{type(exc).__name__}: {exc}")
    result = storage_pb2.BatchResult()
    getattr(result, field).CopyFrom(answer)
    return result


async def run_batch(servicer: Any, request: storage_pb2.BatchRequest) -> storage_pb2.BatchResponse:
    results = await asyncio.gather(*(_one(servicer, call) for call in request.calls))
    return storage_pb2.BatchResponse(results=results)


async def run_batches(servicer: Any, requests: AsyncIterable[storage_pb2.BatchRequest],
                      closing: asyncio.Event | None = None) -> AsyncIterator[storage_pb2.BatchResponse]:
    """A Batches stream's answers: each request run as `run_batch` runs it, as it comes, and
    answered with its id once done. The stream ends when the caller's half ends and every
    request is answered, or once `closing` is set (the node is stopping: what it read is
    answered, what it did not is the caller's to send elsewhere, as a refused RPC would be);
    if it is cancelled, so are the requests still running (as a cancelled Batch's would be)."""
    answered: asyncio.Queue[storage_pb2.BatchResponse | None] = asyncio.Queue()
    running: set[asyncio.Task[None]] = set()

    async def one(request: storage_pb2.BatchRequest) -> None:
        response = await run_batch(servicer, request)
        response.id = request.id
        answered.put_nowait(response)

    reading = True

    async def read() -> None:
        nonlocal reading
        try:
            try:
                async for request in requests:
                    task = asyncio.create_task(one(request))
                    running.add(task)
                    task.add_done_callback(running.discard)
            except asyncio.CancelledError:
                if closing is None or not closing.is_set():
                    raise
            reading = False
            while running:
                await asyncio.gather(*running, return_exceptions=True)
        finally:
            answered.put_nowait(None)

    async def stop_reading() -> None:
        assert closing is not None
        await closing.wait()
        if reading:
            reader.cancel()

    if closing is not None and closing.is_set():
        return
    reader = asyncio.create_task(read())
    closer = asyncio.create_task(stop_reading()) if closing is not None else None
    try:
        while (response := await answered.get()) is not None:
            yield response
        if not reader.cancelled():
            await reader      # its own error, if it had one, is the stream's
    finally:
        reader.cancel()
        if closer is not None:
            closer.cancel()
        for task in list(running):
            task.cancel()
