"""The client's small idempotent calls on one `Mail.Calls` stream, over a real gRPC server on a
loopback port running the router's side (router/call_stream.py) before a stand-in servicer:
each call gets its own answer, in the order the calls finish, all on one stream; a method's
abort, a deadline and an unexpected error reach the caller as the typed errors a unary call
gives; each call's request id reaches its method; a call the router answers UNAVAILABLE, or
whose stream breaks, is sent again unary, and the next call opens a new stream; a router without
`Mail.Calls` gets unary calls; a call not carried, or too large, goes unary."""
from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc
import pytest

from router.call_stream import CARRIED, CallContext, CarriedCalls
from tests.loopback_grpc import serve
from tidings.v1 import mail_pb2, mail_pb2_grpc, types_pb2
from tidings_client import DeadlineExceeded, InvalidArgument, MailClient, NotFound, Unavailable
from tidings_client.client import CARRIED as CLIENT_CARRIED
from tidings_client.client import CARRY_LIMIT
from tidings_client.errors import Unknown
from tidings_runtime import logs


class Router(mail_pb2_grpc.MailServicer):
    """ListFolders answers after `delay`, naming the folder after the user; Search refuses a bad
    query; GetThread fails unexpectedly; CheckRecipient answers UNAVAILABLE the first `flaky`
    times; Search for `who` reports the request id it runs under. Each method counts how it was reached."""

    def __init__(self, carries: bool = True) -> None:
        self.carries = carries
        self.carried = CarriedCalls(self)
        self.streams = 0
        self.calls: list[tuple[str, str]] = []      # (method, "stream" or "unary")
        self.delays: dict[str, float] = {}
        self.flaky = 0

    def _seen(self, method: str, context: Any) -> None:
        self.calls.append((method, "stream" if isinstance(context, CallContext) else "unary"))

    async def Calls(self, requests: AsyncIterator[mail_pb2.CallRequest], context: Any
                    ) -> AsyncIterator[mail_pb2.CallAnswer]:
        if not self.carries:
            await context.abort(grpc.StatusCode.UNIMPLEMENTED, "Method not found!")
        self.streams += 1
        async for answer in self.carried.serve(requests):
            yield answer

    async def ListFolders(self, request: mail_pb2.UserRef, context: Any) -> mail_pb2.FolderList:
        self._seen("ListFolders", context)
        await asyncio.sleep(self.delays.get(request.user_id, 0.0))
        return mail_pb2.FolderList(folders=[types_pb2.Folder(id="inbox", name=request.user_id)], state=7)

    async def Search(self, request: mail_pb2.SearchRequest, context: Any) -> mail_pb2.MessagePage:
        self._seen("Search", context)
        if request.query == "from:":
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "query: from: needs a value")
        if request.query == "missing":
            await context.abort(grpc.StatusCode.NOT_FOUND, "no such user")
        if request.query == "who":
            return mail_pb2.MessagePage(next_cursor=logs.request_id.get() or "")
        return mail_pb2.MessagePage(total=1)

    async def GetThread(self, request: mail_pb2.ThreadRef, context: Any) -> mail_pb2.Thread:
        self._seen("GetThread", context)
        raise ValueError("boom")

    async def CheckRecipient(self, request: mail_pb2.CheckRecipientRequest, context: Any
                             ) -> mail_pb2.CheckRecipientResponse:
        self._seen("CheckRecipient", context)
        if self.flaky > 0:
            self.flaky -= 1
            await context.abort(grpc.StatusCode.UNAVAILABLE, "no quorum")
        return mail_pb2.CheckRecipientResponse(status=mail_pb2.CheckRecipientResponse.Status.NOT_HOSTED)

    async def Deliver(self, request: mail_pb2.DeliverRequest, context: Any) -> mail_pb2.DeliverResponse:
        self._seen("Deliver", context)
        return mail_pb2.DeliverResponse(entry_id=request.entry_id)

    async def GetMessage(self, request: mail_pb2.MessageRef, context: Any) -> types_pb2.MessageDetail:
        self._seen("GetMessage", context)
        return types_pb2.MessageDetail(text="hello")


async def _serve(router: Router, port: int = 0) -> tuple[grpc.aio.Server, int]:
    return await serve(mail_pb2_grpc.add_MailServicer_to_server, router, port)


def run(scenario: Callable[[Router, MailClient], Awaitable[None]], *, carries: bool = True,
        request_id: Callable[[], Any] | None = None) -> Router:
    router = Router(carries)

    async def main() -> None:
        server, port = await _serve(router)
        try:
            async with MailClient(f"127.0.0.1:{port}", timeout=5, metadata=request_id) as client:
                await scenario(router, client)
        finally:
            await server.stop(None)

    asyncio.run(main())
    return router


def test_the_client_and_the_router_carry_the_same_calls() -> None:
    assert CLIENT_CARRIED == CARRIED
    service = mail_pb2.DESCRIPTOR.services_by_name["Mail"]
    assert all(service.methods_by_name[name].server_streaming is False for name in CARRIED)


