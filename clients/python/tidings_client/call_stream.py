"""One long-lived `Mail.Calls` stream: the client's small idempotent calls carried on it
(id_stream.py; the router's side: router/call_stream.py). A message on an open stream costs each
end a fraction of a unary call's CPU (at one caller: 0.14 ms against 0.21 ms at the client, 0.14
against 0.30 at the server, bench/grpc_calls.py).

A carried call keeps what its unary call gave: a deadline (the router runs the call under it; the
client stops waiting after it) and a status, raised as the `grpc.aio.AioRpcError` the unary call
would have raised, so that `errors.from_rpc_error` maps both. A stream that breaks fails the calls
waiting on it with `StreamBroken`, which the client answers by sending them again as unary calls
(they are idempotent); a broken stream is not used again.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypeVar

import grpc
from google.protobuf.message import Message

from tidings.v1 import mail_pb2

from .id_stream import IdStream, answered_error

M = TypeVar("M", bound=Message)

# The idempotent calls whose requests and answers are small, carried on the stream (the router
# serves these, router/call_stream.py): a large body (GetRawMessage, GetAttachment, a message's
# text) would hold up the answers behind it on the one stream.
CARRIED = ("Authenticate", "CheckRecipient", "Deliver", "ListFolders", "ListMessages", "GetThread", "Search",
           "Changes", "Mailbox")

class StreamBroken(Exception):
    """The stream failed (the router went away, or has no `Mail.Calls`): `error` says how."""

    def __init__(self, error: grpc.aio.AioRpcError) -> None:
        super().__init__(error.details())
        self.error = error


class CallStream:
    def __init__(self, stub: Any) -> None:
        self._stream: IdStream[mail_pb2.CallRequest, mail_pb2.CallAnswer] = IdStream(stub.Calls(), "the router")

    @property
    def broken(self) -> bool:
        return self._stream.broken is not None

    async def call(self, method: str, request: Message, response_type: type[M], timeout: float | None,
                   metadata: Sequence[tuple[str, str]] | None) -> M:
        """The method's response; AioRpcError with the call's status if it failed (DEADLINE_EXCEEDED
        after `timeout`), StreamBroken if the stream broke first."""
        carried = mail_pb2.CallRequest(method=method, request=request.SerializeToString(), timeout=timeout or 0.0,
                                       metadata=dict(metadata or ()))
        try:
            answer = await self._stream.ask(carried, timeout)
        except grpc.aio.AioRpcError as exc:
            if exc is self._stream.broken:
                raise StreamBroken(exc) from None
            raise
        if answer.code:
            raise answered_error(answer.code, answer.details)
        return response_type.FromString(answer.response)

    async def close(self) -> None:
        await self._stream.close()
