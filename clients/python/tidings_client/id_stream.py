"""One long-lived bidirectional gRPC stream on which each request carries an id and its answer
comes back with it, in whatever order: the client's `Mail.Calls` (call_stream.py) and the
router's `StorageNode.Batches` (router/batch_stream.py, through tidings_runtime/id_stream.py).

A message on an open stream costs each end a fraction of a unary call's CPU (no call to set up,
no deadline, headers or status of its own: bench/grpc_calls.py). What a unary call gave per call
is kept per request: a deadline (the wait for the answer; a late answer is dropped) and a status
(a request whose stream breaks fails with the stream's status, UNAVAILABLE when the far end went
away). A broken stream is not used again (`broken`); the caller opens a new one.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any, Generic, Protocol, TypeVar

import grpc

log = logging.getLogger(__name__)


class _Identified(Protocol):
    id: int


Request = TypeVar("Request", bound=_Identified)
Answer = TypeVar("Answer", bound=_Identified)


_CODES = {code.value[0]: code for code in grpc.StatusCode}


def rpc_error(code: grpc.StatusCode, details: str) -> grpc.aio.AioRpcError:
    """A failure made here (a request's, a stream's), as grpc.aio raises its own."""
    return grpc.aio.AioRpcError(code, grpc.aio.Metadata(), grpc.aio.Metadata(), details=details)


def answered_error(code: int, details: str) -> grpc.aio.AioRpcError:
    """A failure an answer carries as a status number (a batch result's, a carried call's)."""
    return rpc_error(_CODES.get(code, grpc.StatusCode.UNKNOWN), details)


class IdStream(Generic[Request, Answer]):
    def __init__(self, call: Any, far_end: str) -> None:
        """`call`: the opened stream-stream call; `far_end` names who answers, for statuses."""
        self._call = call
        self._far_end = far_end
        self._waiting: dict[int, asyncio.Future[Answer]] = {}
        self._last_id = 0
        # one writer: a request's deadline never cancels a write (grpc.aio cancels the whole
        # stream when a write is cancelled), and writes go out one at a time, in order
        self._outbox: asyncio.Queue[Request] = asyncio.Queue()
        self.broken: grpc.aio.AioRpcError | None = None
        loop = asyncio.get_running_loop()
        self._reader = loop.create_task(self._read())
        self._writer = loop.create_task(self._write())

    async def ask(self, request: Request, timeout: float | None) -> Answer:
        """The request's answer (its `id` is set here); AioRpcError with the stream's status if
        it breaks first (`broken`), or DEADLINE_EXCEEDED after `timeout`."""
        if self.broken is not None:
            raise self.broken
        self._last_id += 1
        request.id = self._last_id
        answer: asyncio.Future[Answer] = asyncio.get_running_loop().create_future()
        self._waiting[request.id] = answer
        self._outbox.put_nowait(request)
        try:
            async with asyncio.timeout(timeout):
                return await answer
        except TimeoutError:
            raise rpc_error(grpc.StatusCode.DEADLINE_EXCEEDED, "Deadline Exceeded") from None
        finally:
            self._waiting.pop(request.id, None)

    async def close(self) -> None:
        self._call.cancel()
        for task in (self._writer, self._reader):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _write(self) -> None:
        while True:
            request = await self._outbox.get()
            if request.id not in self._waiting:      # its caller gave up before it left
                continue
            try:
                await self._call.write(request)
            except (grpc.aio.AioRpcError, grpc.aio.UsageError, asyncio.InvalidStateError) as exc:
                self._break(await self._status(exc))
                return

    async def _read(self) -> None:
        try:
            while True:
                response = await self._call.read()
                if response is grpc.aio.EOF:
                    self._break(rpc_error(grpc.StatusCode.UNAVAILABLE, f"{self._far_end} ended the stream"))
                    return
                answer = self._waiting.get(response.id)
                if answer is not None and not answer.done():
                    answer.set_result(response)
        except grpc.aio.AioRpcError as exc:
            self._break(exc)
        except asyncio.CancelledError:
            self._break(rpc_error(grpc.StatusCode.CANCELLED, "the stream was closed"))
            raise

    async def _status(self, exc: BaseException) -> grpc.aio.AioRpcError:
        """The status of a stream whose write failed (the call's own, once it has one)."""
        if isinstance(exc, grpc.aio.AioRpcError):
            return exc
        if self._call.done():
            return rpc_error(await self._call.code(), await self._call.details() or "")
        return rpc_error(grpc.StatusCode.UNAVAILABLE, f"the stream to {self._far_end} failed: {exc!r}")

    def _break(self, error: grpc.aio.AioRpcError) -> None:
        """Fail every request still waiting; the stream is not used again."""
        if self.broken is None:
            self.broken = error
            log.debug("stream to %s broken: %s", self._far_end, error.code().name)
        for answer in self._waiting.values():
            if not answer.done():
                answer.set_exception(error)
        if self._writer is not asyncio.current_task():
            self._writer.cancel()               # nothing more goes out on it