def test_calls_share_one_stream_and_each_gets_its_own_answer_as_it_finishes() -> None:
    async def scenario(router: Router, client: MailClient) -> None:
        router.delays["slow"] = 0.3
        slow = asyncio.ensure_future(client.list_folders("slow"))
        await asyncio.sleep(0.05)
        fast = await asyncio.gather(*(client.list_folders(f"user{i}") for i in range(5)))
        assert [f[0].name for f in fast] == [f"user{i}" for i in range(5)]
        assert not slow.done()                        # the fast ones were answered past it
        assert (await slow)[0].name == "slow"
        assert (await client.search("u", "invoice")).total == 1

    router = run(scenario)
    assert router.streams == 1
    assert router.calls == [("ListFolders", "stream")] * 6 + [("Search", "stream")]


def test_failures_are_the_typed_errors_of_a_unary_call() -> None:
    async def scenario(router: Router, client: MailClient) -> None:
        router.delays["slow"] = 2.0
        with pytest.raises(InvalidArgument, match="from: needs a value"):
            await client.search("u", "from:")
        with pytest.raises(NotFound, match="no such user"):
            await client.search("u", "missing")
        with pytest.raises(Unknown, match="boom"):
            await client.get_thread("u", "t1")
        with pytest.raises(DeadlineExceeded):
            await client.list_folders("slow", timeout=0.2)
        assert (await client.list_folders("after"))[0].name == "after"    # the stream lives on

    router = run(scenario)
    assert router.streams == 1 and all(how == "stream" for _, how in router.calls)


def test_each_call_runs_under_its_own_request_id() -> None:
    ids = iter(["req-1", "req-2"])

    async def scenario(router: Router, client: MailClient) -> None:
        assert (await client.search("u", "who")).next_cursor == "req-1"
        assert (await client.search("u", "who")).next_cursor == "req-2"

    run(scenario, request_id=lambda: ((logs.METADATA_KEY, next(ids)),))


def test_unavailable_is_sent_again_unary_with_the_channels_retries() -> None:
    async def scenario(router: Router, client: MailClient) -> None:
        router.flaky = 2     # the carried call and the unary call's first attempt; its retry answers
        assert (await client.check_recipient("a@b.test")).status == mail_pb2.CheckRecipientResponse.Status.NOT_HOSTED

    router = run(scenario)
    assert router.calls == [("CheckRecipient", "stream"), ("CheckRecipient", "unary"), ("CheckRecipient", "unary")]


def test_a_broken_stream_sends_its_calls_again_unary_and_the_next_call_opens_another() -> None:
    router = Router()

    async def main() -> None:
        server, port = await _serve(router)
        async with MailClient(f"127.0.0.1:{port}", timeout=5) as client:
            await client.list_folders("first")
            router.delays["cut"] = 5.0
            cut = asyncio.ensure_future(client.list_folders("cut"))
            await asyncio.sleep(0.1)
            await server.stop(None)                  # the stream breaks under the call
            server, _ = await _serve(router, port)   # and the router is back on the same port
            router.delays["cut"] = 0.0
            assert (await cut)[0].name == "cut"      # sent again, unary
            assert (await client.list_folders("next"))[0].name == "next"
        await server.stop(None)

    asyncio.run(main())
    assert router.calls[-2:] == [("ListFolders", "unary"), ("ListFolders", "stream")]
    assert router.streams == 2


def test_a_router_without_calls_gets_unary_calls() -> None:
    async def scenario(router: Router, client: MailClient) -> None:
        for name in ("a", "b"):
            assert (await client.list_folders(name))[0].name == name

    router = run(scenario, carries=False)
    assert router.calls == [("ListFolders", "unary")] * 2


def test_calls_not_carried_or_too_large_go_unary() -> None:
    async def scenario(router: Router, client: MailClient) -> None:
        assert (await client.get_message("u", "m1")).text == "hello"
        await client.deliver("e1", b"x" * (CARRY_LIMIT + 1), ["a@b.test"])
        await client.deliver("e2", b"small", ["a@b.test"])

    router = run(scenario)
    assert router.calls == [("GetMessage", "unary"), ("Deliver", "unary"), ("Deliver", "stream")]


def test_the_router_refuses_a_method_it_does_not_carry() -> None:
    async def main() -> list[mail_pb2.CallAnswer]:
        router = Router()
        server, port = await _serve(router)
        try:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
                stream = mail_pb2_grpc.MailStub(channel).Calls()
                await stream.write(mail_pb2.CallRequest(id=1, method="GetMessage",
                                                        request=mail_pb2.MessageRef(user_id="u").SerializeToString()))
                await stream.write(mail_pb2.CallRequest(id=2, method="ListFolders", request=b"\xff\xff"))
                await stream.done_writing()
                return [answer async for answer in stream]
        finally:
            await server.stop(None)

    answers = sorted(asyncio.run(main()), key=lambda a: a.id)
    assert [(a.id, grpc.StatusCode.UNIMPLEMENTED.value[0] == a.code) for a in answers][0] == (1, True)
    assert answers[1].code == grpc.StatusCode.INTERNAL.value[0] and "does not parse" in answers[1].details


def test_unavailable_from_a_router_that_is_gone() -> None:
    async def main() -> None:
        router = Router()
        server, port = await _serve(router)
        await server.stop(None)
        async with MailClient(f"127.0.0.1:{port}", timeout=1) as client:
            with pytest.raises((Unavailable, DeadlineExceeded)):
                await client.list_folders("u")

    asyncio.run(main())
