"""Replication RPCs between real storage nodes: gRPC servers in this process on free
loopback ports, talking to each other (range pulls, streams, hint replay)."""
from __future__ import annotations

import asyncio
import socket
from collections.abc import Awaitable, Callable
from pathlib import Path

import grpc
import pytest
from prometheus_client import REGISTRY

from storage_node import keys
from storage_node.server import StorageNode
from storage_node.settings import Settings
from tests.unit.storage_node.fixtures import OTHER, USER, mid, raw_mail
from tidings.v1 import blobs_pb2_grpc, storage_pb2, storage_pb2_grpc
from tidings_runtime.grpc_server import CHANNEL_OPTIONS
from tidings_runtime.hlc import first_version_at

WHOLE = storage_pb2.TokenRange(start=0, end=0)
# Background tasks stay idle: the tests run replay and GC rounds themselves.
QUIET = Settings(hint_interval_s=3600, gc_interval_s=3600)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Running:
    """A storage node serving on 127.0.0.1:port (StorageNode and BlobGc, as storage_node/server.py
    mounts them), and a stub to it."""

    def __init__(self, root: Path, name: str, port: int | None = None, settings: Settings = QUIET) -> None:
        self.root, self.name, self.settings = root, name, settings
        self.port = port or free_port()
        self.address = f"127.0.0.1:{self.port}"

    async def __aenter__(self) -> Running:
        self.node = StorageNode(self.name, self.root / self.name, self.root / "blobs", self.settings)
        self.server = grpc.aio.server(options=CHANNEL_OPTIONS)
        storage_pb2_grpc.add_StorageNodeServicer_to_server(self.node.service, self.server)
        blobs_pb2_grpc.add_BlobGcServicer_to_server(self.node.blob_gc, self.server)
        assert self.server.add_insecure_port(self.address) == self.port
        await self.node.start()
        await self.server.start()
        self.channel = grpc.aio.insecure_channel(self.address, options=CHANNEL_OPTIONS)
        self.stub = storage_pb2_grpc.StorageNodeStub(self.channel)
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.channel.close()
        await self.server.stop(0)
        await self.node.stop()


def run(test: Callable[[], Awaitable[None]]) -> None:
    asyncio.run(test())


async def store(node: Running, user: str, n: int, version: int = 1) -> None:
    await node.stub.StoreMessage(storage_pb2.StoreMessageRequest(
        user_id=user, id=mid(n), raw=raw_mail(f"message {n}", "streamed body " * 50), folder_id="inbox",
        unread=True, received_ms=1000 + n, version=version))


async def digests(node: Running, *ranges: storage_pb2.TokenRange) -> list[tuple[bytes, int]]:
    answer = await node.stub.RangeDigests(storage_pb2.RangeDigestsRequest(ranges=list(ranges) or [WHOLE]))
    return [(d.digest, d.items) for d in answer.digests]


async def fill(node: Running) -> None:
    for n in range(1, 6):
        await store(node, USER, n)
        await store(node, OTHER, n)
    await node.stub.UpdateMessage(storage_pb2.UpdateMessageRequest(user_id=USER, id=mid(2), expunge=True, version=9))
    await node.stub.UpdateMessage(storage_pb2.UpdateMessageRequest(user_id=OTHER, id=mid(3), unread=False, version=9))
    await node.stub.PutDirectory(storage_pb2.DirectoryEntry(key="account:alice@example.test", value=b"{}", version=4))


def user_range(user: str) -> storage_pb2.TokenRange:
    token = keys.partition_token(user)
    return storage_pb2.TokenRange(start=token - 1, end=token)


def test_pull_copies_ranges_exactly_and_drop_removes_them(tmp_path: Path) -> None:
    async def test() -> None:
        async with Running(tmp_path, "a") as a, Running(tmp_path, "b") as b:
            await fill(a)
            pulled = await b.stub.PullRanges(storage_pb2.PullRangesRequest(source_address=a.address, ranges=[WHOLE]))
            assert pulled.items == 11 and pulled.bytes > 0
            assert await digests(b) == await digests(a)
            entries = await b.stub.RangeEntries(storage_pb2.RangeEntriesRequest(ranges=[WHOLE]))
            assert entries == await a.stub.RangeEntries(storage_pb2.RangeEntriesRequest(ranges=[WHOLE]))
            search = await b.stub.Search(storage_pb2.NodeSearchRequest(user_id=OTHER, query="is:unread"))
            assert sorted(m.id for m in search.messages) == [mid(1), mid(2), mid(4), mid(5)]
            folders = await b.stub.ListFolders(storage_pb2.NodeUserRef(user_id=USER))
            assert [(f.total, f.unread) for f in folders.folders if f.id == "inbox"] == [(4, 4)]
            stored = await b.stub.GetMessage(storage_pb2.NodeMessageRef(user_id=USER, id=mid(2)))
            assert stored.tombstone

            dropped = await b.stub.DropRanges(storage_pb2.DropRangesRequest(ranges=[user_range(USER)]))
            assert dropped.items == 5
            assert (await digests(b, user_range(USER)))[0][1] == 0
            assert await digests(b, user_range(OTHER)) == await digests(a, user_range(OTHER))
            check = await b.stub.CheckIndex(storage_pb2.IndexRequest(all=True))
            assert list(check.problems) == [] and check.users == 1
            # pulling again repairs exactly what was dropped
            await b.stub.PullRanges(storage_pb2.PullRangesRequest(source_address=a.address, ranges=[user_range(USER)]))
            assert await digests(b) == await digests(a)

    run(test)


