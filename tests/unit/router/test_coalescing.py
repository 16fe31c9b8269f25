"""Coalesced calls to a storage node over a real gRPC server on a loopback port: the calls of
one turn of the loop, and those made while others are on the wire, share one Batch RPC and
each gets its own answer or its own status; a lone call goes alone; a node without Batch gets
single calls; a caller's deadline is its own."""
from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import grpc
import pytest

from router.coalescing import CoalescingStub
from storage_node.batches import run_batch
from tidings.v1 import storage_pb2, storage_pb2_grpc


class Node(storage_pb2_grpc.StorageNodeServicer):
    """GetDirectory answers from a dict (slowly, when told); Batch as the real node runs it."""

    def __init__(self, batches: bool = True) -> None:
        self.entries = {"domain:a.test": b"a"}
        self.batches: list[int] = []
        self.singles = 0
        self.delay = 0.0
        self.knows_batch = batches

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


Scenario = Callable[[Node, CoalescingStub, Node, CoalescingStub], Awaitable[None]]


def run(scenario: Scenario) -> None:
    async def main() -> None:
        async with served() as parts:
            await scenario(*parts)
    asyncio.run(main())


@asynccontextmanager
async def served() -> AsyncIterator[tuple[Node, CoalescingStub, Node, CoalescingStub]]:
    nodes = [Node(), Node(batches=False)]
    servers, channels, stubs = [], [], []
    for node in nodes:
        server = grpc.aio.server()
        storage_pb2_grpc.add_StorageNodeServicer_to_server(node, server)
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        servers.append(server)
        channel = grpc.aio.insecure_channel(f"127.0.0.1:{port}")
        channels.append(channel)
        stubs.append(CoalescingStub(storage_pb2_grpc.StorageNodeStub(channel)))
    yield nodes[0], stubs[0], nodes[1], stubs[1]
    for channel in channels:
        await channel.close()
    for server in servers:
        await server.stop(None)


def ask(stub: CoalescingStub, key: str, timeout: float = 5) -> Any:
    return stub.GetDirectory(storage_pb2.DirectoryKey(key=key), timeout=timeout)


def test_concurrent_calls_share_a_batch_and_each_gets_its_own_answer() -> None:
    run(_concurrent_calls_share_a_batch_and_each_gets_its_own_answer)


async def _concurrent_calls_share_a_batch_and_each_gets_its_own_answer(node: Node, stub: CoalescingStub, old: Node,
        old_stub: CoalescingStub) -> None:
    node.delay = 0.05
    answers = await asyncio.gather(*(ask(stub, k) for k in ["domain:a.test", "x", "domain:a.test", "y", "z"]),
                                   return_exceptions=True)
    assert [a.found for a in answers] == [True, False, True, False, False]
    assert node.singles == 0 and node.batches == [5]     # asked in one turn of the loop: one RPC
    await ask(stub, "x")
    await ask(stub, "y")
    assert node.singles == 2 and node.batches == [5]     # one at a time, nothing waiting: each alone


def test_a_call_that_fails_in_a_batch_fails_alone_with_its_status() -> None:
    run(_a_call_that_fails_in_a_batch_fails_alone_with_its_status)


async def _a_call_that_fails_in_a_batch_fails_alone_with_its_status(node: Node, stub: CoalescingStub, old: Node,
        old_stub: CoalescingStub) -> None:
    node.delay = 0.05
    first = [asyncio.ensure_future(ask(stub, key)) for key in ("x", "y")]     # on the wire: the rest wait
    await asyncio.sleep(0.01)
    results = await asyncio.gather(ask(stub, "bad"), ask(stub, "domain:a.test"), return_exceptions=True)
    await asyncio.gather(*first)
    assert isinstance(results[0], grpc.aio.AioRpcError)
    assert results[0].code() == grpc.StatusCode.INVALID_ARGUMENT and results[0].details() == "a bad key"
    assert results[1].found and node.batches == [2, 2]


def test_a_node_without_batch_gets_single_calls() -> None:
    run(_a_node_without_batch_gets_single_calls)


async def _a_node_without_batch_gets_single_calls(node: Node, stub: CoalescingStub, old: Node,
        old_stub: CoalescingStub) -> None:
    old.delay = 0.05
    answers = await asyncio.gather(*(ask(old_stub, k) for k in ["domain:a.test", "a", "b", "c"]))
    assert [a.found for a in answers] == [True, False, False, False]
    assert old.singles == 4 and not old_stub.batcher.batching    # 3 refused as a batch, then sent alone


def test_a_caller_deadline_is_its_own() -> None:
    run(_a_caller_deadline_is_its_own)


async def _a_caller_deadline_is_its_own(node: Node, stub: CoalescingStub, old: Node,
        old_stub: CoalescingStub) -> None:
    node.delay = 0.3
    with pytest.raises(grpc.aio.AioRpcError) as late:
        await ask(stub, "x", timeout=0.05)
    assert late.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    assert (await ask(stub, "domain:a.test")).found


def test_a_batch_is_bounded_by_its_requests_bytes() -> None:
    from router.coalescing import BATCH_BYTES, _Call, _take

    def call(size: int) -> _Call:
        return _Call("put_directory", storage_pb2.DirectoryEntry(key="k", value=b"x" * size), None, None)  # type: ignore[arg-type]

    small, big = call(10), call(BATCH_BYTES)
    assert _take([small, small]) == ([small, small], [])
    assert _take([small, big, small]) == ([small], [big, small])     # the big one leaves alone next
    assert _take([big, small]) == ([big], [small])
