"""Blob GC on real in-process nodes sharing one object store directory: the mark phase lists
each node's live refs page by page; the sweep deletes an unreferenced blob older than the
grace, never one a live message on any node holds (shared blobs stay while one copy lives),
never one stored again meanwhile, and nothing at all when a node does not answer."""
from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path

import pytest

from storage_node import blob_gc
from storage_node.blob_gc import BlobGcReport, NodeAddress, collect_blobs, mark
from storage_node.blobs import LocalBlobStore, blob_ref
from tests.unit.storage_node.fixtures import OTHER, USER, mid
from tests.unit.storage_node.test_blobs_s3 import big_raw
from tests.unit.storage_node.test_replication_rpcs import Running, free_port, run
from tidings.v1 import storage_pb2

GRACE_S = 60.0


class BlobNode(Running):
    """A running storage node (StorageNode and BlobGc served), named as the collector names it."""

    async def __aenter__(self) -> BlobNode:
        await super().__aenter__()
        return self

    @property
    def ref(self) -> NodeAddress:
        return NodeAddress(self.name, self.address)


async def start(root: Path, name: str) -> BlobNode:
    return await BlobNode(root, name).__aenter__()


async def store(node: BlobNode, user: str, n: int, raw: bytes) -> None:
    await node.stub.StoreMessage(storage_pb2.StoreMessageRequest(user_id=user, id=mid(n), raw=raw, folder_id="inbox",
                                                                 unread=True, received_ms=1000 + n, version=1))


async def expunge(node: BlobNode, user: str, n: int) -> None:
    await node.stub.UpdateMessage(storage_pb2.UpdateMessageRequest(user_id=user, id=mid(n), version=10, expunge=True))


def age(store: LocalBlobStore, ref: str, seconds: float) -> None:
    """Make a blob look `seconds` old."""
    then = time.time() - seconds
    os.utime(store._path(ref), (then, then))


async def collect(store: LocalBlobStore, nodes: list[NodeAddress]) -> BlobGcReport:
    return await asyncio.to_thread(collect_blobs, store, nodes, GRACE_S, timeout_s=5)


def test_the_mark_phase_lists_live_refs_page_by_page(tmp_path: Path) -> None:
    async def body() -> None:
        node = await start(tmp_path, "a")
        try:
            raws = [big_raw(f"paged-{n}") for n in range(5)]
            for n, raw in enumerate(raws):
                await store(node, USER, n, raw)
            for n in range(5, 8):
                await store(node, USER, n, b"Subject: small\r\n\r\ninline\r\n")
            await expunge(node, USER, 4)
            marked, down = await asyncio.to_thread(mark, [node.ref], 5, 2)
            assert down == [] and marked == {blob_ref(r) for r in raws[:4]}
        finally:
            await node.__aexit__()

    run(body)


def test_sweep_deletes_only_old_blobs_no_live_message_holds(tmp_path: Path) -> None:
    async def body() -> None:
        a, b = await start(tmp_path, "a"), await start(tmp_path, "b")
        try:
            blobs = LocalBlobStore(tmp_path / "blobs")
            shared, alone, loose = big_raw("shared"), big_raw("alone"), b"put, never referenced " * 20_000
            await store(a, USER, 1, shared)
            await store(b, OTHER, 2, shared)      # the same content for another user: one blob
            await store(b, OTHER, 3, alone)
            await expunge(b, OTHER, 3)
            blobs.put(loose)
            refs = {blob_ref(r) for r in (shared, alone, loose)}
            assert {ref for ref, _ in blobs.objects()} == refs

            recent = await collect(blobs, [a.ref, b.ref])   # all of them within the grace: kept
            assert recent.candidates == 0 and recent.deleted == []

            for ref in refs:
                age(blobs, ref, GRACE_S + 10)
            dry = await asyncio.to_thread(collect_blobs, blobs, [a.ref, b.ref], GRACE_S, dry_run=True)
            assert sorted(dry.deleted) == sorted([blob_ref(alone), blob_ref(loose)])
            assert len(list(blobs.objects())) == 3

            swept = await collect(blobs, [a.ref, b.ref])
            assert swept.swept and swept.candidates == 3 and swept.marked == 1
            assert sorted(swept.deleted) == sorted([blob_ref(alone), blob_ref(loose)])
            assert [ref for ref, _ in blobs.objects()] == [blob_ref(shared)]

            await expunge(a, USER, 1)                         # one copy of the shared blob left, on b
            assert (await collect(blobs, [a.ref, b.ref])).deleted == []
            held = await b.stub.GetMessage(storage_pb2.NodeMessageRef(user_id=OTHER, id=mid(2)))
            assert held.raw == shared

            await expunge(b, OTHER, 2)                        # no copy left
            assert (await collect(blobs, [a.ref, b.ref])).deleted == [blob_ref(shared)]
            assert list(blobs.objects()) == []
        finally:
            await a.__aexit__()
            await b.__aexit__()

    run(body)


def test_a_node_that_does_not_answer_means_no_sweep(tmp_path: Path) -> None:
    async def body() -> None:
        a = await start(tmp_path, "a")
        try:
            blobs = LocalBlobStore(tmp_path / "blobs")
            ref = blobs.put(b"unreferenced " * 30_000)
            age(blobs, ref, GRACE_S + 10)
            down = NodeAddress("c", f"127.0.0.1:{free_port()}")   # nothing listens there
            report = await collect(blobs, [a.ref, down])
            assert not report.swept and report.unreachable == ["c"] and report.deleted == []
            assert blobs.modified(ref) is not None
            assert (await collect(blobs, [a.ref])).deleted == [ref]
        finally:
            await a.__aexit__()

    run(body)


def test_a_blob_stored_again_during_the_collection_stays(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    async def body() -> None:
        a = await start(tmp_path, "a")
        try:
            blobs = LocalBlobStore(tmp_path / "blobs")
            data = b"about to be stored again " * 20_000
            ref = blobs.put(data)
            age(blobs, ref, GRACE_S + 10)

            def mark_while_a_message_arrives(*args: object, **kwargs: object) -> tuple[set[str], list[str]]:
                answer = mark(*args, **kwargs)  # type: ignore[arg-type]
                blobs.put(data)          # a new message with this content: put before its batch
                return answer

            monkeypatch.setattr(blob_gc, "mark", mark_while_a_message_arrives)
            report = await collect(blobs, [a.ref])
            assert report.candidates == 1 and report.refreshed == 1 and report.deleted == []
            assert blobs.get(ref) == data
        finally:
            await a.__aexit__()

    run(body)