def test_stream_batches_and_read_apply_items(tmp_path: Path) -> None:
    async def test() -> None:
        async with Running(tmp_path, "a") as a, Running(tmp_path, "b") as b:
            await fill(a)
            batches = [batch async for batch in a.stub.StreamRanges(
                storage_pb2.StreamRangesRequest(ranges=[WHOLE], batch_bytes=1500))]
            assert len(batches) > 3 and sum(len(x.items) for x in batches) == 11
            refs = [storage_pb2.ItemRef(user_id=USER, id=mid(1)), storage_pb2.ItemRef(user_id=USER, id=mid(2)),
                    storage_pb2.ItemRef(user_id=USER, id=mid(99)),
                    storage_pb2.ItemRef(directory_key="account:alice@example.test")]
            items = await a.stub.ReadItems(storage_pb2.ReadItemsRequest(refs=refs))
            assert [i.WhichOneof("item") for i in items.items] == ["message", "message", "directory"]
            assert items.items[0].message.raw and items.items[1].message.tombstone and not items.items[1].message.raw
            assert items.items[2].directory.found
            applied = await b.stub.ApplyItems(items)
            assert applied.applied == 3
            assert (await b.stub.ApplyItems(items)).applied == 0
            assert await digests(b, user_range(USER)) != await digests(a, user_range(USER))  # only 2 of 5 copied

    run(test)


def test_bad_input_is_invalid_argument_and_changes_nothing(tmp_path: Path) -> None:
    async def test() -> None:
        async with Running(tmp_path, "a") as a:
            good = storage_pb2.ReplicaItem(message=storage_pb2.ReplicaMessage(
                user_id=USER, id=mid(1), version=1, raw=raw_mail(), folder_id="inbox"))
            bad = storage_pb2.ReplicaItem(message=storage_pb2.ReplicaMessage(user_id="nothex", id=mid(2), version=1))
            calls: list[Callable[[], Awaitable[object]]] = [
                lambda: a.stub.ApplyItems(storage_pb2.ReplicaItems(items=[good, bad])),
                lambda: a.stub.ApplyItems(storage_pb2.ReplicaItems(items=[storage_pb2.ReplicaItem()])),
                lambda: a.stub.RangeDigests(storage_pb2.RangeDigestsRequest()),
                lambda: a.stub.DropRanges(storage_pb2.DropRangesRequest()),
                lambda: a.stub.PullRanges(storage_pb2.PullRangesRequest(ranges=[WHOLE])),
                lambda: a.stub.ReadItems(storage_pb2.ReadItemsRequest(refs=[storage_pb2.ItemRef()])),
                lambda: a.stub.PutHint(storage_pb2.Hint(target_node_id="b", target_address="x")),
                lambda: a.stub.CollectGarbage(storage_pb2.GcRequest(grace_ms=-1)),
            ]
            for call in calls:
                with pytest.raises(grpc.aio.AioRpcError) as caught:
                    await call()
                assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT, caught.value.details()
            stream = a.stub.StreamRanges(storage_pb2.StreamRangesRequest())
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                [batch async for batch in stream]
            assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert (await digests(a))[0][1] == 0
            assert (await a.stub.HintStatus(storage_pb2.HintStatusRequest())).pending == []

    run(test)


