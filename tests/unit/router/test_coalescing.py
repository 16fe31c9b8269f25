"""Coalesced calls to a storage node over a real gRPC server on a loopback port: the calls of
one turn of the loop, and those made while others are on the wire, share one batch on the
node's Batches stream and each gets its own answer or its own status; a lone call goes on the
stream too; a node without Batches gets Batch RPCs, one without Batch single calls; a
caller's deadline is its own; a stream that breaks fails its batches with UNAVAILABLE, and the
next batch opens a new one."""
from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import grpc
import pytest

from router.coalescing import CoalescingStub
from storage_node.batches import run_batch, run_batches
from tests.loopback_grpc import serve
from tidings.v1 import storage_pb2, storage_pb2_grpc


class Node(storage_pb2_grpc.StorageNodeServicer):
    """GetDirectory answers from a dict (slowly, when told); Batch and Batches as the real
    node runs them, or UNIMPLEMENTED (an older node)."""

    def __init__(self, batches: bool = True, streams: bool = True) -> None:
        self.entries = {"domain:a.test": b"a"}
        self.batches: list[int] = []        # calls of each Batch RPC
        self.streamed: list[int] = []       # calls of each request on a Batches stream
        self.streams = 0
        self.singles = 0
        self.delay = 0.0
        self.knows_batch = batches
        self.knows_streams = streams
        self.closing = asyncio.Event()

    async def GetDirectory(self, request: storage_pb2.DirectoryKey, context: Any) -> storage_pb2.DirectoryEntry:
        self.singles += 1
        await asyncio.sleep(self.delay)
        if request.key == "bad":
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "a bad key")
        value = self.entries.get(request.key)
        return storage_pb2.DirectoryEntry(key=request.key, value=value or b"", found=value is not None)

    async def Batch(self, request: storage_pb2.BatchRequest, context: Any) -> storage_pb2.BatchResponse:
        if not self.knows_batch:
            await context.abort(grpc.StatusCode.UNIMPLEMENTED, "Method not found!")
        self.batches.append(len(request.calls))
        self.singles -= len(request.calls)      # counted by GetDirectory; these came together
        return await run_batch(self, request)

    async def Batches(self, requests: AsyncIterator[storage_pb2.BatchRequest], context: Any
                      ) -> AsyncIterator[storage_pb2.BatchResponse]:
        if not self.knows_streams:
            await context.abort(grpc.StatusCode.UNIMPLEMENTED, "Method not found!")
        self.streams += 1

        async def counted() -> AsyncIterator[storage_pb2.BatchRequest]:
            async for request in requests:
                self.streamed.append(len(request.calls))
                self.singles -= len(request.calls)
                yield request

        async for response in run_batches(self, counted(), self.closing):
            yield response


@dataclass
class Served:
    node: Node              # knows Batches
    stub: CoalescingStub
    batch_only: Node        # knows Batch, not Batches
    batch_only_stub: CoalescingStub
    old: Node               # knows neither
    old_stub: CoalescingStub
    servers: list[grpc.aio.Server]
    ports: list[int]


def run(scenario: Callable[[Served], Awaitable[None]]) -> None:
    async def main() -> None:
        async with served() as parts:
            await scenario(parts)
    asyncio.run(main())


async def _serve(node: Node, port: int = 0) -> tuple[grpc.aio.Server, int]:
    return await serve(storage_pb2_grpc.add_StorageNodeServicer_to_server, node, port)


@asynccontextmanager
async def served() -> AsyncIterator[Served]:
    nodes = [Node(), Node(streams=False), Node(batches=False, streams=False)]
    servers, ports, channels, stubs = [], [], [], []
    for node in nodes:
        server, port = await _serve(node)
        servers.append(server)
        ports.append(port)
        channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}", options=[("grpc.initial_reconnect_backoff_ms", 50),
                                                                         ("grpc.max_reconnect_backoff_ms", 100)])
        channels.append(channel)
        stubs.append(CoalescingStub(storage_pb2_grpc.StorageNodeStub(channel)))
    yield Served(nodes[0], stubs[0], nodes[1], stubs[1], nodes[2], stubs[2], servers, ports)
    for stub in stubs:
        await stub.batcher.close()
    for channel in channels:
        await channel.close()
    for server in servers:
        await server.stop(None)


def ask(stub: CoalescingStub, key: str, timeout: float = 5) -> Any:
    return stub.GetDirectory(storage_pb2.DirectoryKey(key=key), timeout=timeout)


def test_concurrent_calls_share_a_batch_and_each_gets_its_own_answer() -> None:
    async def scenario(s: Served) -> None:
        s.node.delay = 0.05
        answers = await asyncio.gather(*(ask(s.stub, k) for k in ["domain:a.test", "x", "domain:a.test", "y", "z"]))
        assert [a.found for a in answers] == [True, False, True, False, False]
        assert s.node.singles == 0 and s.node.streamed == [5]     # asked in one turn of the loop: one batch
        await ask(s.stub, "x")
        await ask(s.stub, "y")
        assert s.node.singles == 0 and s.node.streamed == [5, 1, 1]   # one at a time: each alone, streamed
        assert s.node.streams == 1 and not s.node.batches          # all on one stream

    run(scenario)


