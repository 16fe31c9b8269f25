"""A node's own checks (NodeOps.CheckNode) on a real in-process node: clean after deliveries,
moves and reads; a corrupted folder counter is found and, with repair, recomputed from the
records; a blob deleted from the store is found and reported as not repairable."""
from __future__ import annotations

import asyncio
from pathlib import Path

from storage_node import codec, keys
from storage_node.blobs import LocalBlobStore
from storage_node.model import FolderCounts
from tests.unit.storage_node.fixtures import OTHER, USER, apply, mid
from tests.unit.storage_node.test_blobs_s3 import big_raw
from tests.unit.storage_node.test_replication_rpcs import Running, store
from tidings.v1 import node_ops_pb2, storage_pb2


async def check(node: Running, repair: bool = False) -> node_ops_pb2.CheckNodeReport:
    return await node.node.node_ops.CheckNode(node_ops_pb2.CheckNodeRequest(repair=repair), None)


def test_counters_wrong_are_found_and_recomputed_and_a_missing_blob_reported(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with Running(tmp_path, "n1") as node:
            for n in range(6):
                await store(node, USER, n)
                await store(node, OTHER, n)
            await node.stub.UpdateMessage(storage_pb2.UpdateMessageRequest(
                user_id=USER, id=mid(1), version=5, unread=False, folder_id="archive"))
            await node.stub.StoreMessage(storage_pb2.StoreMessageRequest(
                user_id=OTHER, id=mid(99), raw=big_raw("checked"), folder_id="inbox", unread=True,
                received_ms=5000, version=1))
            clean = await check(node)
            assert list(clean.problems) == [] and clean.messages == 13 and clean.users == 2 and clean.blob_refs == 1

            inbox = keys.folder(USER, keys.SYSTEM_FOLDERS["inbox"])
            apply(node.node.engine, lambda txn: txn.put(keys.CF_FOLDERS, inbox, codec.encode_counts(FolderCounts(9, 1))))
            found = await check(node)
            assert [p for p in found.problems] == [
                f"user {USER} folder inbox: counters say 9 messages, 1 unread; the records hold 5, 5 unread"]
            assert found.counters_repaired == 0
            fixed = await check(node, repair=True)
            assert fixed.counters_repaired == 1 and list(fixed.unrepaired) == []
            assert codec.decode_counts(node.node.engine.get(keys.CF_FOLDERS, inbox)) == FolderCounts(5, 5)
            assert list((await check(node)).problems) == []

            blobs = node.node.engine.blobs
            assert isinstance(blobs, LocalBlobStore)
            [(ref, _)] = list(blobs.objects())
            blobs.delete(ref)
            missing = await check(node, repair=True)
            assert list(missing.unrepaired) == list(missing.problems) == [
                f"user {OTHER} message {mid(99)}: blob {ref} is missing from the store"]

    asyncio.run(scenario())
