"""`Mail.Calls`: the mail API's unary calls carried on one long-lived stream (the edges' client,
tidings_client/call_stream.py, sends them there: a message on an open stream costs each end a
fraction of a unary call's CPU, bench/grpc_calls.py).

Each `CallRequest` runs in a task of its own through the very method its unary call runs (the
`rpc` wrapper's metrics and error mapping included), under the call's timeout and request id, and
its answer is written when it finishes, in whatever order. What the unary path gives per call is
kept per call: its status and detail (a method's abort, DEADLINE_EXCEEDED after the timeout,
UNKNOWN for an unexpected error, as grpc.aio reports one). When the client half-closes, the calls
still running are answered first; when the stream breaks, they are cancelled.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, NoReturn

import grpc
from google.protobuf.message import DecodeError, Message
from google.protobuf.message_factory import GetMessageClass

from tidings.v1 import mail_pb2
from tidings_runtime import logs
from tidings_runtime.id_stream import CARRIED

log = logging.getLogger(__name__)

Method = Callable[[Message, Any], Awaitable[Message]]


class Aborted(Exception):
    """A carried call's method ended it with a status (`context.abort`)."""

    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        super().__init__(details)
        self.code, self.details = code, details


class CallContext:
    """What a carried call's method sees of its context: `abort`, which raises as grpc.aio's does."""

    async def abort(self, code: grpc.StatusCode, details: str = "", trailing_metadata: Any = ()) -> NoReturn:
        raise Aborted(code, details)


def _failed(call_id: int, code: grpc.StatusCode, details: str) -> mail_pb2.CallAnswer:
    return mail_pb2.CallAnswer(id=call_id, code=code.value[0], details=details)


class CarriedCalls:
    def __init__(self, servicer: Any) -> None:
        service = mail_pb2.DESCRIPTOR.services_by_name["Mail"]
        self._methods: dict[str, tuple[Method, type[Message]]] = {
            name: (getattr(servicer, name), GetMessageClass(service.methods_by_name[name].input_type))
            for name in CARRIED}
        self._context = CallContext()

    async def serve(self, requests: AsyncIterator[mail_pb2.CallRequest]) -> AsyncIterator[mail_pb2.CallAnswer]:
        """The answers of the calls `requests` brings, as each finishes."""
        answers: asyncio.Queue[mail_pb2.CallAnswer | None] = asyncio.Queue()   # None: no more requests
        running: set[asyncio.Task[mail_pb2.CallAnswer]] = set()

        def finished(task: asyncio.Task[mail_pb2.CallAnswer]) -> None:
            running.discard(task)
            if not task.cancelled():
                answers.put_nowait(task.result())

        async def read() -> None:
            try:
                async for request in requests:
                    task = asyncio.create_task(self._answer(request))
                    running.add(task)
                    task.add_done_callback(finished)
            except Exception as exc:  # noqa: BLE001 - the stream broke; grpc.aio cancels its handler
                log.debug("Mail.Calls stream broke: %r", exc)
            finally:
                answers.put_nowait(None)

        reader = asyncio.create_task(read())
        reading = True
        try:
            while reading or running or not answers.empty():
                answer = await answers.get()
                if answer is None:
                    reading = False     # half-closed: the calls still running are answered first
                else:
                    yield answer
        finally:
            reader.cancel()
            for task in list(running):
                task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader

    async def _answer(self, call: mail_pb2.CallRequest) -> mail_pb2.CallAnswer:
        entry = self._methods.get(call.method)
        if entry is None:
            return _failed(call.id, grpc.StatusCode.UNIMPLEMENTED, f"{call.method!r} is not carried on Mail.Calls")
        method, request_type = entry
        try:
            request = request_type.FromString(call.request)
        except DecodeError:
            return _failed(call.id, grpc.StatusCode.INTERNAL, f"a {call.method} request that does not parse")
        rid = logs.well_formed(call.metadata.get(logs.METADATA_KEY))
        bound = logs.bound(request_id=rid) if rid is not None else contextlib.nullcontext()
        try:
            with bound:
                log.debug("rpc", extra={"method": f"/tidings.v1.Mail/{call.method}"})   # as a unary call's
                async with asyncio.timeout(call.timeout or None) as scope:
                    response = await method(request, self._context)
        except Aborted as exc:
            return _failed(call.id, exc.code, exc.details)
        except TimeoutError as exc:
            if scope.expired():
                return _failed(call.id, grpc.StatusCode.DEADLINE_EXCEEDED, "Deadline Exceeded")
            return self._unexpected(call, exc)
        except Exception as exc:  # noqa: BLE001 - what grpc.aio answers a unary call that raised
            return self._unexpected(call, exc)
        return mail_pb2.CallAnswer(id=call.id, response=response.SerializeToString())

    def _unexpected(self, call: mail_pb2.CallRequest, exc: Exception) -> mail_pb2.CallAnswer:
        log.error("carried %s failed", call.method, exc_info=exc)
        return _failed(call.id, grpc.StatusCode.UNKNOWN, f"Unexpected {type(exc)}: {exc}")
