"""The queue's due index on one node: derived from the items in their own batch, moved when
an item's due time changes, dropped when it has nothing left to do, LWW like any entry."""
from __future__ import annotations

from pathlib import Path

from storage_node import keys
from storage_node.blobs import LocalBlobStore
from storage_node.engine import Engine
from storage_node.model import DirectoryValue
from tidings.v1 import queue_pb2


def item(item_id: str, due_ms: int) -> bytes:
    return queue_pb2.QueueItem(id=item_id, due_ms=due_ms).SerializeToString()


def put(engine: Engine, key: str, value: bytes, version: int) -> DirectoryValue:
    with engine.txn() as txn:
        return engine.put_directory(txn, key, DirectoryValue(value, version))


def due(engine: Engine, partition: str, by_ms: int) -> list[str]:
    return [key for key, _ in engine.list_directory(partition, 100, due_by_ms=by_ms)]


def test_items_are_listed_when_due_earliest_first_and_moved_with_their_due_time(tmp_path: Path) -> None:
    engine = Engine(tmp_path / "db", LocalBlobStore(tmp_path / "blobs"))
    try:
        put(engine, "queue:3:b", item("b", 2_000), 1)
        put(engine, "queue:3:a", item("a", 1_000), 1)
        put(engine, "queue:4:c", item("c", 500), 1)
        assert due(engine, "queue:3", 999) == []
        assert due(engine, "queue:3", 5_000) == ["queue:3:a", "queue:3:b"]
        put(engine, "queue:3:a", item("a", 9_000), 2)           # deferred
        assert due(engine, "queue:3", 5_000) == ["queue:3:b"]
        put(engine, "queue:3:b", item("b", 0), 3)               # done
        put(engine, "queue:3:b", item("b", 100), 2)             # an older copy loses
        assert due(engine, "queue:3", 10_000) == ["queue:3:a"]
        everything = engine.list_directory("queue:3", 100)
        assert [k for k, _ in everything] == ["queue:3:a", "queue:3:b"]
        assert [k for k, _ in engine.list_directory("queue:3", 100, after_key="queue:3:a")] == ["queue:3:b"]
        assert len(list(engine.scan(keys.CF_QUEUE_DUE, b"", None))) == 2   # a (9000) and c (500)
    finally:
        engine.close()


def test_a_queue_shard_shares_one_token_and_other_keys_keep_their_own() -> None:
    assert keys.directory("queue:3:a")[:8] == keys.directory("queue:3:zz")[:8]
    assert keys.directory("queue:3:a")[:8] != keys.directory("queue:4:a")[:8]
    assert keys.directory("account:a@example.test")[:8] != keys.directory("account:b@example.test")[:8]