def test_a_call_that_fails_in_a_batch_fails_alone_with_its_status() -> None:
    async def scenario(s: Served) -> None:
        s.node.delay = 0.05
        first = [asyncio.ensure_future(ask(s.stub, key)) for key in ("x", "y")]     # on the wire: the rest wait
        await asyncio.sleep(0.01)
        results = await asyncio.gather(ask(s.stub, "bad"), ask(s.stub, "domain:a.test"), return_exceptions=True)
        await asyncio.gather(*first)
        assert isinstance(results[0], grpc.aio.AioRpcError)
        assert results[0].code() == grpc.StatusCode.INVALID_ARGUMENT and results[0].details() == "a bad key"
        assert not isinstance(results[1], BaseException) and results[1].found and s.node.streamed == [2, 2]

    run(scenario)


def test_a_node_without_batches_gets_batch_rpcs() -> None:
    async def scenario(s: Served) -> None:
        s.batch_only.delay = 0.05
        answers = await asyncio.gather(*(ask(s.batch_only_stub, k) for k in ["domain:a.test", "a", "b"]))
        assert [a.found for a in answers] == [True, False, False]
        assert s.batch_only.batches == [3] and not s.batch_only_stub.batcher.streaming
        await ask(s.batch_only_stub, "x")
        assert s.batch_only.singles == 1 and s.batch_only.batches == [3]   # alone: its own RPC

    run(scenario)


def test_a_node_without_batch_gets_single_calls() -> None:
    async def scenario(s: Served) -> None:
        s.old.delay = 0.05
        answers = await asyncio.gather(*(ask(s.old_stub, k) for k in ["domain:a.test", "a", "b", "c"]))
        assert [a.found for a in answers] == [True, False, False, False]
        assert s.old.singles == 4 and not s.old_stub.batcher.batching    # refused as a batch, then sent alone

    run(scenario)


def test_a_caller_deadline_is_its_own() -> None:
    async def scenario(s: Served) -> None:
        s.node.delay = 0.3
        with pytest.raises(grpc.aio.AioRpcError) as late:
            await ask(s.stub, "x", timeout=0.05)
        assert late.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        s.node.delay = 0.0
        assert (await ask(s.stub, "domain:a.test")).found
        assert s.node.streams == 1          # a late answer does not break the stream

    run(scenario)


def test_a_stopping_node_answers_what_it_read_and_ends_its_stream() -> None:
    async def scenario(s: Served) -> None:
        s.node.delay = 0.3
        read = asyncio.ensure_future(ask(s.stub, "domain:a.test"))
        await asyncio.sleep(0.1)                       # on the node, running
        s.node.closing.set()                           # the node is told to stop
        assert (await read).found                      # answered before the stream ends
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            # on the ending stream (before its end reached the router) or on a new one, which
            # a stopping node ends at once: either way refused, for the caller to go elsewhere
            await ask(s.stub, "x")
        assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
        s.node.closing.clear()                         # back
        s.node.delay = 0.0
        assert (await ask(s.stub, "domain:a.test")).found
        assert s.node.streams >= 2                     # on a new stream

    run(scenario)


def test_a_broken_stream_fails_its_batches_and_the_next_batch_opens_a_new_one() -> None:
    async def scenario(s: Served) -> None:
        assert (await ask(s.stub, "domain:a.test")).found
        s.node.delay = 5.0
        waiting = asyncio.ensure_future(ask(s.stub, "x", timeout=10))
        await asyncio.sleep(0.1)
        await s.servers[0].stop(None)                  # the node goes away with a batch on the stream
        with pytest.raises(grpc.aio.AioRpcError) as broken:
            await waiting
        assert broken.value.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED)
        with pytest.raises(grpc.aio.AioRpcError) as down:
            await ask(s.stub, "x", timeout=2)
        assert down.value.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)
        s.node.delay = 0.0
        s.servers[0], _ = await _serve(s.node, s.ports[0])   # back on its port
        for _ in range(50):
            try:
                assert (await ask(s.stub, "domain:a.test", timeout=2)).found
                break
            except grpc.aio.AioRpcError:
                await asyncio.sleep(0.1)
        else:
            raise AssertionError("no answer after the node came back")
        assert s.node.streams >= 2

    run(scenario)


def test_a_batch_is_bounded_by_its_requests_bytes() -> None:
    from router.coalescing import BATCH_BYTES, _Call, _take

    def call(size: int) -> _Call:
        return _Call("put_directory", storage_pb2.DirectoryEntry(key="k", value=b"x" * size), None, None)  # type: ignore[arg-type]

    small, big = call(10), call(BATCH_BYTES)
    assert _take([small, small]) == ([small, small], [])
    assert _take([small, big, small]) == ([small], [big, small])     # the big one leaves alone next
    assert _take([big, small]) == ([big], [small])