def test_hints_wait_for_their_target_then_replay_in_order(tmp_path: Path) -> None:
    async def test() -> None:
        b_port = free_port()
        b_address = f"127.0.0.1:{b_port}"

        def hint(**mutation: object) -> storage_pb2.Hint:
            return storage_pb2.Hint(target_node_id="b", target_address=b_address, **mutation)  # type: ignore[arg-type]

        async with Running(tmp_path, "a") as a:
            store = storage_pb2.StoreMessageRequest(user_id=USER, id=mid(1), raw=raw_mail(), folder_id="inbox",
                                                    unread=True, received_ms=1000, version=1)
            # replayed in version order, though put out of order
            await a.stub.PutHint(hint(update=storage_pb2.UpdateMessageRequest(
                user_id=USER, id=mid(1), starred=True, version=2)))
            await a.stub.PutHint(hint(store=store))
            await a.stub.PutHint(hint(update=storage_pb2.UpdateMessageRequest(user_id=USER, id=mid(7), version=3)))
            await a.stub.PutHint(hint(directory=storage_pb2.DirectoryEntry(key="domain:x.test", value=b"1", version=4)))
            status = await a.stub.HintStatus(storage_pb2.HintStatusRequest())
            assert [(p.target_node_id, p.count) for p in status.pending] == [("b", 4)]

            dropped_before = REGISTRY.get_sample_value("tidings_hints_dropped_total") or 0
            await a.node.service.hints.replay()  # b is down: everything stays
            assert (await a.stub.HintStatus(storage_pb2.HintStatusRequest())).pending[0].count == 4

            async with Running(tmp_path, "b", b_port) as b:
                for _ in range(50):  # the channel redials within its capped backoff
                    await a.node.service.hints.replay()
                    if not (await a.stub.HintStatus(storage_pb2.HintStatusRequest())).pending:
                        break
                    await asyncio.sleep(0.1)
                assert (await a.stub.HintStatus(storage_pb2.HintStatusRequest())).pending == []
                held = await b.stub.GetMessage(storage_pb2.NodeMessageRef(user_id=USER, id=mid(1)))
                assert held.summary.starred and held.summary.version == 2
                entry = await b.stub.GetDirectory(storage_pb2.DirectoryKey(key="domain:x.test"))
                assert entry.found and entry.value == b"1"
                # the update of a message b never got is refused for good: dropped, not retried
                assert REGISTRY.get_sample_value("tidings_hints_dropped_total") == dropped_before + 1
                assert REGISTRY.get_sample_value("tidings_hints_pending", {"target": "b"}) == 0


def test_the_node_replays_hints_on_its_own(tmp_path: Path) -> None:
    async def test() -> None:
        eager = Settings(hint_interval_s=0.05, gc_interval_s=3600)
        async with Running(tmp_path, "a", settings=eager) as a, Running(tmp_path, "b") as b:
            await a.stub.PutHint(storage_pb2.Hint(target_node_id="b", target_address=b.address, directory=(
                storage_pb2.DirectoryEntry(key="domain:z.test", value=b"z", version=1))))
            for _ in range(100):
                if (await b.stub.GetDirectory(storage_pb2.DirectoryKey(key="domain:z.test"))).found:
                    break
                await asyncio.sleep(0.05)
            assert (await b.stub.GetDirectory(storage_pb2.DirectoryKey(key="domain:z.test"))).value == b"z"

    run(test)


def test_ring_map_keeps_the_newest(tmp_path: Path) -> None:
    async def test() -> None:
        async with Running(tmp_path, "a") as a:
            assert (await a.stub.GetRing(storage_pb2.GetRingRequest())).version == 0
            assert (await a.stub.PutRing(storage_pb2.RingMap(version=2, json="two"))).json == "two"
            assert (await a.stub.PutRing(storage_pb2.RingMap(version=1, json="one"))).json == "two"
            assert (await a.stub.PutRing(storage_pb2.RingMap(version=3, json="three"))).version == 3
            assert (await a.stub.GetRing(storage_pb2.GetRingRequest())).json == "three"
            # the ring map lies outside every token range
            await a.stub.DropRanges(storage_pb2.DropRangesRequest(ranges=[WHOLE]))
            assert (await a.stub.GetRing(storage_pb2.GetRingRequest())).version == 3

    run(test)


def test_collect_garbage_now(tmp_path: Path) -> None:
    async def test() -> None:
        async with Running(tmp_path, "a") as a:
            old = first_version_at(1_000)  # 1970: far past any grace
            await a.stub.ApplyItems(storage_pb2.ReplicaItems(items=[storage_pb2.ReplicaItem(
                message=storage_pb2.ReplicaMessage(user_id=USER, id=mid(1), version=old, tombstone=True))]))
            await a.stub.PutHint(storage_pb2.Hint(target_node_id="b", target_address="127.0.0.1:1", directory=
                                                  storage_pb2.DirectoryEntry(key="domain:y", version=old)))
            report = await a.stub.CollectGarbage(storage_pb2.GcRequest())
            assert (report.tombstones_dropped, report.hints_dropped) == (1, 1)
            assert (await digests(a))[0][1] == 0

    run(test)
